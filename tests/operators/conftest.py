"""Helpers for running ``CancelJobOperator.execute`` outside a task runner (no Airflow DB)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import Context

from tests.fakes import FakeTI


@pytest.fixture
def make_context() -> Callable[..., Context]:
    """``make_context(xcoms={"submit": value})`` -> ``{"ti": ..., "task_instance": ...}``."""

    def _make(xcoms: dict[str, Any] | None = None) -> Context:
        ti = FakeTI(xcoms)
        return {"ti": ti, "task_instance": ti}

    return _make
