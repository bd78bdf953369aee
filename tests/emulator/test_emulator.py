"""Tests of the useapi.net / WriteText.ai emulator with plain HTTP clients (no project hooks)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
import requests

from airflow_provider_cancel.emulator import Emulator, normalize

USEAPI_AUTH = {"Authorization": "Bearer emulator-useapi-token"}
WRITETEXT_KEY = {"WriteTextAI-Token": "emulator-writetext-key"}
REPO = Path(__file__).resolve().parents[2]

WEIRD_IDS = [
    "job:20241218021941022-user:1308-channel:1316232391072944131-bot:midjourney",
    "a/b",
    "a?b=c&d",
    "a#frag",
    "100%",
    "a%2Fb",
    "with space",
    "plus+sign",
    "ünïcødé-日本-🎨",
    "..",
    ".",
    "../../v2/account",
    "tab\there\nnewline\x01",
    "semi;colon,comma=eq",
]


def wait_for(predicate: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def raw_request(
    base: str,
    method: str,
    raw_path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw_path`` byte-exact (requests would turn ``%2E%2E`` into ``..`` and drop it)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        conn.request(method, raw_path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def segment(job_id: str) -> str:
    """Percent-encode an id as one path segment; ``quote`` leaves ``.``/``..`` as dot segments."""
    encoded = quote(job_id, safe="")
    return encoded.replace(".", "%2E") if set(encoded) == {"."} else encoded


def writetext_token(emu: Emulator, session: requests.Session) -> dict[str, str]:
    r = session.get(emu.url + "/web/apitoken/accesstoken", headers=WRITETEXT_KEY)
    assert r.status_code == 200
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


# ---------------------------------------------------------------------- useapi v2


def test_v2_submit_read_list_cancel(emulator: Emulator, session: requests.Session) -> None:
    url = emulator.url
    r = session.post(url + "/v2/jobs/imagine", json={"prompt": "a cat"}, headers=USEAPI_AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "created"
    assert body["verb"] == "imagine"
    assert body["code"] == 200
    jobid = body["jobid"]
    assert jobid.startswith("job:")
    assert ":" in jobid

    r = session.get(url + "/v2/jobs/", params={"jobid": jobid}, headers=USEAPI_AUTH)
    assert r.status_code == 200
    job = r.json()
    assert job["jobid"] == jobid
    assert job["prompt"] == "a cat"
    assert job["status"] == "created"
    assert {"created", "updated", "verb", "code"} <= set(job)
    # Without the trailing slash too.
    r = session.get(url + "/v2/jobs", params={"jobid": jobid}, headers=USEAPI_AUTH)
    assert r.json()["jobid"] == jobid

    assert session.get(url + "/v2/jobs", headers=USEAPI_AUTH).json() == [jobid]

    r = session.get(url + "/v2/jobs/cancel/", params={"jobid": jobid}, headers=USEAPI_AUTH)
    assert r.status_code == 200
    assert r.json() == {"jobid": jobid, "status": "cancelled", "code": 200}
    r = session.get(url + "/v2/jobs/", params={"jobid": jobid}, headers=USEAPI_AUTH)
    assert r.json()["status"] == "cancelled"
    assert session.get(url + "/v2/jobs", headers=USEAPI_AUTH).json() == []
    assert emulator.job(jobid)["normalized"] == "cancelled"
    assert emulator.job(jobid)["cancel_calls"] == 1


def test_v2_errors(emulator: Emulator, session: requests.Session) -> None:
    url = emulator.url
    r = session.get(url + "/v2/jobs/", params={"jobid": "x"})
    assert (r.status_code, r.json()) == (401, {"error": "Unauthorized", "code": 401})
    r = session.get(url + "/v2/jobs/", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    for path in ("/v2/jobs/", "/v2/jobs/?jobid=", "/v2/jobs/cancel/", "/v2/jobs/cancel/?jobid="):
        r = session.get(url + path, headers=USEAPI_AUTH)
        assert (r.status_code, r.json()) == (
            400,
            {"error": "Query param jobid not provided", "code": 400},
        ), path
    r = session.get(url + "/v2/jobs/cancel/", params={"jobid": "nope"}, headers=USEAPI_AUTH)
    assert (r.status_code, r.json()) == (404, {"error": "Unable to locate job nope", "code": 404})
    r = session.get(url + "/v2/jobs/", params={"jobid": "nope"}, headers=USEAPI_AUTH)
    assert r.status_code == 404
    r = session.get(url + "/v2/account", headers=USEAPI_AUTH)
    assert r.status_code == 200
    assert r.json()["email"] == "emulator@example.com"
    r = session.get(url + "/v2/nothing-here", headers=USEAPI_AUTH)
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    r = session.post(url + "/v2/jobs/imagine", json={}, headers=USEAPI_AUTH)
    assert r.status_code == 400


# ---------------------------------------------------------------------- useapi v3


def test_v3_submit_read_list_cancel(emulator: Emulator, session: requests.Session) -> None:
    base = emulator.url + "/v3/midjourney/jobs"
    r = session.post(base + "/imagine", json={"prompt": "a dog"}, headers=USEAPI_AUTH)
    assert r.status_code == 200
    assert r.json()["status"] == "created"
    jobid = r.json()["jobid"]
    assert jobid.startswith("j")
    assert "-bot:midjourney-" in jobid

    r = session.get(base + "/" + quote(jobid, safe=""), headers=USEAPI_AUTH)
    assert r.status_code == 200
    assert r.json()["jobid"] == jobid
    assert r.json()["status"] == "created"

    listing = session.get(base, headers=USEAPI_AUTH).json()
    assert listing["total"] == 1
    assert listing["videos"] == 0
    assert [j["jobId"] for j in listing["channels"]["1"]["jobs"]] == [jobid]

    r = session.delete(base + "/" + quote(jobid, safe=""), headers=USEAPI_AUTH)
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["Content-Length"] == "0"
    job = session.get(base + "/" + quote(jobid, safe=""), headers=USEAPI_AUTH).json()
    assert job["status"] == "failed"
    assert job["error"] == "Job cancelled by user"
    assert session.get(base, headers=USEAPI_AUTH).json()["total"] == 0
    assert emulator.job(jobid)["normalized"] == "cancelled"


def test_v3_errors(emulator: Emulator, session: requests.Session) -> None:
    base = emulator.url + "/v3/midjourney/jobs"
    r = session.get(base + "/x")
    assert (r.status_code, r.json()) == (401, {"error": "Unauthorized"})
    r = session.get(base + "/nope", headers=USEAPI_AUTH)
    assert (r.status_code, r.json()) == (404, {"error": "Job not found"})
    r = session.delete(base + "/nope", headers=USEAPI_AUTH)
    assert (r.status_code, r.json()) == (404, {"error": "Job not found"})
    # A v2 job is not visible through v3.
    v2 = emulator.submit_useapi(version="v2")
    assert session.get(base + "/" + quote(v2, safe=""), headers=USEAPI_AUTH).status_code == 404


# ---------------------------------------------------------------------- finished jobs


@pytest.mark.parametrize("answer", ["200", "400", "409", "404"])
def test_finished_cancel_answers(
    emulator: Emulator, session: requests.Session, answer: str
) -> None:
    emulator.configure(finished_cancel_answer=answer)
    url = emulator.url
    v2 = emulator.submit_useapi(version="v2")
    emulator.set_status(v2, "completed")
    r = session.get(url + "/v2/jobs/cancel/", params={"jobid": v2}, headers=USEAPI_AUTH)
    assert r.status_code == int(answer)
    if answer == "200":
        assert r.json() == {"jobid": v2, "status": "completed", "code": 200}
    elif answer == "404":
        assert r.json() == {"error": f"Unable to locate job {v2}", "code": 404}
    else:
        assert r.json() == {
            "error": f"Job {v2} is completed and can not be cancelled",
            "code": int(answer),
        }
    assert emulator.job(v2)["status"] == "completed"
    assert emulator.job(v2)["cancel_calls"] == 1

    v3 = emulator.submit_useapi(version="v3")
    emulator.set_status(v3, "moderated")
    r = session.delete(url + "/v3/midjourney/jobs/" + quote(v3, safe=""), headers=USEAPI_AUTH)
    assert r.status_code == int(answer)
    if answer == "200":
        assert r.json()["jobid"] == v3
        assert r.json()["status"] == "moderated"
    elif answer == "404":
        assert r.json() == {"error": "Job not found"}
    else:
        assert r.json() == {"error": f"Job {v3} can not be cancelled, status moderated"}
    assert emulator.job(v3)["normalized"] == "failed"


def test_cancelling_twice(emulator: Emulator, session: requests.Session) -> None:
    url = emulator.url
    v2 = emulator.submit_useapi()
    for _ in range(2):
        r = session.get(url + "/v2/jobs/cancel/", params={"jobid": v2}, headers=USEAPI_AUTH)
        assert r.status_code == 200
        assert r.json()["status"] == "cancelled"
    assert emulator.job(v2)["cancel_calls"] == 2
    v3 = emulator.submit_useapi(version="v3")
    codes = [
        session.delete(
            url + "/v3/midjourney/jobs/" + quote(v3, safe=""), headers=USEAPI_AUTH
        ).status_code
        for _ in range(2)
    ]
    assert codes == [204, 200]


def test_concurrent_cancels_cancel_once(emulator: Emulator) -> None:
    v3 = emulator.submit_useapi(version="v3")
    emulator.configure(finished_cancel_answer="409")
    codes: list[int] = []

    def cancel() -> None:
        r = requests.delete(
            emulator.url + "/v3/midjourney/jobs/" + quote(v3, safe=""), headers=USEAPI_AUTH
        )
        codes.append(r.status_code)

    threads = [threading.Thread(target=cancel) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [204] + [409] * 7
    assert emulator.job(v3)["cancel_calls"] == 8


# ---------------------------------------------------------------------- WriteText


def test_writetext_token_submit_read_cancel(emulator: Emulator, session: requests.Session) -> None:
    r = session.get(emulator.url + "/web/apitoken/accesstoken", headers=WRITETEXT_KEY)
    assert r.status_code == 200
    token = r.json()
    assert token["region"] == emulator.region
    assert token["platform"] == "api"
    assert token["expires_in"] == 86400
    assert token["access_token"]
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    region = "http://" + token["region"]

    r = session.post(
        region + "/text/Generate", json={"name": "Shoe", "type": "Product"}, headers=auth
    )
    assert r.status_code == 200
    request_id = r.json()["requestId"]
    r = session.get(region + "/text/Generate/Bulk/" + request_id, headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == request_id
    assert body["status"] == "Pending"
    assert body["name"] == "Shoe"
    for key in ("userName", "recordType", "startTime", "endTime", "queuedIds", "runningIds"):
        assert key in body
    for key in ("completedIds", "failedIds", "completed", "total"):
        assert key in body
    wait_for(lambda: emulator.job(request_id)["status"] == "Running")

    active = session.get(region + "/text/generate/bulk", headers=auth).json()
    assert [a["id"] for a in active] == [request_id]

    r = session.post(region + "/text/Generate/Bulk/" + request_id + "/cancel", headers=auth)
    assert r.status_code == 200
    assert r.content == b""
    assert (
        session.get(region + "/TEXT/generate/BULK/" + request_id, headers=auth).json()["status"]
        == "Cancelling"
    )
    # Cancelling again is accepted and does not restart the clock.
    r = session.post(region + "/text/generate/bulk/" + request_id + "/CANCEL", headers=auth)
    assert r.status_code == 200
    assert r.content == b""
    assert emulator.job(request_id)["normalized"] == "cancelling"
    wait_for(lambda: emulator.job(request_id)["status"] == "Cancelled", timeout=2)
    assert session.get(region + "/text/Generate/Bulk", headers=auth).json() == []

    r = session.post(region + "/text/Generate/Bulk/" + request_id + "/cancel", headers=auth)
    assert r.status_code == 400
    assert r.json() == {"error": f"Request {request_id} is Cancelled and can not be cancelled"}
    assert emulator.job(request_id)["cancel_calls"] == 3

    r = session.get(region + "/text/Generate/Bulk/nope", headers=auth)
    assert (r.status_code, r.json()) == (404, {"error": "Request nope not found"})
    r = session.post(region + "/text/Generate/Bulk/nope/cancel", headers=auth)
    assert r.status_code == 404
    credit = session.get(region + "/text/Credit", headers=auth).json()
    assert credit["availableCredits"] == 1000


def test_writetext_auth_and_region(emulator: Emulator, session: requests.Session) -> None:
    r = session.get(emulator.url + "/web/apitoken/accesstoken", headers={"WriteTextAI-Token": "x"})
    assert (r.status_code, r.json()) == (401, {"error": "Invalid API key"})
    r = session.get(emulator.url + "/web/apitoken/accesstoken")
    assert r.status_code == 401
    # Case-insensitive token route.
    r = session.get(emulator.url + "/Web/ApiToken/AccessToken", headers=WRITETEXT_KEY)
    assert r.status_code == 200
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    request_id = emulator.submit_writetext()
    # A client that ignores `region` and calls the main host fails.
    for path in ("/text/Generate/Bulk/" + request_id, "/text/Credit", "/text/Generate"):
        r = session.get(emulator.url + path, headers=auth)
        assert r.status_code == 404, path
    r = session.post(emulator.url + "/text/Generate/Bulk/" + request_id + "/cancel", headers=auth)
    assert r.status_code == 404
    # No / bad token on the region port.
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        r = session.get(emulator.region_url + "/text/Generate/Bulk/" + request_id, headers=headers)
        assert r.status_code == 401
        assert "invalid_token" in r.headers["WWW-Authenticate"]
        assert r.json() == {"error": "invalid_token"}


def test_expire_tokens(emulator: Emulator, session: requests.Session) -> None:
    auth = writetext_token(emulator, session)
    request_id = emulator.submit_writetext()
    url = emulator.region_url + "/text/Generate/Bulk/" + request_id
    assert session.get(url, headers=auth).status_code == 200
    emulator.expire_tokens()
    r = session.get(url, headers=auth)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    auth = writetext_token(emulator, session)
    assert session.get(url, headers=auth).status_code == 200


def test_token_ttl(session: requests.Session) -> None:
    with Emulator(token_ttl=0) as emu:
        auth = writetext_token(emu, session)
        r = session.get(emu.region_url + "/text/Credit", headers=auth)
        assert r.status_code == 401


@pytest.mark.parametrize(
    ("token_field", "expiry_field"),
    [
        ("access_token", "expires_in"),
        ("accessToken", "expiresIn"),
        ("token", "expires"),
        ("access_token", "expiresAt"),
        ("token", None),
    ],
)
def test_token_fields(
    emulator: Emulator, session: requests.Session, token_field: str, expiry_field: str | None
) -> None:
    emulator.configure(token_fields=(token_field, expiry_field))
    body = session.get(emulator.url + "/web/apitoken/accesstoken", headers=WRITETEXT_KEY).json()
    expected = {"region", "platform", token_field} | ({expiry_field} if expiry_field else set())
    assert set(body) == expected
    if expiry_field in ("expires", "expiresAt"):
        assert body[expiry_field].endswith("Z")
        assert "T" in body[expiry_field]
    elif expiry_field:
        assert body[expiry_field] == 86400
    auth = {"Authorization": f"Bearer {body[token_field]}"}
    assert session.get(emulator.region_url + "/text/Credit", headers=auth).status_code == 200


# ---------------------------------------------------------------------- ids


@pytest.mark.parametrize("job_id", WEIRD_IDS)
def test_weird_ids_round_trip(emulator: Emulator, job_id: str) -> None:
    """Ids reach the job store exactly when the client percent-encodes them properly."""
    emulator.configure(cancel_delay=30)
    for api in ("useapi_v2", "useapi_v3", "writetext"):
        emulator.reset()
        emulator.create_job(api, job_id)
        if api == "useapi_v2":
            status_path = "/v2/jobs/?" + urlencode({"jobid": job_id})
            cancel = ("GET", "/v2/jobs/cancel/?" + urlencode({"jobid": job_id}))
            base, headers = emulator.url, USEAPI_AUTH
        elif api == "useapi_v3":
            status_path = "/v3/midjourney/jobs/" + segment(job_id)
            cancel = ("DELETE", status_path)
            base, headers = emulator.url, USEAPI_AUTH
        else:
            with requests.Session() as s:
                headers = writetext_token(emulator, s)
            status_path = "/text/Generate/Bulk/" + segment(job_id)
            cancel = ("POST", status_path + "/cancel")
            base = emulator.region_url
        status, _, body = raw_request(base, "GET", status_path, headers)
        assert status == 200, (api, body)
        payload = json.loads(body)
        assert payload.get("jobid", payload.get("id")) == job_id
        status, _, _ = raw_request(base, cancel[0], cancel[1], headers)
        assert status in (200, 204), api
        job = emulator.job(job_id)
        assert job["cancel_calls"] == 1
        assert job["normalized"] in ("cancelled", "cancelling")
        logged = [e for e in emulator.requests_log if e["call"] in ("status", "cancel")]
        assert [e["path_job_id"] for e in logged] == [job_id, job_id]
        assert logged[0]["raw_path"] == status_path


def test_unencoded_dot_segments_do_not_reach_jobs(emulator: Emulator) -> None:
    emulator.create_job("useapi_v3", "..")
    emulator.create_job("useapi_v3", "target")
    status, _, _ = raw_request(emulator.url, "DELETE", "/v3/midjourney/jobs/..", USEAPI_AUTH)
    assert status == 404
    # Traversal is resolved like a real front end would: it lands on "target", not on "..".
    path = "/v3/midjourney/jobs/x/../target"
    status, _, _ = raw_request(emulator.url, "GET", path, USEAPI_AUTH)
    assert status == 200
    assert emulator.job("..")["cancel_calls"] == 0
    # An unencoded "/" splits the id: not found.
    emulator.create_job("useapi_v3", "a/b")
    status, _, _ = raw_request(emulator.url, "DELETE", "/v3/midjourney/jobs/a/b", USEAPI_AUTH)
    assert status == 404
    # (not its status: start_delay may have moved it on while a loaded machine got here)
    assert emulator.job("a/b")["cancel_calls"] == 0


def test_create_job_rules(emulator: Emulator) -> None:
    emulator.create_job("writetext", "x", status="Completed")
    assert emulator.job("x")["normalized"] == "completed"
    with pytest.raises(ValueError, match="already exists"):
        emulator.create_job("writetext", "x")
    with pytest.raises(ValueError, match="api must be"):
        emulator.create_job("nope", "y")
    with pytest.raises(KeyError):
        emulator.job("missing")
    emulator.create_job("useapi_v3", "v3", status="cancelled")
    assert emulator.job("v3")["status"] == "failed"
    assert emulator.job("v3")["normalized"] == "cancelled"
    emulator.set_status("v3", "failed", error="boom")
    assert emulator.job("v3")["normalized"] == "failed"
    assert normalize("useapi_v2", "weird") == "unknown"
    assert normalize("writetext", "TimedOut") == "failed"


# ---------------------------------------------------------------------- clock


def test_clock_transitions() -> None:
    with Emulator(start_delay=0.1, job_duration=0.5) as emu:
        v2 = emu.submit_useapi()
        v3 = emu.submit_useapi(version="v3")
        wt = emu.submit_writetext()
        assert [emu.job(j)["status"] for j in (v2, v3, wt)] == ["created", "created", "Pending"]
        assert emu.job(v2)["normalized"] == "queued"
        wait_for(lambda: emu.job(v2)["status"] == "started")
        wait_for(lambda: emu.job(v2)["status"] == "progress")
        assert emu.job(wt)["status"] == "Running"
        assert emu.job(v3)["normalized"] == "running"
        wait_for(lambda: emu.job(v2)["status"] == "completed")
        assert emu.job(v3)["status"] == "completed"
        assert emu.job(wt)["status"] == "Completed"
        assert emu.job(wt)["normalized"] == "completed"


def test_forced_status_can_be_cancelled(emulator: Emulator, session: requests.Session) -> None:
    v2 = emulator.submit_useapi()
    emulator.set_status(v2, "progress")
    r = session.get(
        emulator.url + "/v2/jobs/cancel/?" + urlencode({"jobid": v2}), headers=USEAPI_AUTH
    )
    assert r.json()["status"] == "cancelled"
    assert emulator.job(v2)["status"] == "cancelled"


# ---------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("kind", "status", "content_type", "body"),
    [
        ("429", 429, "application/json", {"error": "Too many requests", "code": 429}),
        ("500", 500, "application/json", None),
        ("502", 502, "application/json", None),
        ("503", 503, "application/json", None),
        ("504", 504, "application/json", None),
        ("596", 596, "application/json", {"error": "Pending moderation", "code": 596}),
        ("html", 502, "text/html", None),
        ("html200", 200, "text/html", None),
        ("malformed", 200, "application/json", None),
        ("empty", 200, "application/json", None),
    ],
)
def test_fault_kinds(
    emulator: Emulator,
    session: requests.Session,
    kind: str,
    status: int,
    content_type: str,
    body: dict[str, Any] | None,
) -> None:
    v2 = emulator.submit_useapi()
    url = emulator.url + "/v2/jobs/?" + urlencode({"jobid": v2})
    emulator.inject(kind, count=1)
    r = session.get(url, headers=USEAPI_AUTH)
    assert r.status_code == status
    assert r.headers["Content-Type"].startswith(content_type)
    if body is not None:
        assert r.json() == body
    elif kind in ("html", "html200"):
        assert r.text.lstrip().startswith("<html>")
    elif kind == "malformed":
        with pytest.raises(requests.JSONDecodeError):
            r.json()
    elif kind == "empty":
        assert r.content == b""
    else:
        assert r.json()["code"] == status
        assert r.json()["error"]
    assert "Retry-After" not in r.headers
    # Only the next request was faulted; the connection is still usable.
    r = session.get(url, headers=USEAPI_AUTH)
    assert r.status_code == 200
    counters = emulator.counters
    assert counters["faults_served"] == 1
    assert counters["connections"] == 1
    assert [e["fault"] for e in emulator.requests_log] == [kind, None]


def test_fault_429_retry_after(emulator: Emulator, session: requests.Session) -> None:
    emulator.inject("429", count=2, retry_after=7)
    for _ in range(2):
        r = session.get(emulator.url + "/v2/account", headers=USEAPI_AUTH)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "7"
    assert session.get(emulator.url + "/v2/account", headers=USEAPI_AUTH).status_code == 200


def test_fault_drop(emulator: Emulator, session: requests.Session) -> None:
    emulator.inject("drop")
    with pytest.raises(requests.ConnectionError):
        session.get(emulator.url + "/v2/account", headers=USEAPI_AUTH)
    assert session.get(emulator.url + "/v2/account", headers=USEAPI_AUTH).status_code == 200
    assert emulator.counters["faults_served"] == 1


def test_fault_hang(emulator: Emulator, session: requests.Session) -> None:
    emulator.inject("hang", hang_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        session.get(emulator.url + "/v2/account", headers=USEAPI_AUTH, timeout=0.2)
    assert time.monotonic() - started < 1.0
    assert session.get(emulator.url + "/v2/account", headers=USEAPI_AUTH).status_code == 200


def test_fault_expired_token(emulator: Emulator, session: requests.Session) -> None:
    emulator.inject("expired_token", count=1)
    auth = writetext_token(emulator, session)  # the token call itself is never hit
    r = session.get(emulator.region_url + "/text/Credit", headers=auth)
    assert r.status_code == 401
    assert "invalid_token" in r.headers["WWW-Authenticate"]
    assert session.get(emulator.region_url + "/text/Credit", headers=auth).status_code == 200


def test_fault_filters(emulator: Emulator, session: requests.Session) -> None:
    v2 = emulator.submit_useapi()
    status_url = emulator.url + "/v2/jobs/?" + urlencode({"jobid": v2})
    cancel_url = emulator.url + "/v2/jobs/cancel/?" + urlencode({"jobid": v2})
    emulator.inject("503", count=1, call="cancel")
    emulator.inject("500", count=1, api="writetext")
    assert session.get(status_url, headers=USEAPI_AUTH).status_code == 200
    assert session.get(emulator.url + "/_emulator/counters").status_code == 200  # control: never
    assert session.get(cancel_url, headers=USEAPI_AUTH).status_code == 503
    assert emulator.job(v2)["normalized"] != "cancelled"  # a faulted cancel never reaches the job
    assert emulator.job(v2)["cancel_calls"] == 0
    assert session.get(cancel_url, headers=USEAPI_AUTH).status_code == 200
    r = session.get(emulator.url + "/web/apitoken/accesstoken", headers=WRITETEXT_KEY)
    assert r.status_code == 500
    emulator.inject("502", count=1, call="token")
    assert session.get(emulator.url + "/v2/account", headers=USEAPI_AUTH).status_code == 200
    emulator.clear_faults()
    r = session.get(emulator.url + "/web/apitoken/accesstoken", headers=WRITETEXT_KEY)
    assert r.status_code == 200


def test_fault_rate_is_seeded(session: requests.Session) -> None:
    def run() -> list[int]:
        with Emulator(seed=42) as emu:
            emu.inject("500", rate=0.3)
            return [
                session.get(emu.url + "/v2/account", headers=USEAPI_AUTH).status_code
                for _ in range(40)
            ]

    first, second = run(), run()
    assert first == second
    assert 3 <= first.count(500) <= 25
    assert set(first) == {200, 500}


def test_fault_validation(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="fault kind"):
        emulator.inject("418")
    with pytest.raises(ValueError, match="call must be"):
        emulator.inject("500", call="nope")
    with pytest.raises(ValueError, match="api must be"):
        emulator.inject("500", api="nope")
    with pytest.raises(ValueError, match="not both"):
        emulator.inject("500", count=1, rate=0.5)


# ---------------------------------------------------------------------- counters, latency


def test_counters_and_connection_pooling(emulator: Emulator, session: requests.Session) -> None:
    v2 = emulator.submit_useapi()
    for _ in range(10):
        session.get(emulator.url + "/v2/jobs/?" + urlencode({"jobid": v2}), headers=USEAPI_AUTH)
    session.get(emulator.url + "/v2/jobs/cancel/?" + urlencode({"jobid": v2}), headers=USEAPI_AUTH)
    session.post(emulator.url + "/v2/jobs/imagine", json={"prompt": "p"}, headers=USEAPI_AUTH)
    auth = writetext_token(emulator, session)
    session.get(emulator.region_url + "/text/Credit", headers=auth)
    c = emulator.counters
    assert c["connections"] == 2  # one per port
    assert c["requests"] == 14
    assert c["status_requests"] == 10
    assert (c["cancel_requests"], c["submit_requests"], c["token_requests"]) == (1, 1, 1)
    assert c["by_route"]["v2.job"] == 10
    assert c["by_route"]["writetext.credit"] == 1
    requests.get(emulator.url + "/v2/account", headers=USEAPI_AUTH)
    assert emulator.counters["connections"] == 3
    emulator.reset()
    assert emulator.counters["requests"] == 0
    assert emulator.jobs() == []
    assert emulator.requests_log == []


def test_latency_overlaps_between_connections(emulator: Emulator) -> None:
    emulator.configure(latency=0.3)
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=requests.get, args=(emulator.url + "/v2/account",), kwargs={"timeout": 5}
        )
        for _ in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 1.2
    # Control endpoints are not slowed down.
    started = time.monotonic()
    requests.get(emulator.url + "/_emulator/health")
    assert time.monotonic() - started < 0.25


def test_configure_rejects_nonsense(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="finished_cancel_answer"):
        emulator.configure(finished_cancel_answer="418")
    with pytest.raises(ValueError, match="token field"):
        emulator.configure(token_fields=("tok", "expires_in"))
    with pytest.raises(ValueError, match="bogus"):
        emulator.configure(bogus=1)
    with pytest.raises(ValueError, match="latency"):
        emulator.configure(latency=-1)


# ---------------------------------------------------------------------- control endpoints


def test_control_endpoints(emulator: Emulator, session: requests.Session) -> None:
    ctl = emulator.url + "/_emulator"
    health = session.get(ctl + "/health").json()
    assert health == {"ok": True, "url": emulator.url, "region": emulator.region}

    job = session.post(ctl + "/jobs", json={"api": "useapi_v2", "job_id": "a/b c"}).json()
    assert job["id"] == "a/b c"
    assert job["status"] == "created"
    assert job["normalized"] == "queued"
    r = session.post(ctl + "/jobs", json={"api": "useapi_v2", "job_id": "a/b c"})
    assert r.status_code == 400
    generated = session.post(ctl + "/jobs", json={"api": "writetext", "status": "Running"}).json()
    assert generated["status"] == "Running"
    assert session.get(ctl + "/jobs/" + quote("a/b c", safe="")).json()["id"] == "a/b c"
    assert session.get(ctl + "/jobs/nope").status_code == 404
    r = session.post(
        ctl + "/jobs/" + quote("a/b c", safe="") + "/status", json={"status": "failed"}
    )
    assert r.json()["normalized"] == "failed"
    assert {j["id"] for j in session.get(ctl + "/jobs").json()} == {"a/b c", generated["id"]}

    assert session.post(ctl + "/faults", json={"kind": "503", "count": 1}).json() == {"ok": True}
    assert session.get(emulator.url + "/v2/account", headers=USEAPI_AUTH).status_code == 503
    session.post(ctl + "/faults", json={"kind": "503", "rate": 1.0})
    assert session.delete(ctl + "/faults").status_code == 200
    assert session.get(emulator.url + "/v2/account", headers=USEAPI_AUTH).status_code == 200
    assert session.post(ctl + "/faults", json={"kind": "nope"}).status_code == 400

    session.post(ctl + "/config", json={"latency": 0.01, "finished_cancel_answer": "409"})
    assert emulator.config["finished_cancel_answer"] == "409"
    assert session.post(ctl + "/config", json={"bogus": 1}).status_code == 400

    counters = session.get(ctl + "/counters").json()
    assert counters["requests"] == 2
    assert counters["faults_served"] == 1
    log = session.get(ctl + "/requests").json()
    assert [e["route"] for e in log] == ["v2.account", "v2.account"]
    assert session.post(ctl + "/reset").json() == {"ok": True}
    assert session.get(ctl + "/jobs").json() == []
    assert session.get(ctl + "/nope").status_code == 404


# ---------------------------------------------------------------------- CLI


def test_cli_runs_and_stops_on_sigterm() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_cancel.emulator",
            "--port",
            "0",
            "--latency",
            "0.01",
            "--fault",
            "429:2",
            "--retry-after",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("emulator listening on http://127.0.0.1:"), line
        url = line.split()[3]
        region = line.split("(region ")[1].rstrip(")")
        assert region.startswith("127.0.0.1:")
        for _ in range(2):
            r = requests.get(url + "/v2/account", headers=USEAPI_AUTH, timeout=5)
            assert r.status_code == 429
            assert r.headers["Retry-After"] == "1"
        assert requests.get(url + "/v2/account", headers=USEAPI_AUTH, timeout=5).ok
        assert requests.get(url + "/_emulator/health", timeout=5).json()["region"] == region
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == ""  # quiet by default
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
