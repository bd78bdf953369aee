"""Fixtures for the emulator's own tests; the ``emulator`` fixture is the suite's (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s
