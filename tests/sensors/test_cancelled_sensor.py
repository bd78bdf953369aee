"""JobCancelledSensor in poke, reschedule and deferrable modes against the in-process emulator:
success, timeout, soft_fail, fail-fast, unknown statuses, missing jobs, and the deferral
hand-off. Tests that must see WriteText's "Cancelling" phase lengthen it (``cancel_delay``)
so that a loaded machine cannot skip it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow.providers.common.compat.sdk import Context as TaskContext

from airflow_provider_cancel._compat import AIRFLOW_V_3_0_PLUS, AirflowRescheduleException
from airflow_provider_cancel.exceptions import InvalidJobIdError
from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor
from airflow_provider_cancel.triggers.status import JobStatusTrigger
from tests.conftest import FAST, cancel

Context = Callable[..., TaskContext]


def sensor(conn_id: str, job_id: Any, **kwargs: Any) -> JobCancelledSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("hook_params", dict(FAST))
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 10)
    kwargs.setdefault("deferrable", False)
    return JobCancelledSensor(conn_id=conn_id, job_id=job_id, **kwargs)


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------- poke mode


def test_poke_mode_waits_through_cancelling_until_cancelled(
    emulator: Any, writetext_conn: str, make_context: Context
) -> None:
    emulator.configure(cancel_delay=0.6)
    jobs = [emulator.submit_writetext() for _ in range(2)]
    cancel(writetext_conn, *jobs)
    assert emulator.job(jobs[0])["status"] == "Cancelling"
    before = emulator.counters["status_requests"]

    started = time.monotonic()
    sensor(writetext_conn, jobs).execute(make_context())

    assert time.monotonic() - started < 5
    assert all(emulator.job(job)["status"] == "Cancelled" for job in jobs)
    # It had to poke more than once: the first reads found "Cancelling".
    assert emulator.counters["status_requests"] - before > len(jobs)


def test_poke_mode_succeeds_at_once_for_cancelled_useapi_jobs(
    emulator: Any, useapi_conn: str, useapi_v3_conn: str, make_context: Context
) -> None:
    v2, v3 = emulator.submit_useapi(), emulator.submit_useapi(version="v3")
    cancel(useapi_conn, v2)
    cancel(useapi_v3_conn, v3)

    sensor(useapi_conn, v2).execute(make_context())
    sensor(useapi_v3_conn, v3).execute(make_context())  # v3: failed + "Job cancelled by user"

    assert emulator.counters["status_requests"] == 2


def test_poke_mode_times_out_while_a_job_keeps_running(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()

    started = time.monotonic()
    with pytest.raises(AirflowSensorTimeout):
        sensor(useapi_conn, job, timeout=0.3).execute(make_context())

    assert 0.3 <= time.monotonic() - started < 5
    assert emulator.counters["status_requests"] >= 2


def test_poke_mode_timeout_with_soft_fail_skips(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()

    with pytest.raises(AirflowSkipException):
        sensor(useapi_conn, job, timeout=0.2, soft_fail=True).execute(make_context())


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
@pytest.mark.parametrize("raw", ["completed", "failed", "moderated"])
def test_a_job_that_finished_otherwise_fails_fast(
    emulator: Any, useapi_conn: str, make_context: Context, mode: str, raw: str
) -> None:
    waiting = emulator.submit_useapi()
    finished = emulator.submit_useapi()
    emulator.set_status(finished, raw)

    with pytest.raises(AirflowFailException) as failure:
        sensor(useapi_conn, [waiting, finished], mode=mode).execute(make_context())

    message = str(failure.value)
    assert "'wait'" in message
    assert repr(finished) in message
    assert ("completed" if raw == "completed" else "failed") in message
    assert raw in message  # the raw status, once (as `status completed` when they agree)
    assert waiting not in message
    assert emulator.counters["status_requests"] == 2  # the first poke decided it


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_fail_fast_with_soft_fail_skips(
    emulator: Any, writetext_conn: str, make_context: Context, mode: str
) -> None:
    job = emulator.submit_writetext()
    emulator.set_status(job, "Completed")

    with pytest.raises(AirflowSkipException):
        sensor(writetext_conn, job, mode=mode, soft_fail=True).execute(make_context())


def test_success_statuses_can_include_completed(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    done, cancelled = emulator.submit_useapi(), emulator.submit_useapi()
    emulator.set_status(done, "completed")
    cancel(useapi_conn, cancelled)

    sensor(useapi_conn, [done, cancelled], success_statuses=("cancelled", "Completed")).execute(
        make_context()
    )


@pytest.mark.parametrize("bad", [(), ("unknown",), ("cancelled", "bogus")], ids=repr)
def test_bad_success_statuses_are_refused_at_parse_time(bad: Any) -> None:
    with pytest.raises(ValueError, match="success_statuses"):
        JobCancelledSensor(task_id="w", conn_id="c", job_id="j", success_statuses=bad)


def test_unknown_status_never_counts_as_done(
    emulator: Any, useapi_conn: str, writetext_conn: str, make_context: Context
) -> None:
    v2, wt = emulator.submit_useapi(), emulator.submit_writetext()
    emulator.set_status(v2, "archived")
    emulator.set_status(wt, "Paused")
    context = make_context()

    assert sensor(useapi_conn, v2).poke(context) is False
    assert sensor(writetext_conn, wt).poke(context) is False
    # Not done and not a fail-fast either: it waits, so it times out.
    with pytest.raises(AirflowSensorTimeout):
        sensor(useapi_conn, v2, timeout=0.2).execute(context)


def test_a_missing_job_fails_with_a_clear_message(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    running = emulator.submit_useapi()
    cancel(useapi_conn, running)

    with pytest.raises(AirflowFailException) as failure:
        sensor(useapi_conn, [running, "job:vanished"]).execute(make_context())

    message = str(failure.value)
    assert "'wait'" in message
    assert "'job:vanished' disappeared" in message
    assert "missing_job_status" in message  # says how to accept it


def test_a_missing_job_with_soft_fail_skips(
    emulator: Any, writetext_conn: str, make_context: Context
) -> None:
    with pytest.raises(AirflowSkipException):
        sensor(writetext_conn, "gone", soft_fail=True).execute(make_context())


def test_missing_job_status_reads_a_missing_job_as_given(
    emulator: Any, writetext_conn: str, make_context: Context
) -> None:
    job = emulator.submit_writetext()
    cancel(writetext_conn, job)
    context = make_context()

    wait = sensor(writetext_conn, [job, "forgotten"], missing_job_status="cancelled")
    wait.execute(context)  # the real one passes Cancelling -> Cancelled, the other reads 404

    with pytest.raises(AirflowFailException, match="forgotten"):
        sensor(writetext_conn, "forgotten", missing_job_status="completed").execute(context)


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("bad", [None, "", "None", 1.5, [], ["a", None], {"a": 1}], ids=repr)
def test_bad_ids_are_refused_before_any_request(
    emulator: Any, useapi_conn: str, make_context: Context, bad: Any, deferrable: bool
) -> None:
    with pytest.raises(InvalidJobIdError) as failure:
        sensor(useapi_conn, bad, deferrable=deferrable).execute(make_context())

    assert "'wait'" in str(failure.value)
    assert repr(bad) in str(failure.value)
    assert emulator.counters["requests"] == emulator.counters["connections"] == 0


def test_templated_ids_from_xcom(emulator: Any, useapi_conn: str, make_context: Context) -> None:
    jobs = [emulator.submit_useapi() for _ in range(2)]
    cancel(useapi_conn, *jobs)
    context = make_context(xcoms={"submit": jobs})
    wait = sensor(useapi_conn, "{{ ti.xcom_pull(task_ids='submit') }}")

    wait.render_template_fields(context)
    wait.execute(context)

    assert emulator.counters["status_requests"] == 2


# ---------------------------------------------------------------------- reschedule mode


def test_reschedule_mode_gives_the_slot_back_until_cancelled(
    emulator: Any, writetext_conn: str, make_context: Context
) -> None:
    emulator.configure(cancel_delay=1.0)
    job = emulator.submit_writetext()
    cancel(writetext_conn, job)
    context = make_context()
    wait = sensor(writetext_conn, job, mode="reschedule", poke_interval=5)

    with pytest.raises(AirflowRescheduleException) as rescheduled:
        wait.execute(context)  # reads Cancelling: come back later

    delay = (rescheduled.value.reschedule_date - utcnow()).total_seconds()
    assert 3 < delay <= 5
    context["ti"].first_reschedule_date = utcnow()
    deadline = time.monotonic() + 10
    while emulator.job(job)["status"] != "Cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert wait.execute(context) is None  # this try finds it Cancelled


def test_reschedule_mode_times_out_from_the_first_try(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()
    context = make_context()
    context["ti"].first_reschedule_date = utcnow() - timedelta(minutes=10)

    with pytest.raises(AirflowSensorTimeout):
        sensor(useapi_conn, job, mode="reschedule", timeout=60).execute(context)
    with pytest.raises(AirflowSkipException):
        sensor(useapi_conn, job, mode="reschedule", timeout=60, soft_fail=True).execute(context)


# ---------------------------------------------------------------------- deferrable mode


def test_deferrable_defers_with_a_trigger_that_matches_the_sensor(
    emulator: Any, writetext_conn: str, make_context: Context
) -> None:
    jobs = [emulator.submit_writetext() for _ in range(2)]
    hook_params = {"retry_limit": 2, "retry_delay": 0.01}
    wait = sensor(
        writetext_conn,
        jobs,
        deferrable=True,
        poke_interval=2.5,
        timeout=321,
        hook_params=hook_params,
        success_statuses=["Cancelled", "completed"],
        missing_job_status="cancelled",
    )

    with pytest.raises(TaskDeferred) as deferred:
        wait.execute(make_context())

    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=321)
    trigger = deferred.value.trigger
    assert isinstance(trigger, JobStatusTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_cancel.triggers.status.JobStatusTrigger"
    assert kwargs == {
        "conn_id": writetext_conn,
        "job_ids": jobs,
        "success_statuses": ["cancelled", "completed"],
        "poll_interval": 2.5,
        "hook_params": hook_params,
        "missing_job_status": "cancelled",
        "cancel_on_kill": False,
    }
    json.dumps(kwargs)
    # It checked once before deferring.
    assert emulator.counters["status_requests"] == 2


def test_deferrable_with_templated_ids_passes_the_rendered_ids(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    jobs = [emulator.submit_useapi() for _ in range(2)]
    context = make_context(xcoms={"submit": jobs})
    wait = sensor(useapi_conn, "{{ ti.xcom_pull(task_ids='submit') }}", deferrable=True)
    wait.render_template_fields(context)

    with pytest.raises(TaskDeferred) as deferred:
        wait.execute(context)

    assert deferred.value.trigger.serialize()[1]["job_ids"] == jobs


def test_deferrable_returns_without_deferring_when_already_cancelled(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()
    cancel(useapi_conn, job)

    assert sensor(useapi_conn, job, deferrable=True).execute(make_context()) is None
    assert emulator.counters["status_requests"] == 1


def test_deferrable_fails_fast_before_deferring(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()
    emulator.set_status(job, "completed")

    with pytest.raises(AirflowFailException, match=job):
        sensor(useapi_conn, job, deferrable=True).execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor(useapi_conn, job, deferrable=True, soft_fail=True).execute(make_context())
    with pytest.raises(AirflowFailException, match="job:vanished"):
        sensor(useapi_conn, "job:vanished", deferrable=True).execute(make_context())


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="never_fail is an Airflow 3 sensor option")
def test_never_fail_skips_a_failing_first_check_in_deferrable_mode_too(
    emulator: Any, useapi_conn: str, set_connection: Any, make_context: Context
) -> None:
    job = emulator.submit_useapi()
    emulator.set_status(job, "completed")  # fails fast: it ended before any cancel
    with pytest.raises(AirflowSkipException, match="never_fail"):
        sensor(useapi_conn, job, deferrable=True, never_fail=True).execute(make_context())
    # an API that cannot be reached at all
    down = set_connection("down", "useapi", host="http://127.0.0.1:9", password="tok-12345")
    hook_params = {**FAST, "retry_limit": 0}
    with pytest.raises(AirflowSkipException, match="never_fail"):
        sensor(down, job, deferrable=True, never_fail=True, hook_params=hook_params).execute(
            make_context()
        )
    with pytest.raises(AirflowException):  # without it, the same check fails the task
        sensor(down, job, deferrable=True, hook_params=hook_params).execute(make_context())


def test_execute_complete_on_success(make_context: Context) -> None:
    event = {
        "status": "success",
        "message": "every job reached a success status",
        "jobs": {"a": {"status": "cancelled", "raw_status": "Cancelled", "message": ""}},
    }
    wait = sensor("c", "a", deferrable=True)
    wait.execute_complete(make_context(), event)
    assert wait.resume_execution("execute_complete", {"event": event}, make_context()) is None


def test_execute_complete_on_failed_fails_without_retries(make_context: Context) -> None:
    event = {
        "status": "failed",
        "message": "1 job(s) will never reach a success status: 'a': status completed",
        "jobs": {"a": {"status": "completed", "raw_status": "completed", "message": ""}},
    }
    with pytest.raises(AirflowFailException, match=r"'wait'.*'a': status completed"):
        sensor("c", "a", deferrable=True).execute_complete(make_context(), event)
    with pytest.raises(AirflowSkipException):
        sensor("c", "a", deferrable=True, soft_fail=True).resume_execution(
            "execute_complete", {"event": event}, make_context()
        )


def test_execute_complete_on_error_fails_with_the_message(make_context: Context) -> None:
    event = {"status": "error", "message": "TransportError: no answer", "jobs": {}}
    with pytest.raises(AirflowException, match=r"'wait'.*TransportError: no answer") as failure:
        sensor("c", "a", deferrable=True).execute_complete(make_context(), event)
    assert not isinstance(failure.value, AirflowFailException)  # retries may help here
    with pytest.raises(AirflowSkipException):
        sensor("c", "a", deferrable=True, soft_fail=True).resume_execution(
            "execute_complete", {"event": event}, make_context()
        )


@pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS,
    reason="Airflow 3 only: TriggerFailureReason.TRIGGER_TIMEOUT (a sensor timeout) is new in "
    "Airflow 3; test_trigger_timeout_on_airflow2 covers Airflow 2.11",
)
def test_trigger_timeout_is_a_sensor_timeout(make_context: Context) -> None:
    from airflow.sdk.bases.operator import TriggerFailureReason

    fail = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    with pytest.raises(AirflowSensorTimeout):
        sensor("c", "a", deferrable=True).resume_execution("__fail__", fail, make_context())
    with pytest.raises(AirflowSkipException):
        sensor("c", "a", deferrable=True, soft_fail=True).resume_execution(
            "__fail__", fail, make_context()
        )


@pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS,
    reason="Airflow 2 only: Airflow 3 resumes with TriggerFailureReason.TRIGGER_TIMEOUT, "
    "covered by test_trigger_timeout_is_a_sensor_timeout",
)
def test_trigger_timeout_on_airflow2(make_context: Context) -> None:
    """Airflow 2.11's scheduler resumes a timed-out deferral with ``__fail__`` and this error;
    the sensor makes it an ``AirflowSensorTimeout`` (no retries), as on Airflow 3, and
    ``soft_fail`` skips."""
    from airflow.exceptions import AirflowSensorTimeout

    fail = {"error": "Trigger/execution timeout"}
    with pytest.raises(AirflowSensorTimeout, match="timed out"):
        sensor("c", "a", deferrable=True).resume_execution("__fail__", fail, make_context())
    with pytest.raises(AirflowSkipException):
        sensor("c", "a", deferrable=True, soft_fail=True).resume_execution(
            "__fail__", fail, make_context()
        )


def test_deferrable_default_comes_from_airflow_config() -> None:
    code = (
        "from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor as S\n"
        "print(S(task_id='w', conn_id='c', job_id='j').deferrable)\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__OPERATORS__")}
    runs = {
        value: subprocess.Popen(
            [sys.executable, "-c", code],
            env={**base, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": value},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for value in ("true", "false")
    }
    answers = {}
    for value, run in runs.items():
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        answers[value] = out.strip().splitlines()[-1]
    assert answers == {"true": "True", "false": "False"}
