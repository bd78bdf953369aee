"""WriteTextHook: token exchange and cache, region routing, statuses, cancel, errors, ids."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from typing import Any

import pytest

from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    CancelApiError,
    InvalidResponseError,
    JobNotFoundError,
    ServerError,
)
from airflow_provider_cancel.hooks import writetext
from airflow_provider_cancel.hooks.writetext import WriteTextHook, parse_token_answer
from airflow_provider_cancel.job_ids import encode_path_segment
from airflow_provider_cancel.status import CancelOutcome, JobStatus
from tests.conftest import FAST, HookRunner

from .conftest import DROP, TOKEN_URL, WRITETEXT_REGION

KEY = "emulator-writetext-key"
REQ = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def hook(conn_id: str = "writetext_default", **kwargs) -> WriteTextHook:
    return WriteTextHook(conn_id, **{**FAST, **kwargs})


def job_url(job_id: str = REQ, region: str = WRITETEXT_REGION) -> str:
    return f"{region}/text/Generate/Bulk/{encode_path_segment(job_id)}"


def cancel_url(job_id: str = REQ, region: str = WRITETEXT_REGION) -> str:
    return f"{job_url(job_id, region)}/cancel"


@pytest.fixture
def scripted(set_connection):
    """A WriteText connection on the default host, for fake_api scripts."""
    return set_connection("writetext_scripted", "writetext", password="wt-api-key-secret")


def calls(emulator, call):
    return [e for e in emulator.requests_log if e["call"] == call]


class FakeClock:
    """``writetext.time`` with a movable wall clock (token expiry is wall-clock based)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(writetext, "time", fake)
    return fake


# ---------------------------------------------------------------------- statuses over HTTP


def test_clock_driven_lifecycle(emulator, writetext_conn, run_hook):
    emulator.configure(start_delay=0.5, cancel_delay=0.5)
    job_id = emulator.submit_writetext()
    assert run_hook(hook(), "get_job", job_id).status is JobStatus.QUEUED
    time.sleep(0.55)
    assert run_hook(hook(), "get_job", job_id).status is JobStatus.RUNNING
    result = run_hook(hook(), "cancel_job", job_id)
    assert result.outcome is CancelOutcome.CANCELLING
    assert result.status is JobStatus.CANCELLING
    assert run_hook(hook(), "get_job", job_id).status is JobStatus.CANCELLING
    time.sleep(0.55)
    assert run_hook(hook(), "get_job", job_id).status is JobStatus.CANCELLED
    again = run_hook(hook(), "cancel_job", job_id)
    assert again.outcome is CancelOutcome.ALREADY_FINISHED
    assert again.status is JobStatus.CANCELLED


@pytest.mark.parametrize(
    ("code", "body", "outcome", "status"),
    [
        (200, '{"status": "Cancelling"}', CancelOutcome.CANCELLING, JobStatus.CANCELLING),
        (200, '{"status": "Cancelled"}', CancelOutcome.CANCELLED, JobStatus.CANCELLED),
        (200, '{"status": "Completed"}', CancelOutcome.ALREADY_FINISHED, JobStatus.COMPLETED),
    ],
)
def test_cancel_2xx_answers_with_a_status_settle_it(
    scripted, fake_api, run_hook, code, body, outcome, status
):
    fake_api.token()
    fake_api.add("POST", cancel_url(), code, body=body)
    result = run_hook(hook(scripted), "cancel_job", REQ)
    assert (result.outcome, result.status) == (outcome, status)
    assert fake_api.count(job_url()) == 0  # nothing left to read


@pytest.mark.parametrize(
    ("code", "body", "reads", "outcome", "status"),
    [
        # WriteText's documented answer: 200, no body; the read says what happened.
        (200, "", "Cancelling", CancelOutcome.CANCELLING, JobStatus.CANCELLING),
        (204, "", "Cancelled", CancelOutcome.CANCELLED, JobStatus.CANCELLED),
        (202, "", "Completed", CancelOutcome.ALREADY_FINISHED, JobStatus.COMPLETED),
        (200, "", "Running", CancelOutcome.CANCELLING, JobStatus.RUNNING),
        (200, "{}", "Completed", CancelOutcome.ALREADY_FINISHED, JobStatus.COMPLETED),
        # Not the API saying yes (a login page, a cut body): a running job was not stopped.
        (200, "<html>login</html>", "Running", CancelOutcome.ERROR, JobStatus.RUNNING),
        (200, '{"status": "Canc', "Running", CancelOutcome.ERROR, JobStatus.RUNNING),
        (200, "OK", "Completed", CancelOutcome.ALREADY_FINISHED, JobStatus.COMPLETED),
    ],
)
def test_cancel_2xx_answers_that_say_nothing_are_confirmed_by_one_read(
    scripted, fake_api, run_hook, code, body, reads, outcome, status
):
    fake_api.token()
    fake_api.add("POST", cancel_url(), code, body=body)
    fake_api.add("GET", job_url(), json={"id": REQ, "status": reads})
    result = run_hook(hook(scripted), "cancel_job", REQ)
    assert (result.outcome, result.status, result.raw_status) == (outcome, status, reads)
    assert fake_api.count(job_url()) == 1


@pytest.mark.parametrize("body", ["", "<html>login</html>", "{}"])
def test_confirm_false_skips_the_read(scripted, fake_api, run_hook, body):
    fake_api.token()
    fake_api.add("POST", cancel_url(), 200, body=body)
    result = run_hook(hook(scripted, confirm=False), "cancel_job", REQ)
    assert (result.outcome, result.status) == (CancelOutcome.CANCELLING, JobStatus.CANCELLING)
    assert fake_api.count(job_url()) == 0


def test_accepted_cancel_then_a_missing_request_is_cancelling(scripted, fake_api, run_hook):
    fake_api.token()
    fake_api.add("POST", cancel_url(), 200, body="")
    fake_api.add("GET", job_url(), 404, json={"error": "Not found"})
    result = run_hook(hook(scripted), "cancel_job", REQ)
    assert result.outcome is CancelOutcome.CANCELLING
    assert "now unknown" in result.message


@pytest.mark.parametrize("code", [400, 409])
def test_refused_cancel_of_running_request_is_an_error(scripted, fake_api, run_hook, code):
    fake_api.token()
    fake_api.add("POST", cancel_url(), code, json={"error": "Cannot cancel"})
    fake_api.add("GET", job_url(), json={"id": REQ, "status": "Running"})
    result = run_hook(hook(scripted), "cancel_job", REQ)
    assert result.outcome is CancelOutcome.ERROR
    assert result.raw_status == "Running"
    assert "Cannot cancel" in result.message


# ---------------------------------------------------------------------- errors


def test_401_on_job_call_refreshes_token_once_then_fails(scripted, fake_api, run_hook):
    fake_api.token("first-access-token")
    fake_api.token("second-access-token")
    fake_api.add("GET", job_url(), 401, json={"error": "invalid_token"})
    with pytest.raises(AuthenticationError) as caught:
        run_hook(hook(scripted, retry_limit=3), "get_job", REQ)
    assert caught.value.status_code == 401
    assert fake_api.count(TOKEN_URL) == 2
    job_calls = [c for c in fake_api.calls if c.url == job_url()]
    assert len(job_calls) == 2
    assert [c.headers.get("Authorization") for c in job_calls] == [
        "Bearer first-access-token",
        "Bearer second-access-token",
    ]


def test_401_on_job_call_refresh_succeeds(scripted, fake_api, run_hook):
    fake_api.token("first-access-token")
    fake_api.token("second-access-token")
    fake_api.add("GET", job_url(), 401, json={"error": "invalid_token"})
    fake_api.add("GET", job_url(), 200, json={"id": REQ, "status": "Running"})
    state = run_hook(hook(scripted), "get_job", REQ)
    assert state.status is JobStatus.RUNNING
    assert fake_api.count(TOKEN_URL) == 2
    assert fake_api.count(job_url()) == 2


@pytest.mark.parametrize(("code", "kind"), [(401, AuthenticationError), (403, AuthenticationError)])
def test_token_endpoint_refusal(scripted, fake_api, run_hook, code, kind):
    fake_api.add("GET", TOKEN_URL, code, json={"error": "Invalid API key"})
    with pytest.raises(kind) as caught:
        run_hook(hook(scripted, retry_limit=3), "cancel_job", REQ)
    assert caught.value.status_code == code
    assert fake_api.urls() == [TOKEN_URL]  # not retried, no job call without a token


def test_token_endpoint_500_retried_then_server_error(scripted, fake_api, run_hook):
    fake_api.add("GET", TOKEN_URL, 500, json={"error": "boom"})
    with pytest.raises(ServerError):
        run_hook(hook(scripted, retry_limit=2), "get_job", REQ)
    assert fake_api.urls() == [TOKEN_URL] * 3


@pytest.mark.parametrize(
    "body", [{"region": "api-eu.writetext.ai"}, {"access_token": ""}, {"token": 12}]
)
def test_token_answer_without_token(scripted, fake_api, run_hook, body):
    fake_api.add("GET", TOKEN_URL, 200, json=body)
    with pytest.raises(InvalidResponseError):
        run_hook(hook(scripted), "get_job", REQ)


def test_token_answer_not_json(scripted, fake_api, run_hook):
    fake_api.add("GET", TOKEN_URL, 200, body="<html></html>", headers={"Content-Type": "text/html"})
    with pytest.raises(InvalidResponseError):
        run_hook(hook(scripted), "get_job", REQ)


def test_region_connection_errors_retried(scripted, fake_api, run_hook):
    fake_api.token()
    fake_api.add("POST", cancel_url(), DROP)
    fake_api.add("POST", cancel_url(), 200, body="")
    fake_api.add("GET", job_url(), json={"id": REQ, "status": "Cancelling"})
    result = run_hook(hook(scripted, retry_limit=2), "cancel_job", REQ)
    assert result.outcome is CancelOutcome.CANCELLING
    assert fake_api.count(cancel_url()) == 2


# ---------------------------------------------------------------------- token cache


def test_one_token_request_across_many_calls(emulator, writetext_conn, run_hook):
    ids = [emulator.submit_writetext() for _ in range(5)]
    h = hook()
    for job_id in ids * 3:
        run_hook(h, "get_job", job_id)
    for job_id in ids:
        run_hook(hook(), "cancel_job", job_id)
    assert emulator.counters["token_requests"] == 1
    assert emulator.counters["status_requests"] == 15 + 5  # each cancel confirmed by a read
    assert emulator.counters["cancel_requests"] == 5


def test_one_token_request_from_many_threads(emulator, writetext_conn):
    emulator.configure(latency=0.05)
    ids = [emulator.submit_writetext() for _ in range(4)]
    shared = hook()
    barrier = threading.Barrier(16)

    def work(n: int) -> list[JobStatus]:
        h = shared if n % 2 else hook()
        barrier.wait()
        return [h.get_job(job_id).status for job_id in ids]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(work, range(16)))
    assert all(len(r) == 4 for r in results)
    assert emulator.counters["token_requests"] == 1
    assert emulator.counters["status_requests"] == 64


def test_one_token_request_from_many_coroutines(emulator, writetext_conn):
    emulator.configure(latency=0.05)
    ids = [emulator.submit_writetext() for _ in range(20)]

    async def main():
        h = hook()
        try:
            return await asyncio.gather(
                *(h.aget_job(i) for i in ids), *(hook().acancel_job(i) for i in ids)
            )
        finally:
            await h.aclose()

    results = asyncio.run(main())
    assert len(results) == 40
    assert emulator.counters["token_requests"] == 1


@pytest.mark.parametrize(
    "steps",
    [
        # the second async read runs in another event loop
        [("sync", "get_job"), ("async", "get_job"), ("async", "get_job"), ("sync", "cancel_job")],
        [("async", "get_job"), ("sync", "get_job")],
    ],
    ids=["sync-first", "async-first"],
)
def test_sync_and_async_share_the_token(emulator, writetext_conn, steps):
    job_id = emulator.submit_writetext()
    for mode, method in steps:
        HookRunner(mode)(hook(), method, job_id)
    assert emulator.counters["token_requests"] == 1


def test_connections_do_not_share_tokens(emulator, writetext_conn, set_connection):
    set_connection("writetext_other", "writetext", host=emulator.url, password=KEY)
    job_id = emulator.submit_writetext()
    hook().get_job(job_id)
    hook("writetext_other").get_job(job_id)
    assert emulator.counters["token_requests"] == 2


def test_expired_token_refreshed_once(emulator, writetext_conn, run_hook):
    job_id = emulator.submit_writetext()
    run_hook(hook(), "get_job", job_id)
    emulator.expire_tokens()
    state = run_hook(hook(), "get_job", job_id)
    assert state.job_id == job_id
    assert emulator.counters["token_requests"] == 2
    assert [e["status"] for e in calls(emulator, "status")] == [200, 401, 200]


def test_persistent_401_gives_up_after_one_refresh(emulator, writetext_conn, run_hook):
    job_id = emulator.submit_writetext()
    emulator.inject("expired_token", count=10, api="writetext")
    with pytest.raises(AuthenticationError):
        run_hook(hook(retry_limit=3), "cancel_job", job_id)
    assert emulator.counters["token_requests"] == 2
    assert [e["status"] for e in calls(emulator, "cancel")] == [401, 401]


@pytest.mark.parametrize(
    "fields",
    [
        ("access_token", "expires_in"),
        ("accessToken", "expiresIn"),
        ("token", None),
        ("access_token", "expires"),
        ("accessToken", "expiresAt"),
        ("token", "expires_in"),
    ],
)
def test_token_field_variants_on_emulator(emulator, writetext_conn, run_hook, clock, fields):
    emulator.configure(token_fields=fields, token_ttl=3600)
    job_id = emulator.submit_writetext()
    run_hook(hook(), "get_job", job_id)
    run_hook(hook(), "cancel_job", job_id)
    assert emulator.counters["token_requests"] == 1
    assert all(
        e["status"] in (200, 204) for e in calls(emulator, "status") + calls(emulator, "cancel")
    )
    # 40 minutes later the token is still used; an hour later a token with an expiry is
    # refreshed (before it runs out), one without keeps the 24 h default
    clock.offset = 2400
    run_hook(hook(), "get_job", job_id)
    assert emulator.counters["token_requests"] == 1
    clock.offset = 3550
    run_hook(hook(), "get_job", job_id)
    assert emulator.counters["token_requests"] == (1 if fields[1] is None else 2)
    assert 401 not in [e["status"] for e in emulator.requests_log]


def test_token_refreshed_before_expiry(scripted, fake_api, run_hook, clock):
    fake_api.token("tok-one-1234", expires_in=3600)
    fake_api.token("tok-two-5678", expires_in=3600)
    fake_api.add("GET", job_url(), json={"id": REQ, "status": "Running"})
    run_hook(hook(scripted), "get_job", REQ)
    clock.offset = 3000  # not near expiry yet
    run_hook(hook(scripted), "get_job", REQ)
    assert fake_api.count(TOKEN_URL) == 1
    clock.offset = 3400  # within the refresh margin, before expiry
    run_hook(hook(scripted), "get_job", REQ)
    assert fake_api.count(TOKEN_URL) == 2
    auth = [c.headers["Authorization"] for c in fake_api.calls if c.url == job_url()]
    assert auth == ["Bearer tok-one-1234", "Bearer tok-one-1234", "Bearer tok-two-5678"]


def test_short_lived_token_refreshed(scripted, fake_api, run_hook, clock):
    fake_api.token("tok-one-1234", expires_in=60)
    fake_api.token("tok-two-5678", expires_in=60)
    fake_api.add("GET", job_url(), json={"id": REQ, "status": "Running"})
    run_hook(hook(scripted), "get_job", REQ)
    clock.offset = 30
    run_hook(hook(scripted), "get_job", REQ)
    assert fake_api.count(TOKEN_URL) == 1
    clock.offset = 58
    run_hook(hook(scripted), "get_job", REQ)
    assert fake_api.count(TOKEN_URL) == 2


# ---------------------------------------------------------------------- token answer parsing


@pytest.mark.parametrize("name", ["access_token", "accessToken", "token"])
def test_parse_token_field_names(name):
    token = parse_token_answer({name: "abc-123", "region": "api-eu.writetext.ai"}, TOKEN_URL, None)
    assert token.token == "abc-123"
    assert token.region_url == "https://api-eu.writetext.ai"


@pytest.mark.parametrize(
    ("extra", "lifetime"),
    [
        ({"expires_in": 3600}, 3600),
        ({"expiresIn": 7200}, 7200),
        ({"expires_in": "1800"}, 1800),
        ({}, 24 * 3600),
        ({"expires_in": None}, 24 * 3600),
        ({"expires_in": 0}, 24 * 3600),
        ({"expires_in": "soon"}, 24 * 3600),
    ],
)
def test_parse_token_lifetime(extra, lifetime):
    before = time.time()
    token = parse_token_answer({"access_token": "a", **extra}, TOKEN_URL, None)
    assert token.expires_at - before == pytest.approx(lifetime, abs=5)
    assert token.refresh_at < token.expires_at
    assert token.expires_at - token.refresh_at <= 300


@pytest.mark.parametrize("name", ["expires", "expiresAt", "expires_at"])
def test_parse_token_absolute_expiry_iso(name):
    from datetime import datetime, timedelta

    when = datetime.now(UTC) + timedelta(hours=2)
    token = parse_token_answer(
        {"accessToken": "a", name: when.isoformat().replace("+00:00", "Z")}, TOKEN_URL, None
    )
    assert token.expires_at == pytest.approx(when.timestamp(), abs=5)


@pytest.mark.parametrize("name", ["expires", "expiresAt", "expires_at"])
def test_parse_token_absolute_expiry_epoch_seconds(name):
    when = time.time() + 7200
    token = parse_token_answer({"accessToken": "a", name: int(when)}, TOKEN_URL, None)
    assert token.expires_at == pytest.approx(when, abs=5)


def test_parse_token_region_forms():
    base = "http://127.0.0.1:8000/"
    assert (
        parse_token_answer({"token": "a", "region": "h:1"}, base, None).region_url == "http://h:1"
    )
    assert (
        parse_token_answer({"token": "a", "region": "https://x.example/"}, base, None).region_url
        == "https://x.example"
    )
    assert parse_token_answer({"token": "a"}, base, None).region_url == "http://127.0.0.1:8000"
    assert (
        parse_token_answer({"token": "a", "region": "r1"}, base, "override.example").region_url
        == "http://override.example"
    )


# ---------------------------------------------------------------------- region routing


def test_calls_go_to_the_region_port(emulator, writetext_conn, run_hook):
    job_id = emulator.submit_writetext()
    run_hook(hook(), "get_job", job_id)
    run_hook(hook(), "cancel_job", job_id)
    (token,) = calls(emulator, "token")
    assert token["port"] == emulator.port
    jobs = calls(emulator, "status") + calls(emulator, "cancel")
    assert len(jobs) == 3  # read, cancel, the read that confirms it
    assert {e["port"] for e in jobs} == {emulator.region_port}
    assert emulator.region_port != emulator.port


def test_region_from_token_answer(scripted, fake_api, run_hook):
    fake_api.token(region="api-eu.writetext.ai")
    fake_api.add("GET", job_url(), json={"id": REQ, "status": "Pending"})
    run_hook(hook(scripted), "get_job", REQ)
    assert fake_api.urls() == [TOKEN_URL, job_url()]
    token_call, job_call = fake_api.calls
    assert token_call.headers["WriteTextAI-Token"] == "wt-api-key-secret"
    assert "Authorization" not in token_call.headers
    assert job_call.headers["Authorization"] == "Bearer access-token-0123456789"
    assert "wt-api-key-secret" not in str(job_call.headers)  # the key stays with the token call


def test_region_extra_overrides_token_answer(set_connection, fake_api, run_hook):
    set_connection(
        "wt_us", "writetext", password="wt-api-key-secret", extra={"region": "api-us.writetext.ai"}
    )
    fake_api.token(region="api-eu.writetext.ai")
    us = "https://api-us.writetext.ai"
    fake_api.add("POST", cancel_url(region=us), 200, body="")
    run_hook(hook("wt_us", confirm=False), "cancel_job", REQ)
    assert fake_api.urls() == [TOKEN_URL, cancel_url(region=us)]


def test_missing_region_falls_back_to_token_host(scripted, fake_api, run_hook):
    fake_api.token(region=None)
    base = "https://api.writetext.ai"
    fake_api.add("GET", job_url(region=base), json={"id": REQ, "status": "Pending"})
    run_hook(hook(scripted), "get_job", REQ)
    assert fake_api.urls() == [TOKEN_URL, job_url(region=base)]


# ---------------------------------------------------------------------- ids

ODD_IDS = [
    "req:1/2?x=y#frag",
    "100%",
    "%2E%2E",
    "with space",
    "a+b&c=d",
    "リクエスト ü",
    "a/../b",
    "../../web/apitoken/accesstoken",
    "..",
    ".",
]


@pytest.mark.parametrize("job_id", ODD_IDS)
def test_odd_ids_exact_urls(scripted, fake_api, run_hook, job_id):
    quoted = "".join(
        c
        if (c.isascii() and c.isalnum()) or c in "-_.~"
        else "".join(f"%{b:02X}" for b in c.encode())
        for c in job_id
    )
    if set(job_id) == {"."}:
        quoted = quoted.replace(".", "%2E")
    status = f"{WRITETEXT_REGION}/text/Generate/Bulk/{quoted}"
    fake_api.token()
    fake_api.add("GET", status, json={"status": "Running"})
    fake_api.add("POST", f"{status}/cancel", 200, body="")
    run_hook(hook(scripted), "get_job", job_id)
    run_hook(hook(scripted), "cancel_job", job_id)
    assert fake_api.urls() == [TOKEN_URL, status, f"{status}/cancel", status]


# ---------------------------------------------------------------------- request(), test_connection


def test_request(emulator, writetext_conn, run_hook):
    h = hook()
    submitted = run_hook(h, "request", "POST", "/text/Generate", json={"name": "bulk"})
    job_id = submitted["requestId"]
    assert emulator.job(job_id)["api"] == "writetext"
    body = run_hook(h, "request", "GET", f"/text/Generate/Bulk/{job_id}")
    assert body["id"] == job_id
    assert run_hook(h, "request", "POST", f"/text/Generate/Bulk/{job_id}/cancel") is None
    with pytest.raises(JobNotFoundError):
        run_hook(h, "request", "GET", "/text/Generate/Bulk/nope")
    assert emulator.counters["token_requests"] == 1


def test_request_error_classes(scripted, fake_api, run_hook):
    fake_api.token()
    fake_api.add("GET", f"{WRITETEXT_REGION}/text/Credit", 500, json={"error": "down"})
    with pytest.raises(ServerError) as caught:
        run_hook(hook(scripted, retry_limit=1), "request", "GET", "/text/Credit")
    assert isinstance(caught.value, CancelApiError)
    assert fake_api.count(f"{WRITETEXT_REGION}/text/Credit") == 2


# ---------------------------------------------------------------------- sync == async


def test_a_region_never_moves_the_access_token_from_https_to_http(
    fake_api: Any, set_connection: Any, run_hook: Any
) -> None:
    set_connection("wt_https", "writetext", password="wt-api-key-secret")
    fake_api.token(region="http://api-eu.writetext.ai")
    with pytest.raises(InvalidResponseError, match="plain http"):
        run_hook(WriteTextHook("wt_https", **FAST), "cancel_job", "req-1")
    assert [c.url for c in fake_api.calls] == ["https://api.writetext.ai/web/apitoken/accesstoken"]
