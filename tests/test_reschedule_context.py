"""Airflow 3.0's in-process supervisor hands a sensor its first reschedule date as text;
``_compat.reschedule_context`` gives BaseSensorOperator a datetime there, and changes nothing
on other versions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_cancel import _compat


class TextDateTI:
    task_id = "wait"

    def get_first_reschedule_date(self, context: Any) -> str:
        return "2026-12-08T01:02:03.456789Z"


@pytest.mark.skipif(
    not _compat.AIRFLOW_V_3_0_PLUS or _compat.AIRFLOW_V_3_1_PLUS,
    reason="Airflow 3.0 only: its in-process supervisor sends the date as text",
)
def test_on_airflow_3_0_the_first_reschedule_date_is_a_datetime() -> None:
    context = _compat.reschedule_context({"ti": TextDateTI(), "task_reschedule_count": 1})

    first = context["ti"].get_first_reschedule_date(context)

    assert first == datetime(2026, 12, 8, 1, 2, 3, 456789, tzinfo=UTC)
    assert context["ti"].task_id == "wait"  # everything else is the task instance's


@pytest.mark.skipif(
    _compat.AIRFLOW_V_3_0_PLUS and not _compat.AIRFLOW_V_3_1_PLUS,
    reason="the other versions: Airflow 3.0 is the one that needs the shim",
)
def test_elsewhere_the_context_is_left_as_it_is() -> None:
    context = {"ti": TextDateTI()}

    assert _compat.reschedule_context(context) is context
