"""Helpers for running ``JobCancelledSensor`` outside a task runner (no Airflow DB)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import Context

from airflow_provider_cancel._compat import AIRFLOW_V_3_0_PLUS
from tests.fakes import FakeTI


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
        ti = FakeTI(xcoms, task_id="wait")
        made[ti.run_id] = ti
        return {"ti": ti, "task_instance": ti}

    return _make
