"""cancel_on_deadline: what ``DeadlineAlert(callback=...)`` takes, checked at DAG parse, and the
callback Airflow awaits in the triggerer when a run misses its deadline, against the emulator.

The run's XCom is read through the triggerer's supervisor (``XCom.get_one``); here the XCom
read is given (``run_xcom``) because no supervisor runs under pytest. ``make e2e``
(``deadline-missed``) runs the whole path on a real deployment."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from airflow_provider_cancel import _compat
from airflow_provider_cancel.callbacks import cancel_jobs_on_deadline, cancel_on_deadline
from airflow_provider_cancel.exceptions import InvalidJobIdError
from airflow_provider_cancel.hooks.transport import close_async_clients
from tests.conftest import FAST

CONTEXT = {
    "dag_run": {"dag_id": "nightly", "dag_run_id": "manual__1", "state": "running"},
    "deadline": {"id": "d-1", "deadline_time": "2026-01-01T00:00:00+00:00"},
}
needs_deadlines = pytest.mark.skipif(
    _compat.deadline_async_callback() is None,
    reason="DeadlineAlert callbacks arrived in Airflow 3.1",
)


@pytest.fixture(autouse=True)
async def _close_async_clients() -> AsyncIterator[None]:
    yield
    await close_async_clients()


@pytest.fixture
def run_xcom(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], list[tuple[Any, ...]]]:
    """``run_xcom({"submit": value})``: the XCom the run's tasks pushed; returns the reads."""

    def given(values: dict[str, Any]) -> list[tuple[Any, ...]]:
        reads: list[tuple[Any, ...]] = []

        async def pull(dag_id: str, run_id: str, task_id: str, key: str) -> Any:
            reads.append((dag_id, run_id, task_id, key))
            value = values[task_id]
            if isinstance(value, BaseException):
                raise value
            return value

        monkeypatch.setattr(_compat, "apull_run_xcom", pull)
        return reads

    return given


# ---------------------------------------------------------------------- at DAG parse


@needs_deadlines
def test_returns_an_async_callback_for_deadline_alert() -> None:
    from datetime import timedelta

    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    callback = cancel_on_deadline("useapi_default", job_ids=["a", "b"], xcom_task_ids="submit")
    alert = DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=5),
        callback=callback,
    )

    assert type(alert.callback).__name__ == "AsyncCallback"
    data = callback.serialize()
    assert data["path"] == "airflow_provider_cancel.callbacks.cancel_jobs_on_deadline"
    assert json.loads(json.dumps(data["kwargs"])) == {
        "conn_id": "useapi_default",
        "job_ids": ["a", "b"],
        "xcom_task_ids": ["submit"],
        "xcom_key": "return_value",
        "hook_params": {},
    }


@needs_deadlines
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "give job_ids, xcom_task_ids or both"),
        ({"job_ids": "None"}, InvalidJobIdError, "missing XCom"),
        ({"job_ids": []}, InvalidJobIdError, "empty"),
        ({"xcom_task_ids": ["submit", ""]}, ValueError, "xcom_task_ids must be task ids"),
        ({"xcom_task_ids": [3]}, ValueError, "xcom_task_ids must be task ids"),
    ],
)
def test_bad_input_fails_at_parse(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        cancel_on_deadline("useapi_default", **kwargs)


def test_without_deadline_alerts_it_fails_at_parse_naming_the_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real answer on Airflow 2.11 and 3.0 (tests run there under make test-airflow2).
    if _compat.deadline_async_callback() is not None:
        monkeypatch.setattr(_compat, "deadline_async_callback", lambda: None)
    with pytest.raises(RuntimeError, match=r"Airflow 3\.1 added; this is Airflow \d"):
        cancel_on_deadline("useapi_default", xcom_task_ids="submit")


# ---------------------------------------------------------------------- in the triggerer


async def test_cancels_literal_ids_and_those_the_run_pushed(
    emulator: Any, useapi_conn: str, run_xcom: Callable[..., list[tuple[Any, ...]]]
) -> None:
    literal, pushed, other = (emulator.submit_useapi() for _ in range(3))
    reads = run_xcom({"submit": [pushed, literal], "render": other})

    result = await cancel_jobs_on_deadline(
        useapi_conn,
        job_ids=[literal],
        xcom_task_ids=["submit", "render"],
        hook_params=FAST,
        context=CONTEXT,
    )

    assert result == "cancelled 3 of 3 job(s)"
    assert [emulator.job(j)["cancel_calls"] for j in (literal, pushed, other)] == [1, 1, 1]
    assert reads == [
        ("nightly", "manual__1", "submit", "return_value"),
        ("nightly", "manual__1", "render", "return_value"),
    ]


async def test_an_unreadable_xcom_still_cancels_the_rest(
    emulator: Any, useapi_conn: str, run_xcom: Callable[..., list[tuple[Any, ...]]]
) -> None:
    literal, pushed = emulator.submit_useapi(), emulator.submit_useapi()
    run_xcom({"broken": LookupError("no such XCom"), "empty": None, "submit": pushed})

    result = await cancel_jobs_on_deadline(
        useapi_conn,
        job_ids=literal,
        xcom_task_ids=["broken", "empty", "submit"],
        hook_params=FAST,
        context=CONTEXT,
    )

    assert result == "cancelled 2 of 2 job(s)"
    assert [emulator.job(j)["cancel_calls"] for j in (literal, pushed)] == [1, 1]


async def test_a_failing_cancel_is_reported_not_raised(
    emulator: Any, useapi_conn: str, run_xcom: Callable[..., list[tuple[Any, ...]]]
) -> None:
    job = emulator.submit_useapi()
    emulator.inject("500", count=100, call="cancel")
    run_xcom({})

    result = await cancel_jobs_on_deadline(
        useapi_conn, job_ids=[job], hook_params={**FAST, "retry_limit": 1}, context=CONTEXT
    )

    assert result == f"cancelled 0 of 1 job(s); may still be running: {job}"
    assert emulator.job(job)["normalized"] != "cancelled"
