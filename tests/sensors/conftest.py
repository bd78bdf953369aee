"""Helpers for running ``JobCancelledSensor`` outside a task runner (no Airflow DB)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_cancel._compat import AIRFLOW_V_3_0_PLUS, Context

_RUN_IDS = itertools.count()


class FakeTI:
    """The slice of a task instance a sensor uses: XCom and, in reschedule mode, the date of
    the first reschedule (``None``: this is the first try).

    Airflow 3 asks the task instance for that date (``get_first_reschedule_date``). Airflow 2
    reads ``max_tries`` and the TI's keys, and looks the date up in the metadata DB's
    ``task_reschedule`` table; ``make_context`` points that lookup at ``first_reschedule_date``
    too, so a test sets the date the same way on both versions."""

    def __init__(self, xcoms: dict[str, Any] | None = None, task_id: str = "wait") -> None:
        self.task_id = task_id
        self.dag_id = "fake_dag"
        self.run_id = f"fake_run_{next(_RUN_IDS)}"
        self.map_index = -1
        self.max_tries = 0
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
def make_context(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Context]:
    """``make_context(xcoms={"submit": value})`` -> ``{"ti": ..., "task_instance": ...}``."""
    made: dict[str, FakeTI] = {}

    if not AIRFLOW_V_3_0_PLUS:
        # Airflow 2.11's BaseSensorOperator.execute reads the first try's start from the
        # task_reschedule table through this module function; answer from the FakeTI instead.
        import airflow.sensors.base

        def orig_start_date(*, run_id: str, **_: Any) -> Any:
            return made[run_id].first_reschedule_date

        monkeypatch.setattr(airflow.sensors.base, "_orig_start_date", orig_start_date)

    def _make(xcoms: dict[str, Any] | None = None) -> Context:
        ti = FakeTI(xcoms)
        made[ti.run_id] = ti
        return {"ti": ti, "task_instance": ti}

    return _make
