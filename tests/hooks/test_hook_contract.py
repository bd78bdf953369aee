"""What every job API hook does alike, tested once over useapi v2, useapi v3 and WriteText, on the
sync and the async path: statuses, cancelling running, finished and missing jobs, retries on
429/5xx/dropped connections and none on 4xx, transport errors, ids, ``test_connection``, the
bulk report, and no secret in any error. What only one API does stays in ``test_useapi_hook.py``
and ``test_writetext_hook.py``.
"""

from __future__ import annotations

import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
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
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.writetext import WriteTextHook
from airflow_provider_cancel.job_ids import encode_path_segment, encode_query_value
from airflow_provider_cancel.status import CancelOutcome, JobStatus
from tests.conftest import FAST, USEAPI_TOKEN, WRITETEXT_KEY

from .conftest import DROP, TOKEN_URL, USEAPI, WRITETEXT_REGION

SCRIPTED_SECRET = "scripted-secret-0123456789"


@dataclass(frozen=True)
class Api:
    """One API as the contract sees it: which hook, which connection, what its answers say."""

    name: str
    """The emulator's name for it: ``useapi_v2``, ``useapi_v3`` or ``writetext``."""
    hook_class: Callable[..., JobApiHook]
    conn_type: str
    extra: dict[str, Any] | None
    secret: str
    """The emulator's token or key for it."""
    completed: str
    """Its raw status of a completed job."""
    finished: tuple[tuple[str, str], ...]
    """(raw status, normalized) of finished jobs."""
    running: tuple[str, ...]
    """Raw statuses of jobs not yet finished."""
    cancelled_at_once: bool
    """A cancel of a running job reads ``cancelled`` at once (else ``cancelling`` first)."""
    finished_cancel_answers: tuple[str, ...]
    """The emulator's ``finished_cancel_answer`` settings this API knows."""
    odd_ids: tuple[str, ...]

    def __str__(self) -> str:
        return self.name

    def hook(self, conn_id: str, **kwargs: Any) -> JobApiHook:
        return self.hook_class(conn_id, **{**FAST, **kwargs})

    def status_call(self, job_id: str) -> tuple[str, str]:
        """(method, URL) of the status read, as sent to the API's real host."""
        if self.name == "useapi_v2":
            return "GET", f"{USEAPI}/v2/jobs/?jobid={encode_query_value(job_id)}"
        if self.name == "useapi_v3":
            return "GET", f"{USEAPI}/v3/midjourney/jobs/{encode_path_segment(job_id)}"
        return "GET", f"{WRITETEXT_REGION}/text/Generate/Bulk/{encode_path_segment(job_id)}"

    def cancel_call(self, job_id: str) -> tuple[str, str]:
        """(method, URL) of the cancel call, as sent to the API's real host."""
        if self.name == "useapi_v2":
            return "GET", f"{USEAPI}/v2/jobs/cancel/?jobid={encode_query_value(job_id)}"
        if self.name == "useapi_v3":
            return "DELETE", self.status_call(job_id)[1]
        return "POST", f"{self.status_call(job_id)[1]}/cancel"

    def cancel_ok_status(self) -> int:
        return 204 if self.name == "useapi_v3" else 200

    def connect(self, set_connection: Any, emulator: Any, conn_id: str = "c") -> str:
        """A connection of this API on ``emulator``; returns its id."""
        return str(
            set_connection(
                conn_id, self.conn_type, host=emulator.url, password=self.secret, extra=self.extra
            )
        )

    def submit(self, emulator: Any) -> str:
        if self.name == "writetext":
            return str(emulator.submit_writetext())
        return str(emulator.submit_useapi(version=self.name[-2:]))


USEAPI_ODD_IDS = ("%2F", "a+b&c=d;e", "ジョブ ü", "../../v2/account")
WRITETEXT_ODD_IDS = ("a+b&c=d", "リクエスト ü", "../../web/apitoken/accesstoken")
COMMON_ODD_IDS = ("1/2?x=y#frag", "100%", "%2E%2E", "with space", "a/../b", "..", ".")
USEAPI_FINISHED = (("completed", "completed"), ("failed", "failed"), ("moderated", "failed"))
USEAPI_RUNNING = ("created", "progress")


def useapi(version: str) -> Api:
    extra = {"api_version": version} if version != "v2" else None
    return Api(
        f"useapi_{version}",
        UseApiHook,
        "useapi",
        extra,
        USEAPI_TOKEN,
        "completed",
        USEAPI_FINISHED,
        USEAPI_RUNNING,
        True,
        ("200", "400", "409", "404"),
        COMMON_ODD_IDS + USEAPI_ODD_IDS,
    )


APIS = [
    useapi("v2"),
    useapi("v3"),
    Api(
        "writetext",
        WriteTextHook,
        "writetext",
        None,
        WRITETEXT_KEY,
        "Completed",
        (("Completed", "completed"), ("Failed", "failed"), ("TimedOut", "failed")),
        ("Pending", "Running"),
        False,
        ("200",),  # the setting is useapi's
        COMMON_ODD_IDS + WRITETEXT_ODD_IDS,
    ),
]
BY_NAME = {api.name: api for api in APIS}

# Raw statuses per API and what they mean (the emulator's job status -> the hook's JobStatus).
STATUS_ROWS: dict[str, list[tuple[str, str | None, str]]] = {
    "useapi_v2": [
        ("created", None, "queued"),
        ("Created", None, "queued"),
        ("started", None, "running"),
        ("STARTED", None, "running"),
        ("progress", None, "running"),
        ("cancelled", None, "cancelled"),
        ("Cancelled", None, "cancelled"),
        ("completed", None, "completed"),
        ("COMPLETED", None, "completed"),
        ("failed", None, "failed"),
        ("failed", "Job cancelled by user", "failed"),
        ("moderated", None, "failed"),
        ("Moderated", None, "failed"),
        ("paused", None, "unknown"),
        ("queued", None, "unknown"),
        ("", None, "unknown"),
    ],
    "useapi_v3": [
        ("created", None, "queued"),
        ("CREATED", None, "queued"),
        ("started", None, "running"),
        ("progress", None, "running"),
        ("Progress", None, "running"),
        ("failed", "Job cancelled by user", "cancelled"),
        ("failed", "job cancelled by user", "cancelled"),
        ("Failed", "JOB CANCELLED BY USER", "cancelled"),
        ("completed", None, "completed"),
        ("Completed", None, "completed"),
        ("failed", None, "failed"),
        ("failed", "Discord error", "failed"),
        ("moderated", None, "failed"),
        ("MODERATED", None, "failed"),
        ("paused", None, "unknown"),
        ("", None, "unknown"),
    ],
    "writetext": [
        ("Pending", None, "queued"),
        ("pending", None, "queued"),
        ("Running", None, "running"),
        ("RUNNING", None, "running"),
        ("Cancelling", None, "cancelling"),
        ("cancelling", None, "cancelling"),
        ("Cancelled", None, "cancelled"),
        ("CANCELLED", None, "cancelled"),
        ("Completed", None, "completed"),
        ("completed", None, "completed"),
        ("TimedOut", None, "failed"),
        ("timedout", None, "failed"),
        ("Failed", None, "failed"),
        ("FAILED", None, "failed"),
        ("Queued", None, "unknown"),
        ("Paused", None, "unknown"),
        ("", None, "unknown"),
    ],
}

# What the sync and async paths must agree on, per API.
AGREEMENT_STATUSES = {
    "useapi_v2": ("created", "progress", "completed", "failed", "cancelled", "odd"),
    "useapi_v3": ("created", "progress", "completed", "failed", "cancelled", "odd"),
    "writetext": ("Pending", "Running", "Cancelling", "Completed", "TimedOut"),
}

# Answers every API maps alike: code -> error class (retried codes are tried 1 + retry_limit times).
RETRIED = {429: RateLimitedError, 500: ServerError, 502: ServerError, 503: ServerError}
RETRIED[504] = ServerError
NOT_RETRIED = {400: CancelApiError, 404: JobNotFoundError}


@pytest.fixture(params=APIS, ids=str)
def api(request: pytest.FixtureRequest) -> Api:
    return request.param


@pytest.fixture
def conn(api: Api, emulator: Any, set_connection: Any) -> str:
    """A connection of ``api`` on the emulator."""
    return api.connect(set_connection, emulator, f"contract_{api.name}")


@pytest.fixture
def scripted(api: Api, set_connection: Any, fake_api: Any) -> str:
    """A connection of ``api`` on its real host, answered by ``fake_api`` (WriteText's token
    endpoint already scripted)."""
    if api.name == "writetext":
        fake_api.token()
    return str(
        set_connection(
            f"scripted_{api.name}", api.conn_type, password=SCRIPTED_SECRET, extra=api.extra
        )
    )


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


@pytest.mark.parametrize(
    ("name", "raw", "error", "expected"),
    [(name, *row) for name, rows in STATUS_ROWS.items() for row in rows],
)
def test_status_table_via_emulator(
    name, raw, error, expected, emulator, set_connection, run_hook
) -> None:
    api = BY_NAME[name]
    conn_id = api.connect(set_connection, emulator)
    job_id = f"job:{name}:{raw or 'blank'}:{error}"
    emulator.create_job(name, job_id)
    emulator.set_status(job_id, raw, error)
    state = run_hook(api.hook(conn_id), "get_job", job_id)
    assert state.job_id == job_id
    assert state.status == JobStatus(expected)
    assert state.status.value == emulator.job(job_id)["normalized"]
    assert state.raw_status == raw
    assert state.body["status"] == raw
    assert calls(emulator, "status")[-1]["status"] == 200


def test_status_of_a_missing_job_is_not_found_and_not_retried(api, conn, emulator, run_hook):
    with pytest.raises(JobNotFoundError) as caught:
        run_hook(api.hook(conn, retry_limit=3), "get_job", "job:missing")
    assert caught.value.status_code == 404
    assert caught.value.job_id == "job:missing"
    assert len(calls(emulator, "status")) == 1


# ---------------------------------------------------------------------- cancel


def test_cancel_running_job(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    result = run_hook(api.hook(conn), "cancel_job", job_id)
    assert result.job_id == job_id
    if api.cancelled_at_once:
        assert (result.outcome, result.status) == (CancelOutcome.CANCELLED, JobStatus.CANCELLED)
    else:
        assert result.outcome is CancelOutcome.CANCELLING
    assert emulator.job(job_id)["cancel_calls"] == 1
    deadline = time.monotonic() + 5
    while emulator.job(job_id)["normalized"] != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run_hook(api.hook(conn), "get_job", job_id).status is JobStatus.CANCELLED


@pytest.mark.parametrize(
    ("name", "answer", "raw", "expected"),
    [
        (api.name, answer, raw, expected)
        for api in APIS
        for answer in api.finished_cancel_answers
        for raw, expected in api.finished
    ],
)
def test_cancel_finished_job_is_already_finished(
    name, answer, raw, expected, emulator, set_connection, run_hook
) -> None:
    api = BY_NAME[name]
    conn_id = api.connect(set_connection, emulator)
    emulator.configure(finished_cancel_answer=answer)
    job_id = api.submit(emulator)
    emulator.set_status(job_id, raw)
    result = run_hook(api.hook(conn_id), "cancel_job", job_id)
    assert result.outcome is CancelOutcome.ALREADY_FINISHED, result
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
    conn_id = api.connect(set_connection, emulator)
    emulator.configure(finished_cancel_answer=answer)
    result = run_hook(api.hook(conn_id), "cancel_job", "job:does-not-exist")
    assert result.outcome is CancelOutcome.NOT_FOUND
    assert result.job_id == "job:does-not-exist"
    assert result.status is JobStatus.UNKNOWN


def test_bulk_cancel_reports_every_job_in_order(api, conn, emulator) -> None:
    running = api.submit(emulator)
    finished = api.submit(emulator)
    emulator.set_status(finished, api.completed)
    report = api.hook(conn).cancel_jobs([running, "job:does-not-exist", finished])
    assert [r.job_id for r in report] == [running, "job:does-not-exist", finished]
    expected_first = CancelOutcome.CANCELLED if api.cancelled_at_once else CancelOutcome.CANCELLING
    assert [r.outcome for r in report] == [
        expected_first,
        CancelOutcome.NOT_FOUND,
        CancelOutcome.ALREADY_FINISHED,
    ]


def test_bulk_cancel_turns_one_failing_job_into_an_error_outcome(api, conn, emulator) -> None:
    jobs = [api.submit(emulator) for _ in range(3)]
    emulator.inject("503", count=3, call="cancel")
    report = api.hook(conn, retry_limit=2).cancel_jobs(jobs, max_concurrency=1)
    outcomes = [r.outcome for r in report]
    assert outcomes[0] is CancelOutcome.ERROR
    assert "503" in report[0].message
    assert api.secret not in report[0].message
    assert CancelOutcome.ERROR not in outcomes[1:]


# ---------------------------------------------------------------------- answers every API maps alike


@pytest.mark.parametrize(("code", "kind"), [*NOT_RETRIED.items(), *RETRIED.items()])
def test_status_errors(api, scripted, fake_api, run_hook, code, kind) -> None:
    method, url = api.status_call("job:1")
    fake_api.add(method, url, code, json={"error": f"server says {code}"})
    with pytest.raises(kind) as caught:
        run_hook(api.hook(scripted, retry_limit=2), "get_job", "job:1")
    error = caught.value
    assert type(error) is kind
    assert error.status_code == code
    assert error.job_id == "job:1"
    assert error.server_message == f"server says {code}"
    assert f"HTTP {code}" in str(error)
    assert "job:1" in str(error)
    assert fake_api.count(url, method) == (3 if code in RETRIED else 1)
    assert fake_api.count(TOKEN_URL) == (1 if api.name == "writetext" else 0)


@pytest.mark.parametrize(("code", "kind"), RETRIED.items())
def test_cancel_errors_retried(api, scripted, fake_api, run_hook, code, kind) -> None:
    method, url = api.cancel_call("job:1")
    fake_api.add(method, url, code, json={"error": f"server says {code}"})
    with pytest.raises(kind) as caught:
        run_hook(api.hook(scripted, retry_limit=2), "cancel_job", "job:1")
    error = caught.value
    assert type(error) is kind
    assert error.status_code == code
    assert error.job_id == "job:1"
    assert error.server_message == f"server says {code}"
    assert fake_api.count(url, method) == 3
    read_method, read_url = api.status_call("job:1")
    assert fake_api.count(read_url, read_method) == 0


def test_scripted_connection_errors_retried(api, scripted, fake_api, run_hook) -> None:
    method, url = api.status_call("job:1")
    fake_api.add(method, url, DROP)
    fake_api.add(method, url, DROP)
    fake_api.add(method, url, json={"status": api.completed})
    state = run_hook(api.hook(scripted, retry_limit=2), "get_job", "job:1")
    assert state.status is JobStatus.COMPLETED
    assert fake_api.count(url, method) == 3


# ---------------------------------------------------------------------- retries (emulator)


@pytest.mark.parametrize("call", ["status", "cancel"])
def test_429_waits_retry_after(api, conn, emulator, run_hook, call) -> None:
    job_id = api.submit(emulator)
    emulator.inject("429", count=2, call=call, retry_after=0.3)
    started = time.monotonic()
    method = "get_job" if call == "status" else "cancel_job"
    result = run_hook(api.hook(conn, retry_limit=3), method, job_id)
    elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 5
    ok = 200 if call == "status" else api.cancel_ok_status()
    assert [e["status"] for e in calls(emulator, call)] == [429, 429, ok]
    if call == "cancel":
        assert result.outcome in (CancelOutcome.CANCELLED, CancelOutcome.CANCELLING)


def test_429_gives_up_after_retry_limit(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    emulator.inject("429", count=10, call="status", retry_after=0.05)
    with pytest.raises(RateLimitedError) as caught:
        run_hook(api.hook(conn, retry_limit=2), "get_job", job_id)
    assert caught.value.status_code == 429
    assert len(calls(emulator, "status")) == 3


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "html"])
def test_5xx_retried_then_succeeds(api, conn, emulator, run_hook, kind) -> None:
    job_id = api.submit(emulator)
    emulator.inject(kind, count=2, call="status")
    state = run_hook(api.hook(conn, retry_limit=3), "get_job", job_id)
    assert state.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert len(calls(emulator, "status")) == 3


def test_5xx_gives_up_with_server_error(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    emulator.inject("503", count=10, call="cancel")
    with pytest.raises(ServerError) as caught:
        run_hook(api.hook(conn, retry_limit=2), "cancel_job", job_id)
    assert caught.value.status_code == 503
    assert caught.value.job_id == job_id
    assert emulator.counters["cancel_requests"] == 3
    assert emulator.job(job_id)["cancel_calls"] == 0


def test_dropped_connections_retried(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    emulator.inject("drop", count=2, call="status")
    state = run_hook(api.hook(conn, retry_limit=3), "get_job", job_id)
    assert state.job_id == job_id
    assert len(calls(emulator, "status")) == 3


def test_dropped_connections_give_transport_error(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    emulator.inject("drop", count=10, call="status")
    with pytest.raises(TransportError) as caught:
        run_hook(api.hook(conn, retry_limit=2), "get_job", job_id)
    assert caught.value.status_code is None
    assert caught.value.job_id == job_id
    assert "3 attempts" in str(caught.value)
    assert len(calls(emulator, "status")) == 3


def test_timeout_gives_transport_error(api, conn, emulator, run_hook) -> None:
    job_id = api.submit(emulator)
    emulator.inject("hang", count=2, call="status", hang_seconds=2.0)
    started = time.monotonic()
    with pytest.raises(TransportError, match="timeout"):
        run_hook(api.hook(conn, retry_limit=1, timeout=0.2), "get_job", job_id)
    assert time.monotonic() - started < 1.9
    assert len(calls(emulator, "status")) == 2


# ---------------------------------------------------------------------- wrong secret, no server


def test_wrong_secret_is_not_retried_and_never_shown(
    api, emulator, set_connection, run_hook, all_logs
) -> None:
    wrong = "wrong-secret-5678-abcd"
    conn_id = set_connection(
        "wrong", api.conn_type, host=emulator.url, password=wrong, extra=api.extra
    )
    job_id = api.submit(emulator)
    with pytest.raises(AuthenticationError) as caught:
        run_hook(api.hook(conn_id, retry_limit=3), "cancel_job", job_id)
    assert caught.value.status_code == 401
    assert emulator.counters["requests"] == 1
    assert emulator.job(job_id)["cancel_calls"] == 0
    ok, message = api.hook(conn_id).test_connection()
    assert ok is False
    assert "401" in message
    for text in (error_text(caught.value), message, all_logs()):
        assert wrong not in text


def test_connection_refused_gives_transport_error(api, set_connection, run_hook, all_logs) -> None:
    secret = "tok-secret-1-closed"
    host = f"http://127.0.0.1:{closed_port()}"
    conn_id = set_connection("closed", api.conn_type, host=host, password=secret, extra=api.extra)
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        run_hook(api.hook(conn_id, retry_limit=2), "cancel_job", "job:1")
    assert time.monotonic() - started < 5
    # WriteText fails at its token exchange, which is no job's call
    assert caught.value.job_id == (None if api.name == "writetext" else "job:1")
    ok, message = api.hook(conn_id, retry_limit=0).test_connection()
    assert ok is False
    assert message
    for text in (error_text(caught.value), message, all_logs()):
        assert secret not in text


def test_test_connection_ok(api, conn, emulator) -> None:
    ok, message = api.hook(conn).test_connection()
    assert ok is True
    assert (emulator.region if api.name == "writetext" else api.name[-2:]) in message


# ---------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    ("name", "job_id"), [(api.name, job_id) for api in APIS for job_id in api.odd_ids]
)
def test_odd_ids_reach_the_emulator_intact(name, job_id, emulator, set_connection, run_hook):
    api = BY_NAME[name]
    conn_id = api.connect(set_connection, emulator)
    emulator.create_job(name, job_id, status=api.completed)
    state = run_hook(api.hook(conn_id), "get_job", job_id)
    entry = emulator.requests_log[-1]
    assert entry["path_job_id"] == job_id
    assert entry["status"] == 200
    assert state.job_id == job_id
    assert state.status is JobStatus.COMPLETED
    result = run_hook(api.hook(conn_id), "cancel_job", job_id)
    assert [e["path_job_id"] for e in calls(emulator, "cancel")] == [job_id]
    assert result.outcome is CancelOutcome.ALREADY_FINISHED
    assert emulator.job(job_id)["cancel_calls"] == 1


BAD_IDS: list[Any] = [None, "", " ", "  ", "None", 1.5, 2.0, True, False, ["a", "b"], [], [["a"]]]
BAD_IDS += [{"a": 1}, {"id": "x"}]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_rejected_before_any_request(api, conn, emulator, run_hook, bad) -> None:
    for method in ("get_job", "cancel_job"):
        with pytest.raises(InvalidJobIdError):
            run_hook(api.hook(conn), method, bad)
    assert emulator.counters["requests"] == 0


# ---------------------------------------------------------------------- sync == async


@pytest.mark.parametrize(
    ("name", "raw"), [(name, raw) for name, raws in AGREEMENT_STATUSES.items() for raw in raws]
)
def test_sync_and_async_agree(name, raw, emulator, set_connection, both_paths) -> None:
    api = BY_NAME[name]
    conn_id = api.connect(set_connection, emulator)
    job_id = f"job:{raw}"
    emulator.create_job(name, job_id, status=raw)
    states = [run(api.hook(conn_id), "get_job", job_id) for run in both_paths]
    assert states[0] == states[1]
    assert states[0].body == states[1].body
    results = [run(api.hook(conn_id), "cancel_job", job_id) for run in both_paths]
    # a running job's first cancel stops it: the second sees it stopping or stopped
    assert results[0] == results[1] or raw in api.running
    missing = [run(api.hook(conn_id), "cancel_job", "job:nope") for run in both_paths]
    assert missing[0] == missing[1]
    assert missing[0].outcome is CancelOutcome.NOT_FOUND
