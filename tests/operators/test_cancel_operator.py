"""CancelJobOperator.execute against the in-process emulator: every outcome, bulk, bad input,
connection types and templated ids. No mocks: the operator talks HTTP to the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowNotFoundException
from airflow.providers.common.compat.sdk import Context as TaskContext

from airflow_provider_cancel.exceptions import ConnectionConfigError, InvalidJobIdError
from airflow_provider_cancel.operators.cancel import CancelJobOperator
from tests.conftest import FAST, USEAPI_TOKEN

NO_RETRY = {**FAST, "retry_limit": 0}

Context = Callable[..., TaskContext]


def operator(conn_id: str, job_id: Any, **kwargs: Any) -> CancelJobOperator:
    kwargs.setdefault("hook_params", dict(FAST))
    kwargs.setdefault("task_id", "cancel")
    return CancelJobOperator(conn_id=conn_id, job_id=job_id, **kwargs)


def requests_sent(emulator: Any) -> tuple[int, int]:
    counters = emulator.counters
    return counters["requests"], counters["connections"]


# ---------------------------------------------------------------------- single outcomes


def test_running_useapi_v2_job_is_cancelled(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()
    context = make_context()

    report = operator(useapi_conn, job).execute(context)

    assert report == {
        job: {
            "outcome": "cancelled",
            "status": "cancelled",
            "raw_status": "cancelled",
            "message": "cancelled",
        }
    }
    json.dumps(report)  # XCom needs JSON
    assert emulator.job(job)["normalized"] == "cancelled"
    assert emulator.job(job)["cancel_calls"] == 1
    assert context["ti"].pushed == {}  # on success the runner pushes the return value


def test_running_useapi_v3_job_is_cancelled(
    emulator: Any, useapi_v3_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi(version="v3")

    report = operator(useapi_v3_conn, job).execute(make_context())

    assert report[job]["outcome"] == "cancelled"
    assert report[job]["status"] == "cancelled"
    assert emulator.job(job)["normalized"] == "cancelled"
    assert emulator.job(job)["error"] == "Job cancelled by user"


def test_running_writetext_request_is_cancelling(
    emulator: Any, writetext_conn: str, make_context: Context
) -> None:
    emulator.configure(cancel_delay=30)  # stays Cancelling while we look
    job = emulator.submit_writetext()

    report = operator(writetext_conn, job).execute(make_context())

    assert report[job]["outcome"] == "cancelling"
    assert report[job]["status"] == "cancelling"
    assert emulator.job(job)["status"] == "Cancelling"
    assert emulator.job(job)["cancel_calls"] == 1


@pytest.mark.parametrize("answer", ["200", "400", "404", "409"])
@pytest.mark.parametrize("raw", ["completed", "failed", "moderated"])
def test_finished_useapi_job_is_already_finished(
    emulator: Any, useapi_conn: str, make_context: Context, answer: str, raw: str
) -> None:
    """Whatever useapi answers to cancelling a finished job, the report says already_finished
    with the real status, and the task does not fail."""
    emulator.configure(finished_cancel_answer=answer)
    job = emulator.submit_useapi()
    emulator.set_status(job, raw)

    report = operator(useapi_conn, job).execute(make_context())

    assert report[job]["outcome"] == "already_finished"
    assert report[job]["status"] == ("completed" if raw == "completed" else "failed")
    assert report[job]["raw_status"] == raw
    assert emulator.job(job)["status"] == raw  # nothing changed remotely


@pytest.mark.parametrize("raw", ["Completed", "Failed", "TimedOut"])
def test_finished_writetext_request_is_already_finished(
    emulator: Any, writetext_conn: str, make_context: Context, raw: str
) -> None:
    job = emulator.submit_writetext()
    emulator.set_status(job, raw)

    report = operator(writetext_conn, job).execute(make_context())

    assert report[job]["outcome"] == "already_finished"
    assert report[job]["raw_status"] == raw


@pytest.mark.parametrize("conn", ["useapi_conn", "useapi_v3_conn", "writetext_conn"])
def test_already_cancelled_job_is_not_an_error(
    emulator: Any, make_context: Context, request: pytest.FixtureRequest, conn: str
) -> None:
    conn_id = request.getfixturevalue(conn)
    api = {"useapi_conn": "useapi_v2", "useapi_v3_conn": "useapi_v3"}.get(conn, "writetext")
    emulator.create_job(api, "done-1", "Cancelled" if api == "writetext" else "cancelled")

    report = operator(conn_id, "done-1").execute(make_context())

    assert report["done-1"]["outcome"] in ("already_finished", "cancelled")
    assert report["done-1"]["status"] == "cancelled"


def test_not_found_fails_the_task_and_still_pushes_the_report(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    context = make_context()

    with pytest.raises(AirflowException) as failure:
        operator(useapi_conn, "job:does-not-exist").execute(context)

    message = str(failure.value)
    assert message.startswith("Task 'cancel': 1 of 1 job(s) were not cancelled: ")
    assert "'job:does-not-exist' (not_found: " in message
    report = context["ti"].pushed["return_value"]
    assert report["job:does-not-exist"]["outcome"] == "not_found"


@pytest.mark.parametrize("conn", ["useapi_conn", "useapi_v3_conn", "writetext_conn"])
def test_not_found_is_accepted_when_fail_on_not_found_is_false(
    emulator: Any, make_context: Context, request: pytest.FixtureRequest, conn: str
) -> None:
    conn_id = request.getfixturevalue(conn)
    running = emulator.submit_writetext() if conn == "writetext_conn" else None
    ids = ["missing-1", running] if running else ["missing-1"]
    context = make_context()

    report = operator(conn_id, ids, fail_on_not_found=False).execute(context)

    assert report["missing-1"]["outcome"] == "not_found"
    if running:
        assert report[running]["outcome"] == "cancelling"
    assert context["ti"].pushed == {}


def test_refused_cancel_of_a_job_in_an_unknown_state_is_an_error(
    emulator: Any, writetext_conn: str, make_context: Context
) -> None:
    """WriteText answers 400 and the request reads a status nobody knows: not stopped, so
    the outcome is error and the task fails (never a success for a job that was not stopped)."""
    job = emulator.submit_writetext()
    emulator.set_status(job, "Paused")
    context = make_context()

    with pytest.raises(AirflowException) as failure:
        operator(writetext_conn, job).execute(context)

    report = context["ti"].pushed["return_value"]
    assert report[job]["outcome"] == "error"
    assert report[job]["status"] == "unknown"
    assert report[job]["raw_status"] == "Paused"
    assert f"{job!r} (error: " in str(failure.value)


@pytest.mark.parametrize("fault", ["500", "503", "596"])
def test_server_error_on_cancel_is_an_error(
    emulator: Any, useapi_conn: str, make_context: Context, fault: str
) -> None:
    job = emulator.submit_useapi()
    emulator.inject(fault, call="cancel", api="useapi", count=1)
    context = make_context()

    with pytest.raises(AirflowException) as failure:
        operator(useapi_conn, job, hook_params=dict(NO_RETRY)).execute(context)

    assert context["ti"].pushed["return_value"][job]["outcome"] == "error"
    assert f"{job!r} (error: " in str(failure.value)
    assert emulator.counters["cancel_requests"] == 1  # retry_limit 0: one attempt only
    assert emulator.job(job)["normalized"] != "cancelled"


def test_server_error_is_retried_by_default(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()
    emulator.inject("503", call="cancel", api="useapi", count=2)

    report = operator(useapi_conn, job).execute(make_context())

    assert report[job]["outcome"] == "cancelled"
    assert emulator.counters["cancel_requests"] == 3


def test_wrong_token_is_an_error_that_does_not_show_the_token(
    emulator: Any, set_connection: Callable[..., str], make_context: Context
) -> None:
    secret = "wrong-token-0123456789"
    conn_id = set_connection("useapi_wrong", "useapi", host=emulator.url, password=secret)
    job = emulator.submit_useapi()
    context = make_context()

    with pytest.raises(AirflowException) as failure:
        operator(conn_id, job).execute(context)

    report = context["ti"].pushed["return_value"]
    assert report[job]["outcome"] == "error"
    assert secret not in str(failure.value)
    assert secret not in json.dumps(report)


# ---------------------------------------------------------------------- bulk


def test_bulk_with_mixed_outcomes_names_exactly_the_failing_ids(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    emulator.configure(finished_cancel_answer="409")
    running = [emulator.submit_useapi() for _ in range(3)]
    completed = emulator.submit_useapi()
    emulator.set_status(completed, "completed")
    stuck = emulator.submit_useapi()
    emulator.set_status(stuck, "paused")  # unknown to us; the API refuses with 409
    missing = "job:never-existed"
    ids = [running[0], completed, missing, running[1], stuck, running[2]]
    context = make_context()

    with pytest.raises(AirflowException) as failure:
        operator(useapi_conn, ids, max_concurrency=4).execute(context)

    message = str(failure.value)
    assert message.startswith("Task 'cancel': 2 of 6 job(s) were not cancelled: ")
    assert f"{missing!r} (not_found: " in message
    assert f"{stuck!r} (error: " in message
    for ok in [*running, completed]:
        assert ok not in message
    report = context["ti"].pushed["return_value"]
    assert list(report) == ids  # every id, in the order given
    assert {job: entry["outcome"] for job, entry in report.items()} == {
        running[0]: "cancelled",
        completed: "already_finished",
        missing: "not_found",
        running[1]: "cancelled",
        stuck: "error",
        running[2]: "cancelled",
    }
    json.dumps(report)
    for job in running:
        assert emulator.job(job)["normalized"] == "cancelled"
    assert emulator.job(completed)["status"] == "completed"


@pytest.mark.parametrize("fault", ["500", "596"])
def test_bulk_with_an_injected_fault_names_the_failing_id(
    emulator: Any, useapi_conn: str, make_context: Context, fault: str
) -> None:
    """One worker, so the fault reaches the first id; the other jobs are still cancelled."""
    faulty, other = emulator.submit_useapi(), emulator.submit_useapi()
    finished = emulator.submit_useapi()
    emulator.set_status(finished, "completed")
    emulator.inject(fault, call="cancel", api="useapi", count=1)
    context = make_context()

    with pytest.raises(AirflowException) as failure:
        operator(
            useapi_conn,
            [faulty, other, finished, "job:gone"],
            max_concurrency=1,
            hook_params=dict(NO_RETRY),
        ).execute(context)

    message = str(failure.value)
    assert message.startswith("Task 'cancel': 2 of 4 job(s) were not cancelled: ")
    assert f"{faulty!r} (error: " in message
    assert "'job:gone' (not_found: " in message
    assert other not in message
    assert finished not in message
    report = context["ti"].pushed["return_value"]
    assert [entry["outcome"] for entry in report.values()] == [
        "error",
        "cancelled",
        "already_finished",
        "not_found",
    ]
    assert emulator.job(faulty)["normalized"] != "cancelled"
    assert emulator.job(other)["normalized"] == "cancelled"


def test_bulk_writetext_uses_one_token_and_pooled_connections(
    emulator: Any, writetext_conn: str, make_context: Context
) -> None:
    ids = [emulator.submit_writetext() for _ in range(30)]

    report = operator(writetext_conn, ids, max_concurrency=5).execute(make_context())

    assert {entry["outcome"] for entry in report.values()} == {"cancelling"}
    counters = emulator.counters
    assert counters["token_requests"] == 1
    assert counters["cancel_requests"] == 30
    assert counters["connections"] <= 1 + 5  # token call + at most one per worker


def test_duplicate_ids_are_cancelled_once(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()

    report = operator(useapi_conn, [job, job]).execute(make_context())

    assert list(report) == [job]
    assert emulator.job(job)["cancel_calls"] == 1


def test_ids_with_reserved_characters_reach_the_right_job(
    emulator: Any, writetext_conn: str, useapi_conn: str, make_context: Context
) -> None:
    odd = ["a/b", "../x", "q?jobid=y", "h#t", "p%2Fq", "sp ace", "ünï ✓", "c:d"]
    for job in odd:
        emulator.create_job("writetext", job)
        emulator.create_job("useapi_v2", f"v2-{job}")

    wt = operator(writetext_conn, odd).execute(make_context())
    ua = operator(useapi_conn, [f"v2-{job}" for job in odd]).execute(make_context())

    assert {entry["outcome"] for entry in wt.values()} == {"cancelling"}
    assert {entry["outcome"] for entry in ua.values()} == {"cancelled"}
    for job in odd:
        assert emulator.job(job)["cancel_calls"] == 1
        assert emulator.job(f"v2-{job}")["cancel_calls"] == 1


# ---------------------------------------------------------------------- bad input

BAD_IDS = [None, "", "  ", "None", 1.5, True, {"a": 1}, [["a"]], [], ["a", None]]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_ids_are_refused_before_any_request(
    emulator: Any, useapi_conn: str, make_context: Context, bad: Any
) -> None:
    before = requests_sent(emulator)

    with pytest.raises(InvalidJobIdError) as failure:
        operator(useapi_conn, bad, task_id="cancel_images").execute(make_context())

    message = str(failure.value)
    assert "'cancel_images'" in message
    assert repr(bad) in message
    assert requests_sent(emulator) == before == (0, 0)


def test_missing_xcom_rendered_as_none_is_refused(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    op = operator(useapi_conn, "{{ ti.xcom_pull(task_ids='submit') }}")
    context = make_context(xcoms={})
    op.render_template_fields(context)
    assert op.job_id == "None"

    with pytest.raises(InvalidJobIdError, match=r"'cancel'.*'None'"):
        op.execute(context)
    assert requests_sent(emulator) == (0, 0)


def test_invalid_max_concurrency_is_refused_at_parse_time() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        CancelJobOperator(task_id="c", conn_id="x", job_id="a", max_concurrency=0)


# ---------------------------------------------------------------------- connections


def test_connection_of_another_type_names_the_supported_types(
    emulator: Any, set_connection: Callable[..., str], make_context: Context
) -> None:
    conn_id = set_connection("plain_http", "http", host=emulator.url, password="x-secret-x")
    job = emulator.submit_useapi()

    with pytest.raises(ConnectionConfigError) as failure:
        operator(conn_id, job).execute(make_context())

    message = str(failure.value)
    assert "'plain_http'" in message
    assert "'http'" in message
    assert "useapi" in message
    assert "writetext" in message
    assert "x-secret-x" not in message
    assert requests_sent(emulator) == (0, 0)


def test_missing_connection_fails(emulator: Any, make_context: Context) -> None:
    with pytest.raises(AirflowNotFoundException):
        operator("no_such_connection", "job-1").execute(make_context())
    assert requests_sent(emulator) == (0, 0)


# ---------------------------------------------------------------------- templated ids


def test_templated_single_id_from_xcom(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    job = emulator.submit_useapi()
    context = make_context(xcoms={"submit": job})
    op = operator(useapi_conn, "{{ ti.xcom_pull(task_ids='submit') }}")

    op.render_template_fields(context)
    report = op.execute(context)

    assert op.job_id == job
    assert report[job]["outcome"] == "cancelled"
    assert emulator.job(job)["normalized"] == "cancelled"


def test_templated_list_renders_to_a_list_literal_and_is_accepted(
    emulator: Any, writetext_conn: str, make_context: Context
) -> None:
    emulator.configure(cancel_delay=30)
    ids = [emulator.submit_writetext() for _ in range(3)]
    context = make_context(xcoms={"submit": ids})
    op = operator(writetext_conn, "{{ ti.xcom_pull(task_ids='submit') }}")

    op.render_template_fields(context)
    assert isinstance(op.job_id, str)
    assert op.job_id.startswith("[")
    report = op.execute(context)

    assert list(report) == ids
    assert all(emulator.job(job)["status"] == "Cancelling" for job in ids)


def test_templated_int_from_xcom_is_converted(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    emulator.create_job("useapi_v2", "12345")
    context = make_context(xcoms={"submit": 12345})
    op = operator(useapi_conn, "{{ ti.xcom_pull(task_ids='submit') }}")

    op.render_template_fields(context)
    report = op.execute(context)

    assert report == {"12345": report["12345"]}
    assert report["12345"]["outcome"] == "cancelled"
    assert emulator.job("12345")["cancel_calls"] == 1


def test_int_ids_are_converted(emulator: Any, useapi_conn: str, make_context: Context) -> None:
    emulator.create_job("useapi_v2", "7")
    emulator.create_job("useapi_v2", "8")

    report = operator(useapi_conn, [7, 8]).execute(make_context())

    assert list(report) == ["7", "8"]
    assert {entry["outcome"] for entry in report.values()} == {"cancelled"}


def test_rendered_list_literal_string_is_accepted(
    emulator: Any, useapi_conn: str, make_context: Context
) -> None:
    a, b = emulator.submit_useapi(), emulator.submit_useapi()

    report = operator(useapi_conn, repr([a, b])).execute(make_context())

    assert list(report) == [a, b]
    assert emulator.job(a)["normalized"] == emulator.job(b)["normalized"] == "cancelled"


def test_templated_connection_id(emulator: Any, writetext_conn: str, make_context: Context) -> None:
    job = emulator.submit_writetext()
    context = make_context(xcoms={"submit": job})
    context["params"] = {"conn": writetext_conn}
    op = operator("{{ params.conn }}", "{{ ti.xcom_pull(task_ids='submit') }}")

    op.render_template_fields(context)
    report = op.execute(context)

    assert op.conn_id == writetext_conn
    assert report[job]["outcome"] == "cancelling"


def test_api_down_fails_naming_every_id(
    set_connection: Callable[..., str], make_context: Context
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn_id = set_connection(
        "down", "writetext", host=f"http://127.0.0.1:{port}", password="down-key-0123456"
    )
    context = make_context()

    with pytest.raises(AirflowException) as failure:
        operator(conn_id, ["r-1", "r-2"], hook_params=dict(NO_RETRY)).execute(context)

    message = str(failure.value)
    assert message.startswith("Task 'cancel': 2 of 2 job(s) were not cancelled: ")
    assert "'r-1' (error: " in message
    assert "'r-2' (error: " in message
    assert "down-key-0123456" not in message
    report = context["ti"].pushed["return_value"]
    assert {entry["outcome"] for entry in report.values()} == {"error"}


# ---------------------------------------------------------------------- what the log says


def test_a_refused_cancel_leads_with_the_cause_and_the_connection_and_names_the_job_once(
    emulator: Any,
    set_connection: Callable[..., str],
    make_context: Context,
    all_logs: Callable[[], str],
) -> None:
    job = emulator.submit_useapi()
    bad = set_connection("useapi_bad", "useapi", host=emulator.url, password="not-the-token")

    with pytest.raises(AirflowException) as failed:
        operator(bad, job, hook_params=NO_RETRY).execute(make_context())

    cause = "useapi.net cancel was refused: check the API token of connection 'useapi_bad'"
    line = next(line for line in all_logs().splitlines() if f"{job}: error" in line)
    assert f"{job}: error: {cause} (HTTP 401)" in line
    assert line.count(job) == 1
    assert str(failed.value).count(job) == 1
    assert "Cancelling 1 job(s) on useapi.net (Midjourney v2)" in all_logs()


def test_an_untracked_outcome_names_the_vendor(
    emulator: Any, set_connection: Callable[..., str], make_context: Context
) -> None:
    job = emulator.submit_useapi(service="kling", version="v1")
    kling = set_connection(
        "useapi_kling",
        "useapi",
        host=emulator.url,
        password=USEAPI_TOKEN,
        extra={"service": "kling"},
    )

    report = operator(kling, job).execute(make_context())

    assert report[job]["outcome"] == "untracked"
    assert report[job]["message"] == (
        "useapi.net stopped tracking the job; Kling may still run (and bill) it"
    )
