"""JobStatusSensor: waiting for completion, and cancelling what it watches when Airflow stops
the wait (timeout, execution_timeout, a kill, a timed-out deferral), against the in-process
emulator. What a real deployment does with these hooks is checked by ``make e2e``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    TaskDeferred,
)
from airflow.providers.common.compat.sdk import Context as TaskContext

from airflow_provider_cancel._compat import AIRFLOW_V_3_0_PLUS, AirflowRescheduleException
from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor
from airflow_provider_cancel.sensors.status import JobStatusSensor
from airflow_provider_cancel.stopping import WATCHING_KEY
from tests.conftest import FAST
from tests.fakes import FakeTaskStateStore

Context = Callable[..., TaskContext]


def sensor(conn_id: str, job_id: Any, **kwargs: Any) -> JobStatusSensor:
    kwargs.setdefault("task_id", "wait_done")
    kwargs.setdefault("hook_params", dict(FAST))
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 10)
    kwargs.setdefault("deferrable", False)
    return JobStatusSensor(conn_id=conn_id, job_id=job_id, **kwargs)


def statuses(emulator: Any, *job_ids: str) -> list[str]:
    return [emulator.job(job_id)["normalized"] for job_id in job_ids]


# ---------------------------------------------------------------------- waiting


def test_defaults_wait_for_completed_and_cancel_on_kill_and_timeout() -> None:
    wait = JobStatusSensor(task_id="w", conn_id="useapi_default", job_id="j")
    assert wait.success_statuses == ["completed"]
    assert (wait.cancel_on_kill, wait.cancel_on_timeout) == (True, True)
    cancelled = JobCancelledSensor(task_id="c", conn_id="useapi_default", job_id="j")
    assert cancelled.success_statuses == ["cancelled"]
    assert (cancelled.cancel_on_kill, cancelled.cancel_on_timeout) == (False, False)
    assert isinstance(cancelled, JobStatusSensor)


def test_succeeds_when_the_job_completes(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    emulator.configure(job_duration=0.5)
    job = emulator.submit_useapi()

    sensor(useapi_conn, job).execute(make_context())

    assert statuses(emulator, job) == ["completed"]
    assert emulator.job(job)["cancel_calls"] == 0


def test_a_cancelled_job_fails_fast_when_waiting_for_completion(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()
    emulator.set_status(job, "cancelled")

    with pytest.raises(AirflowFailException, match="will never reach a success status"):
        sensor(useapi_conn, job).execute(make_context())


# ---------------------------------------------------------------------- bad input at parse


@pytest.mark.parametrize("name", ["cancel_on_kill", "cancel_on_timeout"])
@pytest.mark.parametrize("value", ["yes", 1, None, "False"])
def test_flags_must_be_bools(name: str, value: Any) -> None:
    with pytest.raises(TypeError) as error:
        JobStatusSensor(task_id="wait_done", conn_id="c", job_id="j", **{name: value})
    assert "'wait_done'" in str(error.value)
    assert name in str(error.value)
    assert repr(value) in str(error.value)


@pytest.mark.parametrize("value", [[], (), ["done"], ["unknown"], "finished"])
def test_success_statuses_must_be_known_and_non_empty(value: Any) -> None:
    with pytest.raises(ValueError, match=r"Task 'wait_done': success_statuses="):
        JobStatusSensor(task_id="wait_done", conn_id="c", job_id="j", success_statuses=value)


# ---------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_timeout_cancels_the_jobs_first_then_fails(
    emulator: Any, useapi_conn: str, make_context: Context, mode: str
) -> None:
    jobs = [emulator.submit_useapi(), emulator.submit_useapi()]
    context = make_context()
    wait = sensor(useapi_conn, jobs, timeout=0.3, mode=mode)
    if mode == "reschedule":  # the first try was 10 s ago: this try finds the timeout passed
        from datetime import datetime

        context["ti"].first_reschedule_date = datetime.now(UTC) - timedelta(seconds=10)

    with pytest.raises(AirflowSensorTimeout):
        wait.execute(context)

    assert statuses(emulator, *jobs) == ["cancelled", "cancelled"]
    assert [emulator.job(job)["cancel_calls"] for job in jobs] == [1, 1]


def test_timeout_with_soft_fail_cancels_then_skips(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()

    with pytest.raises(AirflowSkipException):
        sensor(useapi_conn, job, timeout=0.3, soft_fail=True).execute(make_context())

    assert statuses(emulator, job) == ["cancelled"]


def test_soft_fail_skip_for_a_failed_job_is_not_a_timeout(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()
    emulator.set_status(job, "failed")

    with pytest.raises(AirflowSkipException):
        sensor(useapi_conn, job, soft_fail=True).execute(make_context())

    assert emulator.job(job)["cancel_calls"] == 0


def test_no_cancel_on_timeout_when_disabled(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()

    with pytest.raises(AirflowSensorTimeout):
        sensor(useapi_conn, job, timeout=0.3, cancel_on_timeout=False).execute(make_context())

    assert statuses(emulator, job) == ["running"]
    assert emulator.job(job)["cancel_calls"] == 0


def test_execution_timeout_while_poking_cancels_once(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    # What the task runner does with execution_timeout: a SIGALRM timeout around execute, then
    # on_kill() while AirflowTaskTimeout is being handled (task_runner.py, _execute_task).
    from airflow.providers.common.compat.sdk import timeout

    job = emulator.submit_useapi()
    wait = sensor(useapi_conn, job, timeout=60)

    def run_with_execution_timeout() -> None:
        try:
            with timeout(1):
                wait.execute(make_context())
        except AirflowTaskTimeout:
            wait.on_kill()
            raise

    with pytest.raises(AirflowTaskTimeout):
        run_with_execution_timeout()

    assert statuses(emulator, job) == ["cancelled"]
    assert emulator.job(job)["cancel_calls"] == 1


def test_a_timed_out_deferral_cancels_then_fails(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()
    wait = sensor(useapi_conn, job, deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred):
        wait.execute(make_context())
    if AIRFLOW_V_3_0_PLUS:
        next_kwargs = {"error": "Trigger timeout"}
    else:
        next_kwargs = {"error": "Trigger/execution timeout"}

    with pytest.raises((AirflowSensorTimeout, AirflowSkipException)) as error:
        wait.resume_execution("__fail__", next_kwargs, make_context())

    assert isinstance(error.value, AirflowSensorTimeout)
    assert statuses(emulator, job) == ["cancelled"]
    assert emulator.job(job)["cancel_calls"] == 1


# ---------------------------------------------------------------------- kills


def test_on_kill_cancels_every_watched_job_and_logs_each(
    emulator: Any, useapi_conn: str, all_logs: Callable[[], str]
) -> None:
    jobs = [emulator.submit_useapi() for _ in range(3)]
    wait = sensor(useapi_conn, jobs)

    wait.on_kill()

    assert statuses(emulator, *jobs) == ["cancelled"] * 3
    text = all_logs()
    stopped = "was stopped (marked failed or success, cleared, or its worker stopped)"
    assert f"Task 'wait_done' {stopped}: cancelling 3 job(s) on useapi.net (Midjourney v2)" in text
    for job in jobs:
        assert f"{job}: cancelled" in text


def test_on_kill_does_nothing_when_disabled(emulator: Any, useapi_conn: str) -> None:
    job = emulator.submit_useapi()

    sensor(useapi_conn, job, cancel_on_kill=False).on_kill()

    assert emulator.job(job)["cancel_calls"] == 0


def test_a_cancel_that_fails_during_a_kill_is_logged_with_the_ids_left_running(
    emulator: Any, useapi_conn: str, all_logs: Callable[[], str]
) -> None:
    jobs = [emulator.submit_useapi(), emulator.submit_useapi()]
    emulator.inject("500", count=100, call="cancel")
    wait = sensor(useapi_conn, jobs, hook_params={**FAST, "retry_limit": 1})

    wait.on_kill()  # never raises

    assert "cancelled" not in statuses(emulator, *jobs)
    lines = [line for line in all_logs().splitlines() if "may still be running" in line]
    assert any(all(job in line for job in jobs) for line in lines), lines
    events = [line for line in lines if "'log_level':" in line]
    if events:  # structlog events carry their level (3.1+; 3.0's operators log through stdlib)
        assert any("'log_level': 'error'" in line for line in events), lines


def test_a_kill_waits_no_longer_than_one_attempt_of_the_hook(
    emulator: Any, useapi_conn: str
) -> None:
    job = emulator.submit_useapi()
    emulator.inject("hang", count=100, call="cancel", hang_seconds=30)
    params = {**FAST, "timeout": 1.0, "connect_timeout": 1.0, "retry_limit": 5}
    wait = sensor(useapi_conn, job, hook_params=params)

    started = time.monotonic()
    wait.on_kill()

    # The budget (connect_timeout + timeout = 2 s), plus slack for a loaded machine; without
    # the bound, 6 attempts of a hanging server would take 12 s and more.
    assert time.monotonic() - started < 2.0 + 3
    emulator.clear_faults()


def test_a_deferral_ends_at_execution_timeout_when_that_is_sooner(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    # Airflow 3.3 keeps only defer(timeout=...) as a deferral's deadline: the sensor folds
    # what is left of execution_timeout into it.
    from datetime import datetime

    job = emulator.submit_useapi()
    context = make_context()
    context["ti"].start_date = datetime.now(UTC) - timedelta(seconds=20)
    wait = sensor(
        useapi_conn, job, deferrable=True, timeout=600, execution_timeout=timedelta(seconds=60)
    )

    with pytest.raises(TaskDeferred) as deferred:
        wait.execute(context)

    assert timedelta(seconds=35) <= deferred.value.timeout <= timedelta(seconds=40)


def test_a_deferral_ended_by_execution_timeout_cancels_then_fails_as_a_task_timeout(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    from datetime import datetime

    job = emulator.submit_useapi()
    wait = sensor(
        useapi_conn, job, deferrable=True, timeout=600, execution_timeout=timedelta(seconds=20)
    )
    context = make_context()
    context["ti"].start_date = datetime.now(UTC) - timedelta(seconds=21)

    with pytest.raises(AirflowTaskTimeout, match="execution_timeout of 20s reached"):
        wait.resume_execution("__fail__", {"error": "Trigger timeout"}, context)

    assert statuses(emulator, job) == ["cancelled"]


# ---------------------------------------------------------------------- between two pokes


def rescheduling(
    emulator: Any, conn_id: str, make_context: Context, **kwargs: Any
) -> tuple[JobStatusSensor, TaskContext, FakeTaskStateStore, str]:
    """A reschedule-mode sensor whose job runs, with a task state store in its context."""
    store = FakeTaskStateStore()
    context = make_context()
    context["task_state_store"] = store
    kwargs.setdefault("mode", "reschedule")
    return sensor(conn_id, emulator.submit_useapi(), **kwargs), context, store, WATCHING_KEY


def rescheduled(
    emulator: Any, conn_id: str, make_context: Context
) -> tuple[JobStatusSensor, TaskContext, FakeTaskStateStore, str]:
    """The same, after its first poke found the job running and gave the slot back."""
    wait, context, store, key = rescheduling(emulator, conn_id, make_context)
    with pytest.raises(AirflowRescheduleException):
        wait.execute(context)
    return wait, context, store, key


def test_a_reschedule_records_what_a_kill_before_the_next_poke_must_cancel(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    wait, _, store, key = rescheduled(emulator, useapi_conn, make_context)

    job = wait.job_id
    assert store.values == {
        key: {
            "try_number": 1,
            "max_tries": 0,
            "conn_id": useapi_conn,
            "job_ids": [job],
            "hook_params": FAST,
        }
    }
    assert emulator.job(job)["cancel_calls"] == 0


def test_the_next_poke_takes_the_record_and_cancels_nothing(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    wait, context, store, _ = rescheduled(emulator, useapi_conn, make_context)
    emulator.set_status(wait.job_id, "completed")

    wait.execute(context)  # the same try pokes again and succeeds

    assert store.values == {}
    assert emulator.job(wait.job_id)["cancel_calls"] == 0


def test_a_try_cleared_between_pokes_is_cancelled_by_the_next_try(
    emulator: Any, useapi_conn: str, make_context: Context, all_logs: Callable[[], str]
) -> None:
    wait, context, store, _ = rescheduled(emulator, useapi_conn, make_context)
    # Cleared: a new try, and Airflow raises max_tries to try_number + retries (a retry does not).
    context["ti"].try_number, context["ti"].max_tries = 2, 1

    # It cancels what try 1 watched, then finds that job cancelled, not completed.
    with pytest.raises(AirflowFailException, match="will never reach a success status"):
        wait.execute(context)

    assert emulator.job(wait.job_id)["cancel_calls"] == 1
    assert store.values == {}
    assert "try 1 was cleared while it waited between two pokes" in all_logs()


def test_a_retry_after_a_try_that_ended_between_pokes_keeps_waiting(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    # Try 1 rescheduled, then failed without poking again (e.g. stuck in the queue): a retry.
    wait, context, store, _ = rescheduled(emulator, useapi_conn, make_context)
    context["ti"].try_number = 2
    emulator.set_status(wait.job_id, "completed")

    wait.execute(context)

    assert emulator.job(wait.job_id)["cancel_calls"] == 0
    assert store.values == {}


def test_a_kill_during_a_poke_cancels_once_from_on_kill(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    wait, context, store, _ = rescheduled(emulator, useapi_conn, make_context)
    seen: list[dict[str, Any]] = []
    poke = wait.poke

    def poke_then_killed(ctx: Any) -> bool:
        seen.append(dict(store.values))  # what the API server's listener would find now
        wait.on_kill()
        return poke(ctx)

    wait.poke = poke_then_killed  # type: ignore[method-assign,assignment]
    with pytest.raises(AirflowFailException):
        wait.execute(context)

    assert seen == [{}]  # the listener finds no record while a poke runs: it cancels nothing
    assert emulator.job(wait.job_id)["cancel_calls"] == 1


@pytest.mark.parametrize(
    "kwargs", [{"mode": "poke"}, {"cancel_on_kill": False}, {"deferrable": True, "timeout": 1}]
)
def test_nothing_is_recorded_when_no_reschedule_kill_must_cancel(
    emulator: Any, useapi_conn: str, make_context: Context, kwargs: dict[str, Any]
) -> None:
    wait, context, store, _ = rescheduling(
        emulator, useapi_conn, make_context, **{"timeout": 0.2, **kwargs}
    )

    with pytest.raises((AirflowRescheduleException, AirflowSensorTimeout, TaskDeferred)):
        wait.execute(context)

    assert store.values == {}


def test_a_store_that_fails_is_logged_and_the_reschedule_goes_on(
    emulator: Any, useapi_conn: str, make_context: Context, all_logs: Callable[[], str]
) -> None:
    wait, context, store, _ = rescheduling(emulator, useapi_conn, make_context)

    def broken(key: str, value: Any) -> None:
        raise RuntimeError("store down")

    store.set = broken  # type: ignore[method-assign]
    with pytest.raises(AirflowRescheduleException):
        wait.execute(context)

    assert "could not record the jobs it watches (store down)" in all_logs()


@pytest.mark.parametrize(
    "kwargs", [{"mode": "poke"}, {"cancel_on_kill": False}, {"deferrable": True}]
)
def test_a_record_left_by_an_earlier_version_of_the_dag_is_dropped(
    emulator: Any, useapi_conn: str, make_context: Context, kwargs: dict[str, Any]
) -> None:
    # Try 1 (reschedule mode, cancel_on_kill) recorded its job; the DAG was edited, then cleared.
    _, context, store, key = rescheduled(emulator, useapi_conn, make_context)
    job = store.values[key]["job_ids"][0]
    context["ti"].try_number, context["ti"].max_tries = 2, 1
    wait = sensor(useapi_conn, job, **{"timeout": 0.2, **kwargs})
    emulator.set_status(job, "completed")

    wait.execute(context)

    assert store.values == {}
    assert emulator.job(job)["cancel_calls"] == 0


# ---------------------------------------------------------------------- authority of a record


@pytest.fixture
def two_teams(set_connection: Callable[..., str]) -> Iterator[tuple[Any, Any]]:
    from tests.planted import two_team_apis

    with two_team_apis(set_connection) as apis:
        yield apis


def cleared_sensor(make_context: Context, **kwargs: Any) -> tuple[JobStatusSensor, TaskContext]:
    """A reschedule-mode sensor watching ``own-1`` and ``own-2`` on ``mine``, at try 2 after a
    clear (Airflow raised ``max_tries`` from 0 to 1): a record of try 1 would be cancelled."""
    from tests.planted import OWN_IDS

    context = make_context()
    context["task_state_store"] = FakeTaskStateStore()
    context["ti"].try_number, context["ti"].max_tries = 2, 1
    return sensor("mine", list(OWN_IDS), mode="reschedule", **kwargs), context


def genuine(**changes: Any) -> dict[str, Any]:
    from tests.planted import OWN_IDS

    record = {"try_number": 1, "max_tries": 0, "conn_id": "mine", "job_ids": list(OWN_IDS)}
    return {**record, "hook_params": dict(FAST), **changes}


def test_a_cleared_try_cancels_its_own_record_with_its_own_connection(
    two_teams: tuple[Any, Any], make_context: Context
) -> None:
    from tests.planted import OWN_IDS, cancelled_ids

    mine, team_b = two_teams
    wait, context = cleared_sensor(make_context)
    context["task_state_store"].values[WATCHING_KEY] = genuine()

    wait._take_over_watching(context)

    assert cancelled_ids(mine) == set(OWN_IDS)
    assert team_b.requests == []
    assert context["task_state_store"].values == {}


@pytest.mark.parametrize(
    ("planted", "reason"),
    [
        ({"conn_id": "team_b", "job_ids": ["team-b-1"]}, "names connection 'team_b'"),
        ({"conn_id": "team_b"}, "names connection 'team_b'"),
        ({"job_ids": ["own-1", "team-b-1"]}, "1 job id(s) this task does not watch: 'team-b-1'"),
        ({"max_tries": -1}, "no try of the task instance"),
        ({"max_tries": 10**30}, "no try of the task instance"),
        ({"try_number": 3}, "no try of the task instance"),
        ({"try_number": -5}, "no try of the task instance"),
        ({"try_number": None}, "no try of the task instance"),
    ],
)
def test_a_planted_record_is_refused_by_the_next_try_and_left_in_place(
    two_teams: tuple[Any, Any],
    make_context: Context,
    all_logs: Callable[[], str],
    planted: dict[str, Any],
    reason: str,
) -> None:
    mine, team_b = two_teams
    wait, context = cleared_sensor(make_context)
    record = genuine(**planted)
    context["task_state_store"].values[WATCHING_KEY] = record

    wait._take_over_watching(context)

    assert mine.requests == []
    assert team_b.requests == []
    assert context["task_state_store"].values == {WATCHING_KEY: record}
    errors = [line for line in all_logs().splitlines() if "refused the record" in line]
    assert errors
    assert reason in errors[0]
    assert "Task 'wait_done'" in errors[0]


def test_the_next_try_cancels_with_its_own_hook_params_clamped(
    monkeypatch: pytest.MonkeyPatch, make_context: Context
) -> None:
    import airflow_provider_cancel.hooks as hooks

    seen: list[dict[str, Any]] = []

    def hook_for_connection(conn_id: str, hook_params: dict[str, Any]) -> Any:
        seen.append({"conn_id": conn_id, **hook_params})
        raise RuntimeError("seen")

    monkeypatch.setattr(hooks, "hook_for_connection", hook_for_connection)
    # A silent API would hold a kill for an hour with these (the DAG author's own).
    wait, context = cleared_sensor(
        make_context, hook_params={"timeout": 3600, "connect_timeout": 3600, "retry_limit": 50}
    )
    context["task_state_store"].values[WATCHING_KEY] = genuine(
        hook_params={"timeout": 0.001, "service": "someone-elses"}  # never used
    )

    wait._take_over_watching(context)

    assert seen == [
        {
            "conn_id": "mine",
            "retry_limit": 1,
            "retry_delay": 1.0,
            "max_retry_wait": 5.0,
            "connect_timeout": 4.0,
            "timeout": 8.0,
        }
    ]


def test_planted_records_never_make_the_next_try_reach_another_connection_or_other_ids(
    two_teams: tuple[Any, Any], make_context: Context, all_logs: Callable[[], str]
) -> None:
    from hypothesis import given, settings

    from tests.planted import OWN_IDS, PLANTED, named_id

    mine, team_b = two_teams
    wait, context = cleared_sensor(make_context)

    @settings(max_examples=40, deadline=None)
    @given(planted=PLANTED)
    def check(planted: Any) -> None:
        sent_before = len(mine.requests)
        wait._stop_cancel_done = False
        context["task_state_store"].values = {WATCHING_KEY: planted}
        started = time.monotonic()

        wait._take_over_watching(context)

        assert time.monotonic() - started < 30
        assert team_b.requests == []
        assert {named_id(request) for request in mine.requests[sent_before:]} <= set(OWN_IDS)

    check()
    assert max(len(line) for line in all_logs().splitlines()) < 5000
