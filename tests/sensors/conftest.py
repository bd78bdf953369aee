"""Helpers for running ``JobCancelledSensor`` outside a task runner (no Airflow DB)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


class FakeTI:
    """The slice of a task instance a sensor uses: XCom and, in reschedule mode, the date of
    the first reschedule (``None``: this is the first try)."""

    def __init__(self, xcoms: dict[str, Any] | None = None, task_id: str = "wait") -> None:
        self.task_id = task_id
        self.xcoms = dict(xcoms or {})
        self.pushed: dict[str, Any] = {}
        self.first_reschedule_date: Any = None

    def get_first_reschedule_date(self, context: Any) -> Any:
        return self.first_reschedule_date

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        if key != "return_value":
            return None
        return self.xcoms.get(task_ids)


@pytest.fixture
def make_context() -> Callable[..., dict[str, Any]]:
    """``make_context(xcoms={"submit": value})`` -> ``{"ti": ..., "task_instance": ...}``."""

    def _make(xcoms: dict[str, Any] | None = None) -> dict[str, Any]:
        ti = FakeTI(xcoms)
        return {"ti": ti, "task_instance": ti}

    return _make
