"""The built sdist and wheel, and the wheel installed with Airflow in a clean venv.

``make wheel-test`` builds ``dist/`` with ``python -m build``, installs the wheel (and, through
its dependencies, the latest Airflow) into a fresh ``.venv-wheel`` and runs this module with
``WHEEL_TEST_VENV`` and ``WHEEL_TEST_DIST`` pointing at them. Without those variables (a plain
``make test``) every test here is skipped, with that reason.

The checks run Airflow's own CLI and ProvidersManager inside the clean venv, from a folder
outside the repo, so nothing from the source tree can leak onto ``sys.path``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = os.environ.get("WHEEL_TEST_VENV")
DIST = os.environ.get("WHEEL_TEST_DIST")

pytestmark = pytest.mark.skipif(
    not (VENV and DIST),
    reason="packaging test needs a built wheel in a clean venv: run `make wheel-test`",
)


def source_version() -> str:
    text = (REPO / "airflow_provider_cancel" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    assert match, "no __version__ in airflow_provider_cancel/__init__.py"
    return match.group(1)


VERSION = source_version()


@pytest.fixture(scope="module")
def dist() -> Path:
    return Path(DIST or "")


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist}, found {wheels}"
    return wheels[0]


@pytest.fixture(scope="module")
def sdist(dist: Path) -> Path:
    sdists = sorted(dist.glob("*.tar.gz"))
    assert len(sdists) == 1, f"expected one sdist in {dist}, found {sdists}"
    return sdists[0]


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder outside the repo, with its own Airflow home."""
    folder = tmp_path_factory.mktemp("wheel-venv-cwd")
    (folder / "airflow-home").mkdir()
    return folder


@pytest.fixture(scope="module")
def venv_env(outside: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))
    }
    bin_dir = str(Path(VENV or "") / "bin")
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        AIRFLOW_HOME=str(outside / "airflow-home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    return env


def run_in_venv(
    argv: list[str], env: dict[str, str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    if check and done.returncode:
        raise AssertionError(
            f"{' '.join(argv)} exited {done.returncode}\nstdout:\n{done.stdout}\n"
            f"stderr:\n{done.stderr[-4000:]}"
        )
    return done


def venv_python(code: str, env: dict[str, str], cwd: Path) -> Any:
    """Run ``code`` with the venv's Python; it must print one JSON document last."""
    python = str(Path(VENV or "") / "bin" / "python")
    done = run_in_venv([python, "-c", textwrap.dedent(code)], env, cwd)
    return json.loads(done.stdout.strip().splitlines()[-1])


def airflow_json(args: list[str], env: dict[str, str], cwd: Path) -> Any:
    airflow = str(Path(VENV or "") / "bin" / "airflow")
    done = run_in_venv([airflow, *args, "--output", "json"], env, cwd)
    # Airflow may log warnings before the JSON document.
    start = min(i for i in (done.stdout.find("["), done.stdout.find("{")) if i >= 0)
    return json.loads(done.stdout[start:])


# ---------------------------------------------------------------------- the artefacts


def test_wheel_and_sdist_carry_the_version(wheel: Path, sdist: Path) -> None:
    assert wheel.name.startswith(f"airflow_provider_cancel-{VERSION}-py3-none-any"), wheel.name
    assert sdist.name == f"airflow_provider_cancel-{VERSION}.tar.gz", sdist.name


def test_wheel_holds_only_the_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"airflow_provider_cancel", f"airflow_provider_cancel-{VERSION}.dist-info"}, top
    assert "airflow_provider_cancel/py.typed" in names
    assert "airflow_provider_cancel/emulator/__main__.py" in names
    assert not [n for n in names if "example_dags" in n or n.startswith("tests/")]
    info = f"airflow_provider_cancel-{VERSION}.dist-info"
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "[apache_airflow_provider]" in entry_points
    assert "provider_info = airflow_provider_cancel:get_provider_info" in entry_points
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "Classifier: Framework :: Apache Airflow :: Provider" in metadata
    assert re.search(r"^Requires-Dist: apache-airflow>=2\.11", metadata, re.M), metadata[:2000]
    assert "Project-URL: Documentation" in metadata


def test_sdist_builds_the_same_package(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    root = f"airflow_provider_cancel-{VERSION}"
    for needed in ("pyproject.toml", "README.md", "airflow_provider_cancel/__init__.py"):
        assert f"{root}/{needed}" in names, f"{needed} missing from the sdist"


# ---------------------------------------------------------------------- installed in a clean venv


@pytest.fixture(scope="module")
def installed(venv_env: dict[str, str], outside: Path) -> dict[str, Any]:
    return dict(
        venv_python(
            """
            import importlib.metadata as md, importlib.util, json
            import airflow, airflow_provider_cancel
            dist = md.distribution("airflow-provider-cancel")
            print(json.dumps({
                "airflow": airflow.__version__,
                "version": dist.version,
                "file": airflow_provider_cancel.__file__,
                "direct_url": dist.read_text("direct_url.json"),
                "top_level": (dist.read_text("top_level.txt") or "").split(),
                "example_dags": importlib.util.find_spec("example_dags") is not None,
                "tests": importlib.util.find_spec("tests") is not None,
            }))
            """,
            venv_env,
            outside,
        )
    )


def test_installed_from_the_wheel_not_the_source_tree(installed: dict[str, Any]) -> None:
    print(
        f"clean venv: Airflow {installed['airflow']}, airflow-provider-cancel {installed['version']}"
    )
    assert installed["version"] == VERSION
    assert "site-packages" in installed["file"], installed["file"]
    assert installed["file"].startswith(str(Path(VENV or "").resolve())), installed["file"]
    assert '"editable": true' not in (installed["direct_url"] or "")
    assert installed["top_level"] in ([], ["airflow_provider_cancel"]), installed["top_level"]


def test_example_dags_and_tests_are_not_importable(installed: dict[str, Any]) -> None:
    assert not installed["example_dags"], "example_dags is installed as a top-level package"
    assert not installed["tests"], "tests is installed as a top-level package"


def test_airflow_providers_list_shows_the_provider(venv_env: dict[str, str], outside: Path) -> None:
    providers = airflow_json(["providers", "list"], venv_env, outside)
    ours = [p for p in providers if p["package_name"] == "airflow-provider-cancel"]
    assert ours, f"airflow-provider-cancel missing from {[p['package_name'] for p in providers]}"
    assert ours[0]["version"] == VERSION


def test_airflow_providers_hooks_show_both_connection_types(
    venv_env: dict[str, str], outside: Path
) -> None:
    hooks = {
        hook["connection_type"]: hook
        for hook in airflow_json(["providers", "hooks"], venv_env, outside)
        if hook.get("package_name") == "airflow-provider-cancel"
    }
    assert set(hooks) == {"useapi", "writetext"}, hooks
    assert hooks["useapi"]["class"] == "airflow_provider_cancel.hooks.useapi.UseApiHook"
    assert hooks["writetext"]["class"] == "airflow_provider_cancel.hooks.writetext.WriteTextHook"


def test_connection_forms_have_their_fields(venv_env: dict[str, str], outside: Path) -> None:
    widgets = {
        widget["connection_parameter_name"]
        for widget in airflow_json(["providers", "widgets"], venv_env, outside)
        if widget.get("package_name") == "airflow-provider-cancel"
    }
    assert {"extra__useapi__api_version"} <= widgets, widgets

    found = venv_python(
        """
        import json
        from airflow.providers_manager import ProvidersManager
        pm = ProvidersManager()
        hooks = pm.hooks
        print(json.dumps({
            "behaviours": {t: pm.field_behaviours.get(t) for t in ("useapi", "writetext")},
            "widgets": sorted(k for k in pm.connection_form_widgets if "useapi" in k or "writetext" in k),
            "testable": {t: bool(getattr(hooks.get(t), "connection_testable", False))
                         for t in ("useapi", "writetext")},
        }))
        """,
        venv_env,
        outside,
    )
    for conn_type, secret in (("useapi", "API token"), ("writetext", "API key")):
        behaviour = found["behaviours"][conn_type]
        assert behaviour, f"no field behaviour for {conn_type}"
        assert {"schema", "port", "login"} <= set(behaviour["hidden_fields"]), behaviour
        assert behaviour["relabeling"]["password"] == secret, behaviour
    assert "extra__useapi__api_version" in found["widgets"]
    assert found["testable"] == {"useapi": True, "writetext": True}, found["testable"]


def test_installed_hooks_talk_to_the_installed_emulator(
    venv_env: dict[str, str], outside: Path
) -> None:
    """The wheel is usable on its own: its emulator serves, its hooks' test buttons pass."""
    result = venv_python(
        """
        import json, os
        from airflow_provider_cancel.emulator import Emulator
        with Emulator() as emu:
            os.environ["AIRFLOW_CONN_USEAPI_DEFAULT"] = json.dumps(
                {"conn_type": "useapi", "host": emu.url, "password": "emulator-useapi-token"})
            os.environ["AIRFLOW_CONN_WRITETEXT_DEFAULT"] = json.dumps(
                {"conn_type": "writetext", "host": emu.url, "password": "emulator-writetext-key"})
            from airflow_provider_cancel.hooks.useapi import UseApiHook
            from airflow_provider_cancel.hooks.writetext import WriteTextHook
            print(json.dumps([UseApiHook().test_connection(), WriteTextHook().test_connection()]))
        """,
        venv_env,
        outside,
    )
    assert [ok for ok, _ in result] == [True, True], result
