"""The core never names an API: outside ``hooks/`` and ``emulator/`` no module imports an API's
module or names an API, a useapi.net service or an API's own hook parameter in its code.

Docstrings and comments may (they show examples such as ``conn_id="useapi_default"``); code may
not: what differs per API is asked of the hook (``hooks/contract.py``) or read from the API
descriptions (``hooks/apis.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_cancel"
API_PLACES = ("hooks", "emulator")
NOT_YET = {
    # Issue 19 (Deliver 2): the plugin and stopping still carry useapi's hook parameters
    # ("service", "api_version"); another change is moving that to the hook. Tighten then.
    "plugin.py",
    "stopping.py",
}
# Written out here, not read from the code: the names a user would recognise as one API's.
API_WORDS = (
    "useapi",
    "writetext",
    "midjourney",
    "faceswap",
    "flowmusic",
    "gemini",
    "kling",
    "minimax",
    "pixverse",
    "tempolor",
    "discord",
    "api_version",
)
API_MODULES = ("useapi", "writetext")
"""``hooks/<name>*.py``: an API's own modules."""


def _core_modules() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in API_PLACES
        and path.relative_to(PACKAGE).as_posix() not in NOT_YET
    )


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            # a string statement is documentation wherever it stands (attribute docstrings too)
            for statement in body:
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                    found.add(id(statement.value))
    return found


def names_of_apis(source: str) -> list[str]:
    """Every API name in ``source``'s code (not its docstrings or comments), and every import
    of an API's module."""
    tree = ast.parse(source)
    documentation = _docstrings(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        texts: list[str] = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in documentation:
                texts.append(node.value)
        elif isinstance(node, ast.Name):
            texts.append(node.id)
        elif isinstance(node, ast.Attribute):
            texts.append(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            texts.append(node.name)
        elif isinstance(node, (ast.arg, ast.keyword)):
            texts.append(node.arg or "")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            texts.extend([module, *(alias.name for alias in node.names)])
            if module.endswith(".hooks"):  # from airflow_provider_cancel.hooks import useapi
                texts.extend(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            texts.extend(alias.name for alias in node.names)
        for text in texts:
            lowered = text.lower()
            found.extend(
                f"line {getattr(node, 'lineno', '?')}: {word!r} in {text[:60]!r}"
                for word in API_WORDS
                if word in lowered
            )
    return found


def test_the_scan_finds_what_it_must() -> None:
    """The check can fail: each way of naming an API is found, documentation is not."""
    source = '''
"""Module doc: conn_id="useapi_default" is an example."""
from airflow_provider_cancel.hooks.useapi_services import find_service
from airflow_provider_cancel.hooks import writetext
import airflow_provider_cancel.hooks.useapi
def f(hook_params):
    """Docstring naming Midjourney."""
    x = "useapi.net service 'kling' cannot be waited on"
    hook_params.get("api_version")
    return getattr(hook, "pixverse_thing")  # a comment on MiniMax
'''
    found = " ".join(names_of_apis(source))
    for word in ("useapi_services", "writetext", "airflow_provider_cancel.hooks.useapi", "kling"):
        assert word in found, word
    assert "'api_version'" in found
    assert "'pixverse'" in found
    assert "midjourney" not in found
    assert "minimax" not in found
    assert "example" not in found


@pytest.mark.parametrize(
    "path", _core_modules(), ids=lambda path: path.relative_to(PACKAGE).as_posix()
)
def test_no_core_module_names_an_api(path: Path) -> None:
    assert names_of_apis(path.read_text()) == []
