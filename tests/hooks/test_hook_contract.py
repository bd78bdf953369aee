"""What every job API hook does alike, tested once over every API of ``tests/apis.py`` (useapi
v2, v3, one service of each useapi.net family and WriteText), on the sync and the async path:
statuses, cancelling running, finished and missing jobs, retries on 429/5xx/dropped connections
and none on 4xx, transport errors, ids, ``test_connection``, the bulk report, and no secret in
any error. Each API's description brings its own answers; nothing here names an API. What only
one API does stays in ``test_useapi_hook.py`` and ``test_writetext_hook.py``.
"""

from __future__ import annotations

import socket
import time
import traceback
from typing import Any

import pytest

from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    CancelApiError,
    InvalidJobIdError,
    JobNotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from airflow_provider_cancel.hooks.base import JobApiHook
from airflow_provider_cancel.status import CancelOutcome, JobStatus
from tests.apis import APIS, BY_NAME, JobApi, apis
from tests.conftest import FAST

from .conftest import DROP

SCRIPTED_SECRET = "scripted-secret-0123456789"
READING = apis(reads=True)


def secret(api: JobApi, emulator: Any) -> str:
    """The secret the emulator accepts for ``api``."""
    return str(emulator.config[api.secret_setting])


def hook(api: JobApi, conn_id: str, **kwargs: Any) -> JobApiHook:
    return api.hook_class(conn_id, **{**FAST, **kwargs})


def connect(api: JobApi, set_connection: Any, emulator: Any, conn_id: str = "c") -> str:
    """A connection of ``api`` on ``emulator``; returns its id."""
    extra = dict(api.extra) or None
    password = secret(api, emulator)
    return str(
        set_connection(conn_id, api.conn_type, host=emulator.url, password=password, extra=extra)
    )


# Answers every API maps alike: code -> error class (retried codes are tried 1 + retry_limit times).
RETRIED = {429: RateLimitedError, 500: ServerError, 502: ServerError, 503: ServerError}
RETRIED[504] = ServerError
NOT_RETRIED = {400: CancelApiError, 404: JobNotFoundError}


@pytest.fixture(params=APIS, ids=str)
def api(request: pytest.FixtureRequest) -> JobApi:
    return request.param


@pytest.fixture(params=READING, ids=str)
def reading(request: pytest.FixtureRequest) -> JobApi:
    """An API that can read one job."""
    return request.param


def _connection(api: JobApi, emulator: Any, set_connection: Any) -> str:
    return connect(api, set_connection, emulator, f"contract_{api.name}")


@pytest.fixture
def conn(api: JobApi, emulator: Any, set_connection: Any) -> str:
    """A connection of ``api`` on the emulator."""
    return _connection(api, emulator, set_connection)


@pytest.fixture
def reading_conn(reading: JobApi, emulator: Any, set_connection: Any) -> str:
    """A connection of ``reading`` on the emulator."""
    return _connection(reading, emulator, set_connection)


def _scripted(api: JobApi, set_connection: Any, fake_api: Any) -> str:
    if api.token is not None:
        api.token.script(fake_api)
    extra = dict(api.extra) or None
    return str(
        set_connection(f"scripted_{api.name}", api.conn_type, password=SCRIPTED_SECRET, extra=extra)
    )


@pytest.fixture
def scripted(api: JobApi, set_connection: Any, fake_api: Any) -> str:
    """A connection of ``api`` on its real host, answered by ``fake_api`` (a token endpoint
    already scripted)."""
    return _scripted(api, set_connection, fake_api)


@pytest.fixture
def reading_scripted(reading: JobApi, set_connection: Any, fake_api: Any) -> str:
    """``scripted`` for an API that can read one job."""
    return _scripted(reading, set_connection, fake_api)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def calls(emulator: Any, call: str) -> list[dict[str, Any]]:
    return [e for e in emulator.requests_log if e["call"] == call]


def error_text(error: BaseException) -> str:
    return "\n".join(
        [str(error), repr(error), "".join(traceback.format_exception(error))]
        + [str(getattr(error, name, "")) for name in ("server_message", "job_id")]
    )


# ---------------------------------------------------------------------- statuses


def outcome(name: str) -> CancelOutcome:
    return CancelOutcome(name)


@pytest.mark.parametrize(
    ("name", "raw", "error", "expected"),
    [(api.name, *row) for api in APIS for row in api.statuses],
)
def test_status_table_via_emulator(
    name, raw, error, expected, emulator, set_connection, run_hook
) -> None:
    api = BY_NAME[name]
    conn_id = connect(api, set_connection, emulator)
    job_id = f"job:{name}:{raw or 'blank'}:{error}"
    emulator.create_job(name, job_id)
    emulator.set_status(job_id, raw, error)
    state = run_hook(hook(api, conn_id), "get_job", job_id)
    assert state.job_id == job_id
    assert state.status == JobStatus(expected)
    assert state.status.value == emulator.job(job_id)["normalized"]
    assert state.raw_status == raw
    assert state.body[api.status_field] == raw
    assert calls(emulator, "status")[-1]["status"] == 200


def test_status_of_a_missing_job_is_not_found_and_not_retried(
    reading, reading_conn, emulator, run_hook
):
    with pytest.raises(JobNotFoundError) as caught:
        run_hook(hook(reading, reading_conn, retry_limit=3), "get_job", "job:missing")
    assert caught.value.status_code == 404
    assert caught.value.job_id == "job:missing"
    assert len(calls(emulator, "status")) == 1


# ---------------------------------------------------------------------- cancel


def test_cancel_running_job(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    result = run_hook(hook(api, conn), "cancel_job", job_id)
    assert result.job_id == job_id
    assert result.outcome is outcome(api.cancel_running)
    if api.cancelled_at_once and api.stops_the_job:
        assert result.status is JobStatus.CANCELLED
    assert emulator.job(job_id)["cancel_calls"] == 1
    if not api.stops_the_job:
        assert emulator.job(job_id)["normalized"] in ("queued", "running")  # it goes on
        return
    deadline = time.monotonic() + 5
    while emulator.job(job_id)["normalized"] != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emulator.job(job_id)["normalized"] == "cancelled"
    if api.reads:
        assert run_hook(hook(api, conn), "get_job", job_id).status is JobStatus.CANCELLED


@pytest.mark.parametrize(
    ("name", "answer", "raw", "expected"),
    [
        (api.name, answer, raw, expected)
        for api in APIS
        for answer in api.finished_cancel_answers
        for raw, expected in api.finished or ((api.completed, "completed"),)
    ],
)
def test_cancel_finished_job(
    name, answer, raw, expected, emulator, set_connection, run_hook
) -> None:
    api = BY_NAME[name]
    conn_id = connect(api, set_connection, emulator)
    emulator.configure(finished_cancel_answer=answer)
    job_id = api.submit(emulator)
    emulator.set_status(job_id, raw)
    result = run_hook(hook(api, conn_id), "cancel_job", job_id)
    assert result.outcome is outcome(api.cancel_finished), result
    if result.outcome is CancelOutcome.ALREADY_FINISHED:
        assert result.status == JobStatus(expected)
        assert result.raw_status == raw
    assert emulator.job(job_id)["cancel_calls"] == 1
    assert emulator.job(job_id)["status"] == raw  # untouched


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        (api.name, answer)
        for api in APIS
        for answer in api.finished_cancel_answers
        if answer != "409"
    ],
)
def test_cancel_missing_job_is_not_found(name, answer, emulator, set_connection, run_hook) -> None:
    api = BY_NAME[name]
    conn_id = connect(api, set_connection, emulator)
    emulator.configure(finished_cancel_answer=answer)
    result = run_hook(hook(api, conn_id), "cancel_job", "job:does-not-exist")
    assert result.outcome is CancelOutcome.NOT_FOUND
    assert result.job_id == "job:does-not-exist"
    assert result.status is JobStatus.UNKNOWN


def test_bulk_cancel_reports_every_job_in_order(api, conn, emulator) -> None:
    running = api.submit(emulator)
    finished = api.submit(emulator)
    emulator.set_status(finished, api.completed)
    report = hook(api, conn).cancel_jobs([running, "job:does-not-exist", finished])
    assert [r.job_id for r in report] == [running, "job:does-not-exist", finished]
    assert [r.outcome for r in report] == [
        outcome(api.cancel_running),
        CancelOutcome.NOT_FOUND,
        outcome(api.cancel_finished),
    ]


def test_bulk_cancel_turns_one_failing_job_into_an_error_outcome(api, conn, emulator) -> None:
    jobs = [api.submit(emulator) for _ in range(3)]
    emulator.inject("503", count=3, call="cancel")
    report = hook(api, conn, retry_limit=2).cancel_jobs(jobs, max_concurrency=1)
    outcomes = [r.outcome for r in report]
    assert outcomes[0] is CancelOutcome.ERROR
    assert "503" in report[0].message
    assert secret(api, emulator) not in report[0].message
    assert CancelOutcome.ERROR not in outcomes[1:]


# ---------------------------------------------------------------------- answers every API maps alike


@pytest.mark.parametrize(("code", "kind"), [*NOT_RETRIED.items(), *RETRIED.items()])
def test_status_errors_mapped(reading, reading_scripted, fake_api, run_hook, code, kind) -> None:
    method, url = reading.status_call("job:1")
    fake_api.add(method, url, code, json={"error": f"server says {code}"})
    with pytest.raises(kind) as caught:
        run_hook(hook(reading, reading_scripted, retry_limit=2), "get_job", "job:1")
    error = caught.value
    assert type(error) is kind
    assert error.status_code == code
    assert error.job_id == "job:1"
    assert error.server_message == f"server says {code}"
    assert f"HTTP {code}" in str(error)
    assert "job:1" in str(error)
    assert fake_api.count(url, method) == (3 if code in RETRIED else 1)
    if reading.token is not None:
        assert fake_api.count(reading.token.url) == 1


@pytest.mark.parametrize(("code", "kind"), RETRIED.items())
def test_cancel_errors_retried(api, scripted, fake_api, run_hook, code, kind) -> None:
    method, url = api.cancel_call("job:1")
    fake_api.add(method, url, code, json={"error": f"server says {code}"})
    with pytest.raises(kind) as caught:
        run_hook(hook(api, scripted, retry_limit=2), "cancel_job", "job:1")
    error = caught.value
    assert type(error) is kind
    assert error.status_code == code
    assert error.job_id == "job:1"
    assert error.server_message == f"server says {code}"
    assert fake_api.count(url, method) == 3
    assert len(fake_api.calls) == 3 + (api.token is not None)  # no read of the job


def test_scripted_connection_errors_retried(reading, reading_scripted, fake_api, run_hook) -> None:
    method, url = reading.status_call("job:1")
    fake_api.add(method, url, DROP)
    fake_api.add(method, url, DROP)
    fake_api.add(method, url, json={reading.status_field: reading.completed})
    state = run_hook(hook(reading, reading_scripted, retry_limit=2), "get_job", "job:1")
    assert state.status is JobStatus.COMPLETED
    assert fake_api.count(url, method) == 3


# ---------------------------------------------------------------------- retries (emulator)


def test_429_on_status_waits_retry_after(reading, reading_conn, emulator, run_hook) -> None:
    job_id = reading.submit(emulator)
    emulator.inject("429", count=2, call="status", retry_after=0.3)
    started = time.monotonic()
    run_hook(hook(reading, reading_conn, retry_limit=3), "get_job", job_id)
    elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 5
    assert [e["status"] for e in calls(emulator, "status")] == [429, 429, 200]


def test_429_on_cancel_waits_retry_after(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    emulator.inject("429", count=2, call="cancel", retry_after=0.3)
    started = time.monotonic()
    result = run_hook(hook(api, conn, retry_limit=3), "cancel_job", job_id)
    elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 5
    assert [e["status"] for e in calls(emulator, "cancel")] == [429, 429, api.cancel_ok]
    assert result.outcome is outcome(api.cancel_running)


def test_429_gives_up_after_retry_limit(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    call, method = ("status", "get_job") if api.reads else ("cancel", "cancel_job")
    emulator.inject("429", count=10, call=call, retry_after=0.05)
    with pytest.raises(RateLimitedError) as caught:
        run_hook(hook(api, conn, retry_limit=2), method, job_id)
    assert caught.value.status_code == 429
    assert len(calls(emulator, call)) == 3


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "html"])
def test_5xx_retried_then_succeeds(reading, reading_conn, emulator, run_hook, kind) -> None:
    job_id = reading.submit(emulator)
    emulator.inject(kind, count=2, call="status")
    state = run_hook(hook(reading, reading_conn, retry_limit=3), "get_job", job_id)
    assert state.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert len(calls(emulator, "status")) == 3


def test_5xx_gives_up_with_server_error(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    emulator.inject("503", count=10, call="cancel")
    with pytest.raises(ServerError) as caught:
        run_hook(hook(api, conn, retry_limit=2), "cancel_job", job_id)
    assert caught.value.status_code == 503
    assert caught.value.job_id == job_id
    assert emulator.counters["cancel_requests"] == 3
    assert emulator.job(job_id)["cancel_calls"] == 0


def test_dropped_connections_retried(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    call, method = ("status", "get_job") if api.reads else ("cancel", "cancel_job")
    emulator.inject("drop", count=2, call=call)
    result = run_hook(hook(api, conn, retry_limit=3), method, job_id)
    assert result.job_id == job_id
    assert len(calls(emulator, call)) == 3


def test_dropped_connections_give_transport_error(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    call, method = ("status", "get_job") if api.reads else ("cancel", "cancel_job")
    emulator.inject("drop", count=10, call=call)
    with pytest.raises(TransportError) as caught:
        run_hook(hook(api, conn, retry_limit=2), method, job_id)
    assert caught.value.status_code is None
    assert caught.value.job_id == job_id
    assert "3 attempts" in str(caught.value)
    assert len(calls(emulator, call)) == 3


def test_timeout_gives_transport_error(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    call, method = ("status", "get_job") if api.reads else ("cancel", "cancel_job")
    emulator.inject("hang", count=2, call=call, hang_seconds=2.0)
    started = time.monotonic()
    with pytest.raises(TransportError, match="timeout"):
        run_hook(hook(api, conn, retry_limit=1, timeout=0.2), method, job_id)
    assert time.monotonic() - started < 1.9
    assert len(calls(emulator, call)) == 2


# ---------------------------------------------------------------------- wrong secret, no server


def test_wrong_secret_is_not_retried_and_never_shown(
    api, emulator, set_connection, run_hook, all_logs
) -> None:
    wrong = "wrong-secret-5678-abcd"
    extra = dict(api.extra) or None
    conn_id = set_connection("wrong", api.conn_type, host=emulator.url, password=wrong, extra=extra)
    job_id = api.submit(emulator)
    with pytest.raises(AuthenticationError) as caught:
        run_hook(hook(api, conn_id, retry_limit=3), "cancel_job", job_id)
    assert caught.value.status_code == 401
    assert emulator.counters["requests"] == 1
    assert emulator.job(job_id)["cancel_calls"] == 0
    ok, message = hook(api, conn_id).test_connection()
    assert ok is False
    assert "401" in message
    for text in (error_text(caught.value), message, all_logs()):
        assert wrong not in text


def test_connection_refused_gives_transport_error(api, set_connection, run_hook, all_logs) -> None:
    secret_text = "tok-secret-1-closed"
    host = f"http://127.0.0.1:{closed_port()}"
    extra = dict(api.extra) or None
    conn_id = set_connection("closed", api.conn_type, host=host, password=secret_text, extra=extra)
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        run_hook(hook(api, conn_id, retry_limit=2), "cancel_job", "job:1")
    assert time.monotonic() - started < 5
    # a token exchange comes first, and it is no job's call
    assert caught.value.job_id == (None if api.token is not None else "job:1")
    ok, message = hook(api, conn_id, retry_limit=0).test_connection()
    assert ok is False
    assert message
    for text in (error_text(caught.value), message, all_logs()):
        assert secret_text not in text


def test_test_connection_ok(api, conn, emulator) -> None:
    ok, message = hook(api, conn).test_connection()
    assert ok is True
    assert api.connection_says(emulator) in message


# ---------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    ("name", "job_id"), [(api.name, job_id) for api in APIS for job_id in api.odd_ids]
)
def test_odd_ids_reach_the_emulator_intact(name, job_id, emulator, set_connection, run_hook):
    api = BY_NAME[name]
    conn_id = connect(api, set_connection, emulator)
    emulator.create_job(name, job_id, status=api.completed)
    if api.reads:
        state = run_hook(hook(api, conn_id), "get_job", job_id)
        entry = emulator.requests_log[-1]
        assert entry["path_job_id"] == job_id
        assert entry["status"] == 200
        assert state.job_id == job_id
        assert state.status is JobStatus.COMPLETED
    result = run_hook(hook(api, conn_id), "cancel_job", job_id)
    assert [e["path_job_id"] for e in calls(emulator, "cancel")] == [job_id]
    assert result.outcome is outcome(api.cancel_finished)
    assert result.job_id == job_id
    assert emulator.job(job_id)["cancel_calls"] == 1


BAD_IDS: list[Any] = [None, "", " ", "  ", "None", 1.5, 2.0, True, False, ["a", "b"], [], [["a"]]]
BAD_IDS += [{"a": 1}, {"id": "x"}]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_rejected_before_any_request(api, conn, emulator, run_hook, bad) -> None:
    for method in ("get_job", "cancel_job"):
        with pytest.raises(InvalidJobIdError):
            run_hook(hook(api, conn), method, bad)
    assert emulator.counters["requests"] == 0


# ---------------------------------------------------------------------- sync == async


@pytest.mark.parametrize(
    ("name", "raw"), [(api.name, raw) for api in APIS for raw in api.agreement]
)
def test_sync_and_async_agree(name, raw, emulator, set_connection, both_paths) -> None:
    api = BY_NAME[name]
    conn_id = connect(api, set_connection, emulator)
    job_id = f"job:{raw}"
    emulator.create_job(name, job_id, status=raw)
    states = [run(hook(api, conn_id), "get_job", job_id) for run in both_paths]
    assert states[0] == states[1]
    assert states[0].body == states[1].body
    results = [run(hook(api, conn_id), "cancel_job", job_id) for run in both_paths]
    # a running job's first cancel stops it: the second sees it stopping or stopped
    assert results[0] == results[1] or raw in api.running
    missing = [run(hook(api, conn_id), "cancel_job", "job:nope") for run in both_paths]
    assert missing[0] == missing[1]
    assert missing[0].outcome is CancelOutcome.NOT_FOUND
