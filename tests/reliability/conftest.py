"""Fixtures of the reliability suite: the suite's emulator, per module with its own secrets and
connections pointing at it.

Secrets differ from the emulator's defaults (and from the other suites'), so a test that greps
for them cannot be fooled by a default value printed somewhere else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import tests.conftest
from airflow_provider_cancel.hooks import writetext

from .fault_matrix import USEAPI_TOKEN, WRITETEXT_KEY

FAST: dict[str, Any] = {**tests.conftest.FAST, "retry_limit": 2, "timeout": 0.5}
CONNS = {"useapi_v2": "rel_useapi", "useapi_v3": "rel_useapi_v3", "writetext": "rel_writetext"}


def conn_env(conn_id: str, conn_type: str, **fields: Any) -> tuple[str, str]:
    data = {"conn_type": conn_type, **{k: v for k, v in fields.items() if v is not None}}
    return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(data)


@pytest.fixture(scope="module")
def emu(_emulator_server: Any) -> Iterator[Any]:
    """The suite's emulator (tests/conftest.py) with this suite's secrets and its connections set,
    for the module; reset by ``fresh_emu``."""
    emulator = _emulator_server
    emulator.configure(useapi_token=USEAPI_TOKEN, writetext_api_key=WRITETEXT_KEY)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (
            conn_env(CONNS["useapi_v2"], "useapi", host=emulator.url, password=USEAPI_TOKEN),
            conn_env(
                CONNS["useapi_v3"],
                "useapi",
                host=emulator.url,
                password=USEAPI_TOKEN,
                extra={"api_version": "v3"},
            ),
            conn_env(CONNS["writetext"], "writetext", host=emulator.url, password=WRITETEXT_KEY),
        ):
            patch.setenv(name, value)
        try:
            yield emulator
        finally:
            emulator.configure(**emulator._test_baseline)


@pytest.fixture
def fresh_emu(emu: Any) -> Any:
    """The module's emulator with jobs, counters, faults, tokens and log reset."""
    emu.reset()
    writetext.TOKEN_CACHE.clear()
    return emu
