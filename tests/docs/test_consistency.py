"""No page contradicts another on install (the package is not on PyPI) or on the supported
Airflow and Python versions (the README's "Supported:" line, which pyproject.toml must match);
the pages' links lead somewhere; the README's "What to use when" is the getting-started one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.pages import (
    DOCS,
    README,
    ROOT,
    all_pages,
    blocks,
    name,
    table,
    toctree,
    user_pages,
)

# What else states the Python and Airflow a user needs.
OTHER_CLAIMS = [ROOT / "pyproject.toml", ROOT / ".ci" / "run", ROOT / "CHANGELOG.md"]
SUPPORTED = re.compile(
    r"Supported: Airflow (?P<airflow>[\d., and]+?) \(.*?\),\s+Python 3\.(?P<python>\d+) or later"
)


def _supported() -> tuple[list[str], int]:
    found = SUPPORTED.search(" ".join(README.read_text().split()))
    assert found, 'the README says what is supported in one "Supported: Airflow ..., Python" line'
    return re.findall(r"\d+\.\d+", found["airflow"]), int(found["python"])


def _text(page: Path) -> str:
    return " ".join(page.read_text().split())  # one line: a claim may span a line break


def test_the_package_is_nowhere_said_to_be_on_pypi() -> None:
    pip_by_name = re.compile(r"pip install\s+['\"]?airflow-provider-cancel(?![\w./-]*\.whl)")
    for page in all_pages():
        for block in blocks(page):  # a command to copy: never install it by name
            assert not pip_by_name.search(block.code), f"{block.where}: {block.code}"
        prose = page.read_text()
        for block in blocks(page):
            prose = prose.replace(block.code.rstrip("\n"), "")
        for sentence in re.split(r"(?<=[.!?:;])\s", " ".join(prose.split())):
            if pip_by_name.search(sentence):
                assert "not on PyPI" in sentence or "fails" in sentence, (name(page), sentence)
            assert not re.search(r"\b(is|now|available) on PyPI", sentence), (name(page), sentence)
    for page in (README, DOCS / "getting-started.md", DOCS / "deploying.md"):
        assert "not on PyPI" in _text(page), f"{name(page)} must say how to install it"


def test_every_page_that_says_what_is_supported_says_the_same() -> None:
    airflow, python = _supported()
    assert airflow == sorted(airflow, key=lambda v: tuple(map(int, v.split("."))))
    pages = [p for p in all_pages() if "Supported:" in _text(p)]
    assert len(pages) >= 2  # the README and the getting-started page
    for page in pages:
        found = SUPPORTED.search(_text(page))
        assert found, f"{name(page)}: a 'Supported:' line in another shape"
        assert re.findall(r"\d+\.\d+", found["airflow"]) == airflow, name(page)
        assert int(found["python"]) == python, name(page)


@pytest.mark.parametrize("page", [*all_pages(), *OTHER_CLAIMS], ids=name)
def test_no_page_claims_another_python_or_airflow(page: Path) -> None:
    airflow, python = _supported()
    oldest = tuple(map(int, airflow[0].split(".")))
    text = _text(page)
    for minor in re.findall(r"Python\s*(?:>=|≥)?\s*3\.(\d+)\b", text):
        assert int(minor) >= python, f"{name(page)}: Python 3.{minor}"
    for minor in re.findall(r"Python\s*(?:>=|≥)\s*3\.(\d+)|Python 3\.(\d+)(?:\+| or later)", text):
        assert int("".join(minor)) == python, f"{name(page)}: Python 3.{''.join(minor)}+"
    assert not re.search(r"Airflow \d\.x\b", text), f"{name(page)}: a vague 'Airflow N.x'"
    for major, minor in re.findall(r"Airflow\s*(?:>=|≥)?\s*(\d)\.(\d+)\b", text):
        assert (int(major), int(minor)) >= oldest, f"{name(page)}: Airflow {major}.{minor}"


def test_pyproject_says_what_the_readme_says() -> None:
    airflow, python = _supported()
    text = (ROOT / "pyproject.toml").read_text()
    assert f'requires-python = ">=3.{python}"' in text
    for minor in re.findall(r"Programming Language :: Python :: 3\.(\d+)", text):
        assert int(minor) >= python
    assert f'"apache-airflow>={airflow[0]}"' in text


def test_links_between_pages_lead_to_pages_that_exist() -> None:
    for page in all_pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{name(page)} links to {target}, which does not exist"


def test_the_readme_and_getting_started_give_the_same_what_to_use_when() -> None:
    header = "| You want to… |"
    assert table(README, header) == table(DOCS / "getting-started.md", header)


def _scenario_names() -> set[str]:
    e2e = ROOT / "tests" / "e2e"
    names = set(re.findall(r'report\(\s*"([a-z0-9-]+)"', (e2e / "run_e2e.py").read_text()))
    celery = re.search(r"^SCENARIOS = \((.*?)\)", (e2e / "run_e2e_celery.py").read_text(), re.M)
    assert celery
    assert names
    return names | set(re.findall(r'"([a-z0-9-]+)"', celery[1]))


@pytest.mark.parametrize("page", user_pages(), ids=name)
def test_user_pages_name_no_commit_and_no_test_scenario(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"\bcommit\s+`?[0-9a-f]{7,40}\b", text), name(page)
    for scenario in _scenario_names():
        assert not re.search(rf"(?<![\w-]){re.escape(scenario)}(?![\w-])", text), (
            f"{name(page)} names the test scenario {scenario!r}: that belongs in e2e-evidence.md"
        )


def test_the_versions_ci_tests_are_the_supported_ones() -> None:
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^COMPAT_VERSIONS\s*\??=\s*(.+)$", makefile, re.M)
    if "test-compat" not in makefile or not listed:
        pytest.skip("the Makefile has no make test-compat (COMPAT_VERSIONS) to compare with")
    assert listed[1].split() == _supported()[0]


def test_every_page_of_docs_is_in_a_toctree() -> None:
    listed = set(toctree("User guide")) | set(toctree("Maintainers"))
    pages = {p for p in DOCS.glob("*.md") if p.name != "index.md"}
    assert pages == listed, sorted(name(p) for p in pages ^ listed)


def test_the_readme_stays_short() -> None:
    # what a user reads once; figures and evidence go to the maintainer pages of docs/
    assert len(README.read_text().splitlines()) <= 200
