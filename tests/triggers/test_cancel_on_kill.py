"""JobStatusTrigger's cancel on kill: it cancels only when Airflow says the task left deferral.

The task instance's state is what Airflow's triggerer supervisor answers (``GetTaskStates``);
here it is given (``task_state``), because these tests check the trigger's decision and the
cancel calls, against the in-process emulator. ``make e2e`` checks the same on a real
deployment (mark failed, run marked failed, triggerer restart and recovery)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_cancel import _compat
from airflow_provider_cancel.hooks.transport import close_async_clients
from airflow_provider_cancel.triggers import status as trigger_module
from airflow_provider_cancel.triggers.status import JobStatusTrigger
from tests.conftest import FAST


@pytest.fixture(autouse=True)
async def _close_async_clients() -> AsyncIterator[None]:
    yield
    await close_async_clients()


@pytest.fixture
def task_state(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[Any]]:
    """``task_state("failed")``: what Airflow answers for the trigger's task instance (an
    exception instance is raised instead); ``task_state("deferred", "failed")``: the first
    answer, then the next (the last one repeats). Returns the task instances asked about."""

    def answer(*states: Any) -> list[Any]:
        asked: list[Any] = []

        async def lookup(ti: Any) -> str | None:
            asked.append(ti)
            state = states[min(len(asked), len(states)) - 1]
            if isinstance(state, BaseException):
                raise state
            return state

        monkeypatch.setattr(_compat, "atask_instance_state", lookup)
        return asked

    return answer


def deferred_trigger(conn_id: str, job_ids: list[str], **kwargs: Any) -> JobStatusTrigger:
    kwargs.setdefault("cancel_on_kill", True)
    made = JobStatusTrigger(
        conn_id=conn_id, job_ids=job_ids, poll_interval=0.05, hook_params=dict(FAST), **kwargs
    )
    # What the triggerer sets on a trigger it runs for a deferred task.
    made.task_instance = SimpleNamespace(dag_id="d", task_id="wait_done", run_id="r", map_index=-1)
    return made


@pytest.mark.parametrize("state", ["failed", "success", None, "scheduled", "up_for_retry"])
async def test_on_kill_cancels_when_the_task_left_deferral(
    emulator: Any, useapi_conn: str, task_state: Callable[..., list[Any]], state: Any
) -> None:
    jobs = [emulator.submit_useapi(), emulator.submit_useapi()]
    asked = task_state(state)
    killed = deferred_trigger(useapi_conn, jobs)

    await killed.on_kill()

    assert [emulator.job(job)["normalized"] for job in jobs] == ["cancelled", "cancelled"]
    assert [emulator.job(job)["cancel_calls"] for job in jobs] == [1, 1]
    assert [ti.task_id for ti in asked] == ["wait_done"]


async def test_on_kill_never_cancels_while_the_task_is_still_deferred(
    emulator: Any, useapi_conn: str, task_state: Callable[..., list[Any]]
) -> None:
    # A trigger moved to another triggerer gets on_kill too (apache/airflow#73454).
    job = emulator.submit_useapi()
    task_state("deferred")

    await deferred_trigger(useapi_conn, [job]).on_kill()

    assert emulator.job(job)["cancel_calls"] == 0


async def test_on_kill_never_cancels_when_the_state_cannot_be_read(
    emulator: Any, useapi_conn: str, task_state: Callable[..., list[Any]]
) -> None:
    job = emulator.submit_useapi()
    task_state(ConnectionError("supervisor gone"))

    await deferred_trigger(useapi_conn, [job]).on_kill()  # never raises

    assert emulator.job(job)["cancel_calls"] == 0


async def test_on_kill_leaves_a_timed_out_deferral_to_the_resumed_task(
    emulator: Any, useapi_conn: str, task_state: Callable[..., list[Any]]
) -> None:
    job = emulator.submit_useapi()
    task_state("scheduled")
    timed_out = deferred_trigger(useapi_conn, [job])
    timed_out.timeout_after = datetime.now(UTC) - timedelta(seconds=1)

    await timed_out.on_kill()

    assert emulator.job(job)["cancel_calls"] == 0


async def test_on_kill_does_nothing_without_cancel_on_kill(
    emulator: Any, useapi_conn: str, task_state: Callable[..., list[Any]]
) -> None:
    job = emulator.submit_useapi()
    asked = task_state("failed")

    await deferred_trigger(useapi_conn, [job], cancel_on_kill=False).on_kill()

    assert emulator.job(job)["cancel_calls"] == 0
    assert asked == []


async def run_then_stop(t: JobStatusTrigger) -> None:
    """Run the trigger until it has polled, then cancel it as a triggerer does."""

    async def first_event() -> Any:
        return await anext(aiter(t.run()))

    task = asyncio.create_task(first_event())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def kill(t: JobStatusTrigger) -> None:
    """Stop the trigger as a triggerer does when a user acts on its task: cancel it, then call
    ``on_kill`` where Airflow has it (>= 3.3; before, the cancellation alone cancels)."""
    await run_then_stop(t)
    if trigger_module.HAS_TRIGGER_ON_KILL:
        await t.on_kill()


@pytest.mark.parametrize(("state", "cancelled"), [("failed", True), ("deferred", False)])
async def test_before_airflow_3_3_the_cancelled_error_path_checks_the_state(
    emulator: Any,
    useapi_conn: str,
    task_state: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    state: str,
    cancelled: bool,
) -> None:
    monkeypatch.setattr(trigger_module, "HAS_TRIGGER_ON_KILL", False)
    job = emulator.submit_useapi()
    task_state(state)

    await run_then_stop(deferred_trigger(useapi_conn, [job]))

    assert emulator.job(job)["cancel_calls"] == (1 if cancelled else 0)


async def test_on_airflow_3_3_a_plain_cancellation_never_cancels_jobs(
    emulator: Any,
    useapi_conn: str,
    task_state: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Triggerer shutdown cancels without calling on_kill; only on_kill may cancel jobs.
    monkeypatch.setattr(trigger_module, "HAS_TRIGGER_ON_KILL", True)
    job = emulator.submit_useapi()
    task_state("failed")

    await run_then_stop(deferred_trigger(useapi_conn, [job]))

    assert emulator.job(job)["cancel_calls"] == 0


async def test_a_failing_cancel_in_the_triggerer_names_the_jobs_left_running(
    emulator: Any,
    useapi_conn: str,
    task_state: Callable[..., list[Any]],
    all_logs: Callable[[], str],
) -> None:
    jobs = [emulator.submit_useapi(), emulator.submit_useapi()]
    emulator.inject("500", count=100, call="cancel")
    task_state("failed")
    killed = JobStatusTrigger(
        conn_id=useapi_conn,
        job_ids=jobs,
        hook_params={**FAST, "retry_limit": 1},
        cancel_on_kill=True,
    )
    killed.task_instance = SimpleNamespace(
        dag_id="d", task_id="wait_done", run_id="r", map_index=-1
    )

    await killed.on_kill()

    lines = [line for line in all_logs().splitlines() if "may still be running" in line]
    assert any(all(job in line for job in jobs) for line in lines), lines


async def test_on_kill_finishes_although_the_triggerer_cancels_it_again_meanwhile(
    emulator: Any, useapi_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Airflow 3.3's triggerer re-sends the cancel on every loop until the trigger's task ends.
    job = emulator.submit_useapi()

    async def slow_lookup(ti: Any) -> str:
        await asyncio.sleep(0.5)
        return "failed"

    monkeypatch.setattr(_compat, "atask_instance_state", slow_lookup)
    killing = asyncio.create_task(deferred_trigger(useapi_conn, [job]).on_kill())
    await asyncio.sleep(0.05)  # on_kill has started (the triggerer awaits it directly)
    while not killing.done():
        killing.cancel()
        await asyncio.sleep(0.05)

    assert emulator.job(job)["cancel_calls"] == 1
    assert emulator.job(job)["normalized"] == "cancelled"


async def test_a_task_marked_failed_as_its_trigger_starts_is_cancelled(
    emulator: Any, useapi_conn: str, task_state: Callable[..., list[Any]]
) -> None:
    # The user marks the task failed while the triggerer is starting its trigger: whatever
    # the trigger read of the state when it started, the kill that follows cancels (a trigger
    # that exits on a state read at its start misses it: seen on a real deployment).
    job = emulator.submit_useapi()
    task_state("failed")
    trigger = deferred_trigger(useapi_conn, [job])

    await kill(trigger)

    assert emulator.job(job)["cancel_calls"] == 1


@pytest.mark.parametrize(
    ("state", "said"),
    [
        ("failed", "was marked failed"),
        ("success", "was marked success"),
        (None, "was cleared"),
        ("up_for_retry", "left deferral (it is now 'up_for_retry')"),
    ],
)
async def test_a_kill_says_what_airflow_did_then_cancels(
    emulator: Any,
    useapi_conn: str,
    task_state: Callable[..., list[Any]],
    all_logs: Callable[[], str],
    state: Any,
    said: str,
) -> None:
    job = emulator.submit_useapi()
    task_state(state)
    killed = deferred_trigger(useapi_conn, [job])

    await kill(killed)

    assert (
        f"Task 'wait_done' {said}: cancelling 1 job(s) on useapi.net (Midjourney v2)" in all_logs()
    )
    assert "on_kill" not in all_logs()
    assert emulator.job(job)["cancel_calls"] == 1
