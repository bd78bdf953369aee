"""cancel_on_failure: ids from literals and XCom, several tasks, and best effort (never raises,
logs the failure) when the API is down or the input is bad. Against the in-process emulator."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_cancel.callbacks import CancelOnFailure, cancel_on_failure
from tests.conftest import FAST
from tests.fakes import FakeTI

LOGGER = "airflow_provider_cancel.callbacks"


def context(xcoms: dict[Any, Any] | None = None, *, key: str = "return_value") -> dict[str, Any]:
    ti = FakeTI({(task, key): value for task, value in (xcoms or {}).items()}, task_id="publish")
    return {"ti": ti, "task_instance": ti, "exception": RuntimeError("the original failure")}


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_returns_a_callable_usable_as_on_failure_callback() -> None:
    callback = cancel_on_failure("useapi_default", xcom_task_ids="submit")
    assert isinstance(callback, CancelOnFailure)
    assert callable(callback)
    assert "useapi_default" in repr(callback)
    assert {callback: 1}[callback] == 1  # hashable, like the functions callbacks usually are


def test_cancels_literal_ids(emulator: Any, useapi_conn: str) -> None:
    jobs = [emulator.submit_useapi() for _ in range(3)]

    callback = cancel_on_failure(useapi_conn, job_ids=jobs, hook_params=FAST)
    callback(context())

    assert [emulator.job(job)["normalized"] for job in jobs] == ["cancelled"] * 3
    assert [emulator.job(job)["cancel_calls"] for job in jobs] == [1, 1, 1]


def test_cancels_a_single_literal_id(emulator: Any, writetext_conn: str) -> None:
    emulator.configure(cancel_delay=30)
    job = emulator.submit_writetext()

    cancel_on_failure(writetext_conn, job_ids=job, hook_params=FAST)(context())

    assert emulator.job(job)["status"] == "Cancelling"


def test_cancels_an_id_pushed_as_a_string(emulator: Any, useapi_conn: str) -> None:
    job = emulator.submit_useapi()
    ctx = context({"submit": job})

    cancel_on_failure(useapi_conn, xcom_task_ids="submit", hook_params=FAST)(ctx)

    assert emulator.job(job)["normalized"] == "cancelled"
    assert ctx["ti"].pulls == [("submit", "return_value")]


def test_cancels_ids_pushed_as_a_list(emulator: Any, writetext_conn: str) -> None:
    emulator.configure(cancel_delay=30)
    jobs = [emulator.submit_writetext() for _ in range(3)]

    cancel_on_failure(writetext_conn, xcom_task_ids=["submit"], hook_params=FAST)(
        context({"submit": jobs})
    )

    assert {emulator.job(job)["status"] for job in jobs} == {"Cancelling"}
    assert emulator.counters["token_requests"] == 1


def test_several_xcom_tasks_literals_and_a_custom_key(emulator: Any, useapi_conn: str) -> None:
    literal, one, *many = (emulator.submit_useapi() for _ in range(4))
    untouched = emulator.submit_useapi()
    ctx = context({"submit_one": one, "submit_many": many}, key="job_ids")

    cancel_on_failure(
        useapi_conn,
        job_ids=[literal, one],  # `one` is also in XCom: cancelled once
        xcom_task_ids=["submit_one", "submit_many", "pushed_nothing"],
        xcom_key="job_ids",
        hook_params=FAST,
    )(ctx)

    for job in (literal, one, *many):
        assert emulator.job(job)["normalized"] == "cancelled"
        assert emulator.job(job)["cancel_calls"] == 1
    assert emulator.job(untouched)["normalized"] != "cancelled"
    assert [key for _, key in ctx["ti"].pulls] == ["job_ids"] * 3


def test_nothing_in_xcom_sends_nothing_and_says_so(
    emulator: Any, useapi_conn: str, logs: pytest.LogCaptureFixture
) -> None:
    cancel_on_failure(useapi_conn, xcom_task_ids="submit", hook_params=FAST)(context())

    assert emulator.counters["requests"] == 0
    text = logs.text
    assert "'submit' pushed nothing" in text
    assert "no job ids to cancel" in text


def test_bad_xcom_value_is_logged_and_the_other_tasks_jobs_are_still_cancelled(
    emulator: Any, useapi_conn: str, logs: pytest.LogCaptureFixture
) -> None:
    job = emulator.submit_useapi()

    cancel_on_failure(useapi_conn, xcom_task_ids=["bad", "good"], hook_params=FAST)(
        context({"bad": {"not": "an id"}, "good": [job]})
    )

    assert emulator.job(job)["normalized"] == "cancelled"
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert errors
    assert "'bad'" in errors[0].getMessage()


def test_outcomes_are_logged_per_job(
    emulator: Any, useapi_conn: str, logs: pytest.LogCaptureFixture
) -> None:
    running, done = emulator.submit_useapi(), emulator.submit_useapi()
    emulator.set_status(done, "completed")

    cancel_on_failure(useapi_conn, job_ids=[running, done, "job:gone"], hook_params=FAST)(context())

    messages = {r.getMessage(): r.levelno for r in logs.records}
    assert messages[f"{running}: cancelled"] == logging.INFO  # each word once
    assert any(m.startswith(f"{done}: already_finished") for m in messages)
    gone = [level for m, level in messages.items() if m.startswith("job:gone: not_found")]
    assert gone == [logging.WARNING]
    assert not any("raw None" in m for m in messages)


@pytest.mark.parametrize("api", ["useapi", "writetext"])
def test_api_down_never_raises_and_logs_the_failure(
    set_connection: Callable[..., str], logs: pytest.LogCaptureFixture, api: str
) -> None:
    secret = f"{api}-secret-0123456789"
    conn_id = set_connection(
        f"{api}_down", api, host=f"http://127.0.0.1:{closed_port()}", password=secret
    )
    callback = cancel_on_failure(
        conn_id, job_ids=["job-1", "job-2"], hook_params={**FAST, "retry_limit": 0}
    )

    callback(context())  # no exception escapes

    failures = [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]
    per_job = [m for m in failures if m.startswith(("job-1:", "job-2:"))]
    assert sorted(m.split(":")[0] for m in per_job) == ["job-1", "job-2"]
    assert all(m.split(":")[1] == " error" for m in per_job)
    assert all(r.levelno == logging.ERROR for r in logs.records if r.levelno >= logging.WARNING)
    (summary,) = [m for m in failures if "may still be running" in m]
    assert "could not cancel 2 job(s)" in summary
    assert "'job-1', 'job-2'" in summary  # paid jobs: the ids left running, at ERROR
    assert secret not in logs.text


def test_missing_connection_never_raises_and_logs_the_failure(
    emulator: Any, logs: pytest.LogCaptureFixture
) -> None:
    callback = cancel_on_failure("no_such_connection", job_ids=["job-1"])

    callback(context())  # no exception escapes

    failures = [
        r.getMessage()
        for r in logs.records
        if r.levelno >= logging.ERROR and r.name == "airflow_provider_cancel.callbacks"
    ]
    assert len(failures) == 1
    assert "could not cancel 1 job(s), which may still be running" in failures[0]
    assert ": 'job-1'. " in failures[0]  # the id left running, so someone can cancel it
    assert "no_such_connection" in failures[0]
    assert emulator.counters["requests"] == 0


def test_a_context_without_a_task_instance_never_raises(
    logs: pytest.LogCaptureFixture, emulator: Any, useapi_conn: str
) -> None:
    cancel_on_failure(useapi_conn, xcom_task_ids="submit")({})

    assert any("could not read the XCom of task 'submit'" in r.getMessage() for r in logs.records)
    assert emulator.counters["requests"] == 0


def test_literal_ids_are_cancelled_when_xcom_cannot_be_read(
    logs: pytest.LogCaptureFixture, emulator: Any, useapi_conn: str
) -> None:
    """Airflow 3 may run a DAG-level callback with a minimal context (no task instance): the
    literal ids are still cancelled."""
    job_id = emulator.submit_useapi()
    minimal = {"dag": None, "run_id": "r", "reason": "failed"}
    cancel_on_failure(useapi_conn, job_ids=[job_id], xcom_task_ids="submit")(minimal)

    assert emulator.job(job_id)["normalized"] == "cancelled"
    assert any("could not read the XCom" in r.getMessage() for r in logs.records)


def test_bad_literal_ids_never_raise(
    emulator: Any, useapi_conn: str, logs: pytest.LogCaptureFixture
) -> None:
    assert cancel_on_failure(useapi_conn, job_ids=["ok", None])(context()) is None

    errors = [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR]
    assert errors
    assert "['ok', None]" in "\n".join(errors) or "['ok', None]" in logs.text


def test_a_bad_literal_id_does_not_stop_cancelling_the_xcom_jobs(
    emulator: Any, useapi_conn: str, logs: pytest.LogCaptureFixture
) -> None:
    """Best effort: like a bad XCom value, a bad literal is logged and the jobs the named
    tasks started are still cancelled (the run is failing; paid jobs must not keep running)."""
    job = emulator.submit_useapi()

    cancel_on_failure(useapi_conn, job_ids="None", xcom_task_ids="submit", hook_params=FAST)(
        context({"submit": job})
    )

    assert any(r.levelno >= logging.ERROR for r in logs.records)
    assert emulator.job(job)["normalized"] == "cancelled"
