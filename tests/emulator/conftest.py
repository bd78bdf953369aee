"""Fixtures for the emulator's own tests (kept here: ``tests/conftest.py`` belongs to the suite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from airflow_provider_cancel.emulator import Emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """An in-process emulator with short delays, stopped after the test."""
    with Emulator(start_delay=0.05, cancel_delay=0.2) as emu:
        yield emu


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s
