"""The emulator is an independent oracle: it imports nothing of the package it tests.

Its paths, statuses and codes are written from the APIs' documentation (``emulator/catalog.py``
and one module per API). Were it to import a hook's description, a wrong path in the hook would
be copied into the emulator and every test against it would still pass.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_cancel.emulator

EMULATOR = Path(airflow_provider_cancel.emulator.__file__).parent
MODULES = sorted(EMULATOR.glob("*.py"))


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """``(level, module)`` of every import in ``tree``, nested ones (in functions) included;
    ``level`` is the number of leading dots of a relative import."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def foreign(level: int, module: str) -> bool:
    """An import of anything but the standard library or the emulator's own modules."""
    if level == 1:
        return False  # from .state import ..., from . import useapi
    if level > 1:
        return True  # from ..hooks import ...
    top = module.partition(".")[0]
    if top == "airflow_provider_cancel":
        return not module.startswith("airflow_provider_cancel.emulator")
    return top not in sys.stdlib_module_names


def test_the_emulator_has_modules_to_scan() -> None:
    assert len(MODULES) > 10
    assert EMULATOR / "catalog.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_an_emulator_module_imports_only_the_standard_library_and_its_own(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    bad = [(level, module) for level, module in imported(tree) if foreign(level, module)]
    assert bad == [], f"{path.name} imports {bad}"


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("from airflow_provider_cancel.hooks.useapi_services import SERVICES", True),
        ("from ..hooks import useapi_services", True),
        ("from .. import status", True),
        ("import airflow_provider_cancel.status", True),
        ("def f():\n    from airflow_provider_cancel.answers import CancelCodes", True),
        ("import requests", True),
        ("from .catalog import SERVICES", False),
        ("from airflow_provider_cancel.emulator.catalog import SERVICES", False),
        ("import json, urllib.parse", False),
    ],
)
def test_the_scan_sees_a_foreign_import(source: str, bad: bool) -> None:
    assert any(foreign(*found) for found in imported(ast.parse(source))) is bad


def test_importing_the_emulator_loads_no_other_package_module() -> None:
    """At run time too (a scan cannot see ``importlib`` calls): beyond what importing the
    package's ``__init__`` loads, only emulator modules."""
    script = (
        "import json, sys\n"
        "import airflow_provider_cancel\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_cancel.emulator.__main__\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    package = [m for m in loaded if m.startswith("airflow_provider_cancel.")]
    assert package
    assert [m for m in package if not m.startswith("airflow_provider_cancel.emulator")] == []
    assert "requests" not in loaded
