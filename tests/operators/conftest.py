"""Helpers for running ``CancelJobOperator.execute`` outside a task runner (no Airflow DB)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_cancel._compat import Context


class FakeTI:
    """The slice of a task instance the operator uses: ``xcom_push`` and ``xcom_pull``."""

    def __init__(self, xcoms: dict[str, Any] | None = None, task_id: str = "cancel") -> None:
        self.task_id = task_id
        self.xcoms = dict(xcoms or {})
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        if key != "return_value":
            return None
        return self.xcoms.get(task_ids)


@pytest.fixture
def make_context() -> Callable[..., Context]:
    """``make_context(xcoms={"submit": value})`` -> ``{"ti": ..., "task_instance": ...}``."""

    def _make(xcoms: dict[str, Any] | None = None) -> Context:
        ti = FakeTI(xcoms)
        return {"ti": ti, "task_instance": ti}

    return _make
