"""cancel_on_deadline: what ``DeadlineAlert(callback=...)`` takes, checked at DAG parse, and the
callback Airflow awaits in the triggerer when a run misses its deadline, against the emulator.

The run's XCom is read through the triggerer's supervisor (``GetTaskStates``, then ``GetXCom``
for each map index); here ``Supervisor`` answers those messages in its place, at the transport
(``SUPERVISOR_COMMS.send``), because no supervisor runs under pytest. ``make e2e``
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


class Supervisor:
    """The triggerer's supervisor, at the transport (``SUPERVISOR_COMMS.send``): answers
    ``GetTaskStates`` and ``GetXCom`` for a run whose tasks pushed ``pushed``: a task's value,
    ``{map_index: value}`` for a mapped task; an exception value fails that ``GetXCom``."""

    def __init__(self, pushed: dict[str, Any]) -> None:
        self.pushed = pushed
        self.asked: list[tuple[Any, ...]] = []

    def instances(self, task_id: str) -> dict[str, Any]:
        value = self.pushed.get(task_id, {})  # a task the run does not have: no instance
        if task_id in self.pushed and not isinstance(value, dict):
            return {task_id: value}
        return {f"{task_id}_{index}": v for index, v in value.items()}

    def send(self, msg: Any) -> Any:
        from airflow.sdk.execution_time.comms import TaskStatesResult, XComResult
        from airflow.sdk.execution_time.xcom import XCom

        if msg.type == "GetTaskStates":
            (task_id,) = msg.task_ids
            self.asked.append((msg.type, task_id))
            assert (msg.dag_id, msg.run_ids) == ("nightly", ["manual__1"])
            states = {key: "success" for key in self.instances(task_id)}
            return TaskStatesResult(task_states={"manual__1": states} if states else {})
        assert msg.type == "GetXCom", msg
        assert (msg.dag_id, msg.run_id, msg.key) == ("nightly", "manual__1", "return_value")
        self.asked.append((msg.type, msg.task_id, msg.map_index))
        key = msg.task_id if msg.map_index < 0 else f"{msg.task_id}_{msg.map_index}"
        value = self.instances(msg.task_id).get(key)
        if isinstance(value, BaseException):
            raise value
        stored = None if value is None else XCom.serialize_value(value)
        return XComResult(key=msg.key, value=stored)


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], Supervisor]:
    """``supervisor({"submit": value})``: the triggerer's supervisor for that run."""

    def given(pushed: dict[str, Any]) -> Supervisor:
        from airflow.sdk.execution_time import task_runner

        comms = Supervisor(pushed)
        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
        return comms

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
    # The real answer on Airflow 2.11 and 3.0 (make test-compat runs the tests there).
    if _compat.deadline_async_callback() is not None:
        monkeypatch.setattr(_compat, "deadline_async_callback", lambda: None)
    with pytest.raises(RuntimeError, match=r"Airflow 3\.1 added; this is Airflow \d"):
        cancel_on_deadline("useapi_default", xcom_task_ids="submit")


# ---------------------------------------------------------------------- in the triggerer


@needs_deadlines
async def test_cancels_literal_ids_and_those_every_instance_pushed(
    emulator: Any, useapi_conn: str, supervisor: Callable[..., Supervisor]
) -> None:
    literal, pushed, *mapped = (emulator.submit_useapi() for _ in range(5))
    comms = supervisor({"submit": [pushed, literal], "batch": dict(enumerate(mapped))})

    result = await cancel_jobs_on_deadline(
        useapi_conn,
        job_ids=[literal],
        xcom_task_ids=["submit", "batch"],
        hook_params=FAST,
        context=CONTEXT,
    )

    assert result == "cancelled 5 of 5 job(s)"
    assert [emulator.job(j)["cancel_calls"] for j in (literal, pushed, *mapped)] == [1] * 5
    assert comms.asked == [
        ("GetTaskStates", "submit"),
        ("GetXCom", "submit", -1),
        ("GetTaskStates", "batch"),
        *(("GetXCom", "batch", index) for index in range(3)),
    ]


@needs_deadlines
async def test_an_unreadable_xcom_still_cancels_the_rest(
    emulator: Any,
    useapi_conn: str,
    supervisor: Callable[..., Supervisor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    literal, first, last = (emulator.submit_useapi() for _ in range(3))
    supervisor(
        {
            "broken": LookupError("no such XCom"),
            "empty": None,
            "batch": {0: first, 1: RuntimeError("XCom backend down"), 2: None, 3: last},
        }
    )

    result = await cancel_jobs_on_deadline(
        useapi_conn,
        job_ids=literal,
        xcom_task_ids=["broken", "empty", "gone", "batch"],
        hook_params=FAST,
        context=CONTEXT,
    )

    assert result == "cancelled 3 of 3 job(s)"
    assert [emulator.job(j)["cancel_calls"] for j in (literal, first, last)] == [1, 1, 1]
    text = caplog.text
    assert "could not read the XCom of task 'broken'" in text
    assert "could not read the XCom of task 'batch[1]'" in text
    assert "could not list the map indexes of task 'gone'" in text
    assert "task 'batch[2]' pushed nothing" in text


async def test_a_failing_cancel_is_reported_not_raised(emulator: Any, useapi_conn: str) -> None:
    job = emulator.submit_useapi()
    emulator.inject("500", count=100, call="cancel")

    result = await cancel_jobs_on_deadline(
        useapi_conn, job_ids=[job], hook_params={**FAST, "retry_limit": 1}, context=CONTEXT
    )

    assert result == f"cancelled 0 of 1 job(s); may still be running: {job!r}"
    assert emulator.job(job)["normalized"] != "cancelled"
