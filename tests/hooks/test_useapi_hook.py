"""UseApiHook (v2 and v3) against the emulator and against scripted answers."""

from __future__ import annotations

import pytest

from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    CancelApiError,
    ConnectionConfigError,
    InvalidResponseError,
    JobNotFoundError,
    ModerationPendingError,
    PaymentRequiredError,
    RateLimitedError,
    ServerError,
)
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.job_ids import encode_path_segment, encode_query_value
from airflow_provider_cancel.status import CancelOutcome, JobStatus
from tests.conftest import FAST

from .conftest import USEAPI

TOKEN = "emulator-useapi-token"
JOB = "job:20241218021941022-user:1308-channel:1316-bot:midjourney"
API = {"v2": "useapi_v2", "v3": "useapi_v3"}


@pytest.fixture(params=["v2", "v3"])
def version(request):
    return request.param


@pytest.fixture
def conn(version, useapi_conn, useapi_v3_conn):
    return useapi_conn if version == "v2" else useapi_v3_conn


def hook(conn_id: str = "useapi_default", **kwargs) -> UseApiHook:
    return UseApiHook(conn_id, **{**FAST, **kwargs})


def status_url(version: str, job_id: str = JOB) -> str:
    if version == "v3":
        return f"{USEAPI}/v3/midjourney/jobs/{encode_path_segment(job_id)}"
    return f"{USEAPI}/v2/jobs/?jobid={encode_query_value(job_id)}"


def cancel_call(version: str, job_id: str = JOB) -> tuple[str, str]:
    if version == "v3":
        return "DELETE", f"{USEAPI}/v3/midjourney/jobs/{encode_path_segment(job_id)}"
    return "GET", f"{USEAPI}/v2/jobs/cancel/?jobid={encode_query_value(job_id)}"


@pytest.fixture
def scripted(version, set_connection):
    """A useapi connection on the default host, for fake_api scripts."""
    extra = {"api_version": "v3"} if version == "v3" else None
    return set_connection("useapi_scripted", "useapi", password=TOKEN, extra=extra)


def status_log(emulator, job_id=None):
    return [
        e
        for e in emulator.requests_log
        if e["call"] == "status" and (job_id is None or e["path_job_id"] == job_id)
    ]


# ---------------------------------------------------------------------- connection settings


def test_connection_settings(set_connection):
    set_connection(
        "u",
        "useapi",
        host="example.test",
        password="t0ken",
        extra={"api_version": "V3", "retry_limit": 7, "timeout": "12"},
    )
    h = UseApiHook("u", retry_delay=0.5)
    assert h.base_url == "https://example.test"
    assert h.api_version == "v3"
    assert h.settings.retry_limit == 7
    assert h.settings.retry_delay == 0.5
    assert h.settings.timeout == 12.0
    assert h.settings.verify is True
    assert UseApiHook("u", retry_limit=1, api_version="v2").settings.retry_limit == 1
    assert UseApiHook("u", api_version="v2").api_version == "v2"


def test_default_host_and_version(set_connection):
    set_connection("useapi_default", "useapi", password="t0ken")
    h = UseApiHook()
    assert h.conn_id == "useapi_default"
    assert h.base_url == "https://api.useapi.net"
    assert h.api_version == "v2"


def test_http_host_used_as_is(set_connection):
    set_connection("u", "useapi", host="http://127.0.0.1:9999/", password="t0ken")
    assert UseApiHook("u").base_url == "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"conn_type": "writetext", "password": "x"}, "type"),
        ({"conn_type": "useapi"}, "API token"),
        ({"conn_type": "useapi", "password": "x", "extra": {"api_version": "v9"}}, "v9"),
        ({"conn_type": "useapi", "password": "x", "extra": {"retry_limit": "many"}}, "many"),
        ({"conn_type": "useapi", "password": "x", "extra": {"timeout": -1}}, "timeout"),
    ],
)
def test_bad_connection_is_a_config_error_before_any_request(
    set_connection, fake_api, fields, match
):
    conn_type = fields.pop("conn_type")
    set_connection("bad", conn_type, **fields)
    with pytest.raises(ConnectionConfigError, match=match):
        UseApiHook("bad").get_job(JOB)  # no FAST: its settings would win over the extra
    assert fake_api.calls == []


# ---------------------------------------------------------------------- status table over HTTP


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "cancelled"}, "unknown"),  # v3 has no cancelled status
        ({"status": "CANCELLED", "error": "Job cancelled by user"}, "unknown"),
        ({"status": "failed", "error": "Job cancelled by user"}, "cancelled"),
        ({"status": "moderated", "error": "Job cancelled by user"}, "failed"),
        ({"jobid": "x"}, "unknown"),
    ],
)
def test_v3_status_edge_bodies(set_connection, fake_api, run_hook, body, expected):
    set_connection("u3", "useapi", password=TOKEN, extra={"api_version": "v3"})
    fake_api.add("GET", status_url("v3"), json=body)
    assert run_hook(hook("u3"), "get_job", JOB).status == JobStatus(expected)


def test_status_read_sends_the_token_as_bearer(version, scripted, fake_api, run_hook):
    fake_api.add("GET", status_url(version), json={"status": "started"})
    run_hook(hook(scripted), "get_job", JOB)
    (call,) = fake_api.calls
    headers = {k.lower(): v for k, v in call.headers.items()}
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in call.url


# ---------------------------------------------------------------------- cancel


@pytest.mark.parametrize("answer", ["200", "400", "409", "404"])
def test_cancel_already_cancelled_job(conn, version, emulator, run_hook, answer):
    emulator.configure(finished_cancel_answer=answer)
    job_id = emulator.submit_useapi(version=version)
    emulator.set_status(job_id, "cancelled")  # v3: stored as failed + "Job cancelled by user"
    result = run_hook(hook(conn), "cancel_job", job_id)
    # docs/statuses.md: already_finished with the status; an already-cancelled job may also read cancelled
    assert result.outcome in (CancelOutcome.ALREADY_FINISHED, CancelOutcome.CANCELLED)
    assert result.status is JobStatus.CANCELLED
    assert result.raw_status == ("cancelled" if version == "v2" else "failed")


@pytest.mark.parametrize("code", [400, 409, 404])
@pytest.mark.parametrize("raw", ["created", "started", "progress"])
def test_refused_cancel_of_running_job_is_an_error(
    version, scripted, fake_api, run_hook, code, raw
):
    method, url = cancel_call(version)
    fake_api.add(method, url, code, json={"error": "Cannot cancel right now", "code": code})
    fake_api.add("GET", status_url(version), json={"jobid": JOB, "status": raw})
    result = run_hook(hook(scripted), "cancel_job", JOB)
    assert result.outcome is CancelOutcome.ERROR
    assert result.raw_status == raw
    assert result.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert str(code) in result.message
    assert "Cannot cancel right now" in result.message
    assert fake_api.urls() == [url, status_url(version)]


@pytest.mark.parametrize(
    ("body", "outcome", "status", "reads"),
    [
        ({"status": "completed"}, CancelOutcome.ALREADY_FINISHED, JobStatus.COMPLETED, 0),
        ({"status": "failed"}, CancelOutcome.ALREADY_FINISHED, JobStatus.FAILED, 0),
        (None, CancelOutcome.CANCELLING, JobStatus.RUNNING, 1),  # empty 200: read the job
        ({"code": 200}, CancelOutcome.CANCELLING, JobStatus.RUNNING, 1),
    ],
)
def test_v2_cancel_200_answers(set_connection, fake_api, run_hook, body, outcome, status, reads):
    set_connection("u2", "useapi", password=TOKEN)
    method, url = cancel_call("v2")
    if body is None:
        fake_api.add(method, url, 200, body="")
    else:
        fake_api.add(method, url, 200, json={"jobid": JOB, **body})
    fake_api.add("GET", status_url("v2"), json={"jobid": JOB, "status": "progress"})
    result = run_hook(hook("u2"), "cancel_job", JOB)
    assert result.outcome is outcome
    assert result.status is status
    assert fake_api.count(status_url("v2"), "GET") == reads


def test_v3_cancel_204(set_connection, fake_api, run_hook):
    set_connection("u3", "useapi", password=TOKEN, extra={"api_version": "v3"})
    method, url = cancel_call("v3")
    fake_api.add(method, url, 204)
    result = run_hook(hook("u3"), "cancel_job", JOB)
    assert result.outcome is CancelOutcome.CANCELLED
    assert result.status is JobStatus.CANCELLED
    assert fake_api.urls("DELETE") == [url]


# ---------------------------------------------------------------------- errors

# useapi's own refusals (test_hook_contract.py has 400, 404, 429 and 5xx for every API)
NOT_RETRIED = {
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: AuthenticationError,
    404: JobNotFoundError,
    410: JobNotFoundError,
    596: ModerationPendingError,
}


@pytest.mark.parametrize(
    ("code", "kind"), [(code, kind) for code, kind in NOT_RETRIED.items() if code != 404]
)
def test_status_errors(version, scripted, fake_api, run_hook, code, kind):
    fake_api.add("GET", status_url(version), code, json={"error": f"server says {code}"})
    with pytest.raises(kind) as caught:
        run_hook(hook(scripted, retry_limit=2), "get_job", JOB)
    error = caught.value
    assert type(error) is kind
    assert error.status_code == code
    assert error.job_id == JOB
    assert error.server_message == f"server says {code}"
    assert f"HTTP {code}" in str(error)
    assert JOB in str(error)
    assert len(fake_api.calls) == 1


@pytest.mark.parametrize(("code", "kind"), NOT_RETRIED.items())
def test_cancel_errors(version, scripted, fake_api, run_hook, code, kind):
    method, url = cancel_call(version)
    fake_api.add(method, url, code, json={"error": f"server says {code}"})
    fake_api.add("GET", status_url(version), 404, json={"error": "gone"})
    h = hook(scripted, retry_limit=2)
    if code in (404, 410):
        # a missing job is a result, or the not-found error the operator turns into one
        try:
            result = run_hook(h, "cancel_job", JOB)
        except JobNotFoundError as missing:
            result = missing
        if isinstance(result, JobNotFoundError):
            assert result.status_code in (404, 410)
        else:
            assert result.outcome is CancelOutcome.NOT_FOUND
        return
    with pytest.raises(kind) as caught:
        run_hook(h, "cancel_job", JOB)
    error = caught.value
    assert type(error) is kind
    assert error.status_code == code
    assert error.job_id == JOB
    assert error.server_message == f"server says {code}"
    assert fake_api.count(url, method) == 1
    assert fake_api.count(status_url(version), "GET") == 0


def test_non_json_status_answer(version, scripted, fake_api, run_hook):
    fake_api.add(
        "GET",
        status_url(version),
        200,
        body="<html>cloudflare</html>",
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(InvalidResponseError) as caught:
        run_hook(hook(scripted), "get_job", JOB)
    assert caught.value.job_id == JOB
    assert "text/html" in str(caught.value)


def test_html_error_page_is_summarised(version, scripted, fake_api, run_hook):
    page = "<html>" + "x" * 5000 + "</html>"
    fake_api.add("GET", status_url(version), 502, body=page, headers={"Content-Type": "text/html"})
    with pytest.raises(ServerError) as caught:
        run_hook(hook(scripted, retry_limit=0), "get_job", JOB)
    assert len(str(caught.value)) < 500
    assert "x" * 100 not in str(caught.value)


# ---------------------------------------------------------------------- retries (emulator)


def test_596_not_retried(conn, version, emulator, run_hook):
    job_id = emulator.submit_useapi(version=version)
    emulator.inject("596", count=5, call="cancel")
    with pytest.raises(ModerationPendingError) as caught:
        run_hook(hook(conn, retry_limit=3), "cancel_job", job_id)
    assert caught.value.status_code == 596
    assert emulator.counters["cancel_requests"] == 1
    assert emulator.counters["status_requests"] == 0


# ---------------------------------------------------------------------- ids


ODD_IDS = [
    "job:1/2?x=y#frag",
    "100%",
    "%2E%2E",
    "%2F",
    "with space",
    "a+b&c=d;e",
    "ジョブ ü",
    "a/../b",
    "../../v2/account",
    "..",
    ".",
]


@pytest.mark.parametrize("job_id", ODD_IDS)
def test_odd_ids_exact_urls(version, scripted, fake_api, run_hook, job_id):
    method, url = cancel_call(version, job_id)
    fake_api.add(method, url, 200, json={"jobid": job_id, "status": "completed"})
    fake_api.add("GET", status_url(version, job_id), json={"status": "completed"})
    run_hook(hook(scripted), "get_job", job_id)
    run_hook(hook(scripted), "cancel_job", job_id)
    quoted = "".join(
        c
        if (c.isascii() and c.isalnum()) or c in "-_.~"
        else "".join(f"%{b:02X}" for b in c.encode())
        for c in job_id
    )
    if version == "v2":
        expected = [f"{USEAPI}/v2/jobs/?jobid={quoted}", f"{USEAPI}/v2/jobs/cancel/?jobid={quoted}"]
    else:
        if set(job_id) == {"."}:  # a dot segment would be collapsed by the server: encoded
            quoted = quoted.replace(".", "%2E")
        expected = [f"{USEAPI}/v3/midjourney/jobs/{quoted}"] * 2
    assert fake_api.urls() == expected


def test_int_id_is_accepted(conn, version, emulator, run_hook):
    emulator.create_job(API[version], "12345", status="completed")
    assert run_hook(hook(conn), "get_job", 12345).job_id == "12345"


# ---------------------------------------------------------------------- request(), test_connection


def test_request_returns_json(useapi_conn, emulator, run_hook):
    h = hook(useapi_conn)
    account = run_hook(h, "request", "GET", "/v2/account")
    assert isinstance(account, dict)
    assert account["email"]
    assert run_hook(hook(useapi_conn), "request", "GET", "v2/account") == account
    submitted = run_hook(h, "request", "POST", "/v2/jobs/imagine", json={"prompt": "a cat"})
    assert emulator.job(submitted["jobid"])["api"] == "useapi_v2"
    job = run_hook(h, "request", "GET", "/v2/jobs/", params={"jobid": submitted["jobid"]})
    assert job["jobid"] == submitted["jobid"]
    assert emulator.requests_log[-1]["path_job_id"] == submitted["jobid"]


def test_request_empty_body_is_none(scripted, version, fake_api, run_hook):
    fake_api.add("DELETE", f"{USEAPI}/v3/anything", 204)
    fake_api.add("POST", f"{USEAPI}/v2/anything", 200, body="")
    assert run_hook(hook(scripted), "request", "DELETE", "/v3/anything") is None
    assert run_hook(hook(scripted), "request", "post", "/v2/anything") is None


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (400, CancelApiError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (404, JobNotFoundError),
        (596, ModerationPendingError),
        (500, ServerError),
        (429, RateLimitedError),
    ],
)
def test_request_errors(scripted, fake_api, run_hook, code, kind):
    fake_api.add("GET", f"{USEAPI}/v2/account", code, json={"error": "nope"})
    with pytest.raises(kind) as caught:
        run_hook(hook(scripted, retry_limit=1), "request", "GET", "/v2/account")
    assert isinstance(caught.value, CancelApiError)
    assert caught.value.status_code == code


def test_request_non_json(useapi_conn, emulator, run_hook):
    emulator.inject("html200", count=1)
    with pytest.raises(InvalidResponseError):
        run_hook(hook(useapi_conn), "request", "GET", "/v2/account")


def test_test_connection_missing_token(set_connection):
    set_connection("nopass", "useapi", host="http://127.0.0.1:1")
    ok, message = hook("nopass").test_connection()
    assert ok is False
    assert "API token" in message


# ---------------------------------------------------------------------- sync == async
