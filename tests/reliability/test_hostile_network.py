"""What a hostile network or careless input does to the hooks, beyond the fault matrix: secrets
pasted with whitespace or with a line break inside, WriteText regions that are not hosts, a
body without end (memory), a bulk whose jobs fail in unexpected ways, token exchanges that fail
for everyone at once, waiting for a pooled connection, and unusable ``Retry-After`` values.

Servers are :mod:`tests.hostile_server` (bytes on plain sockets) or the emulator; every case
runs on the sync and the async path (``run_hook``)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from airflow.models.connection import Connection
from airflow.providers.common.compat.sdk import AirflowException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.conftest
from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    ConnectionConfigError,
    InvalidResponseError,
    JobNotFoundError,
    ModerationPendingError,
)
from airflow_provider_cancel.hooks.retry_after import retry_after_seconds
from airflow_provider_cancel.hooks.transport import ApiResponse
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.writetext import WriteTextHook, region_url
from airflow_provider_cancel.operators.cancel import CancelJobOperator
from airflow_provider_cancel.status import CancelOutcome
from tests.hostile_server import (
    ECHO_FORMS,
    Request,
    echo_secret,
    hostile,
    reply,
    reply_json,
    secret_forms,
)

from .fault_matrix import USEAPI_TOKEN, WRITETEXT_KEY

FAST: dict[str, Any] = {**tests.conftest.FAST, "retry_limit": 1, "timeout": 0.5}
HOOKS = {"useapi_v2": UseApiHook, "useapi_v3": UseApiHook, "writetext": WriteTextHook}


def hook_for(api: str, conn_id: str, **kwargs: Any) -> Any:
    return HOOKS[api](conn_id, **{**FAST, **kwargs})


def connect(set_connection: Callable[..., str], api: str, host: str, password: str) -> str:
    extra = {"api_version": "v3"} if api == "useapi_v3" else None
    conn_type = "writetext" if api == "writetext" else "useapi"
    return set_connection(f"hostile_{api}", conn_type, host=host, password=password, extra=extra)


# ---------------------------------------------------------------------- 1. secrets with whitespace


@pytest.mark.parametrize("api", list(HOOKS))
@pytest.mark.parametrize("padding", ["\n", "\r\n", "  ", " \t\n"])
def test_a_secret_pasted_with_surrounding_whitespace_works(
    fresh_emu: Any, set_connection: Any, run_hook: Any, api: str, padding: str
) -> None:
    secret = WRITETEXT_KEY if api == "writetext" else USEAPI_TOKEN
    conn_id = connect(set_connection, api, fresh_emu.url, f"{padding}{secret}{padding}")
    job_id = f"rel:ws:{api}"
    fresh_emu.create_job(api, job_id, "Running" if api == "writetext" else "started")
    state = run_hook(hook_for(api, conn_id), "get_job", job_id)
    assert state.status.value == "running"


@pytest.mark.parametrize("api", list(HOOKS))
@pytest.mark.parametrize("inside", ["\r\n", "\n", "\r", "\t", "\x00", "\x7f", "é"])
def test_a_secret_with_a_control_character_inside_is_refused_before_any_request(
    fresh_emu: Any, set_connection: Any, run_hook: Any, api: str, inside: str
) -> None:
    secret = f"tok-first-half{inside}second-half-9f3a"
    conn_id = connect(set_connection, api, fresh_emu.url, secret)
    for call in ("cancel_job", "get_job"):
        with pytest.raises(ConnectionConfigError) as caught:
            run_hook(hook_for(api, conn_id), call, "job-1")
        text = str(caught.value)
        assert conn_id in text
        assert "password" in text
        assert not any(form in text for form in ("tok-first-half", "second-half-9f3a"))
    ok, message = hook_for(api, conn_id).test_connection()
    assert not ok
    assert "second-half-9f3a" not in message
    assert fresh_emu.counters["requests"] == 0


def test_operator_and_callback_never_show_a_secret_with_a_line_break(
    fresh_emu: Any, set_connection: Any, all_logs: Callable[[], str]
) -> None:
    from airflow_provider_cancel.callbacks import cancel_on_failure
    from tests.fakes import FakeTI

    conn_id = connect(set_connection, "useapi_v2", fresh_emu.url, "tok-first\r\nsecond-9f3a")
    operator = CancelJobOperator(task_id="cancel", conn_id=conn_id, job_id=["a", "b"])
    with pytest.raises(AirflowException) as caught:
        operator.execute({"ti": FakeTI(), "task_instance": FakeTI()})
    cancel_on_failure(conn_id, job_ids=["a"])({"ti": FakeTI(), "task_instance": FakeTI()})
    seen = str(caught.value) + all_logs()
    assert "second-9f3a" not in seen
    assert "tok-first" not in seen
    assert fresh_emu.counters["requests"] == 0


# ---------------------------------------------------------------------- 1 and 3: the token answer


def token_server(answer: dict[str, Any]) -> Any:
    """A WriteText token endpoint that hands out ``answer``; every other call is recorded and
    answered 200 (a client that sends anything there gets a false "accepted")."""

    def route(request: Request) -> Any:
        if request.call == "token":
            return reply_json(200, answer)
        return reply(200, "")

    return hostile(route)


@pytest.mark.parametrize(
    "token", ["acc\r\nX-Injected: 1", "acc\nsecret-part", "acc secret-part", "acc\x00part"]
)
def test_an_access_token_with_a_line_break_is_refused_unshown(
    set_connection: Any, run_hook: Any, token: str
) -> None:
    with token_server({"access_token": token, "region": "127.0.0.1:9"}) as server:
        conn_id = connect(set_connection, "writetext", server.url, WRITETEXT_KEY)
        with pytest.raises(InvalidResponseError) as caught:
            run_hook(hook_for("writetext", conn_id), "cancel_job", "req-1")
        assert "part" not in str(caught.value)
        assert "Injected" not in str(caught.value)
        assert server.seen(call="cancel") == 0


@pytest.mark.parametrize(
    "suffix",
    ["#", "//", "/text", "/x?y=1", "?q", "#frag", ":99999", ":port", " evil"],
)
def test_a_region_that_is_not_a_host_is_refused_and_nothing_is_sent_there(
    set_connection: Any, run_hook: Any, suffix: str
) -> None:
    with token_server({}) as server:
        # the region names this very server: a client that used it would be seen here
        server_answer = {"access_token": "acc-123456", "region": f"{server.host}{suffix}"}
        server.route = lambda request: (
            reply_json(200, server_answer) if request.call == "token" else reply(200, "")
        )
        conn_id = connect(set_connection, "writetext", server.url, WRITETEXT_KEY)
        with pytest.raises(InvalidResponseError, match=r"region .* refused"):
            run_hook(hook_for("writetext", conn_id), "cancel_job", "req-1")
        assert server.seen(call="cancel") == 0


def test_a_region_with_user_info_is_refused(set_connection: Any, run_hook: Any) -> None:
    with token_server({}) as server:
        answer = {"access_token": "acc-123456", "region": f"user:pw@{server.host}"}
        server.route = lambda request: (
            reply_json(200, answer) if request.call == "token" else reply(200, "")
        )
        conn_id = connect(set_connection, "writetext", server.url, WRITETEXT_KEY)
        with pytest.raises(InvalidResponseError, match="region"):
            run_hook(hook_for("writetext", conn_id), "cancel_job", "req-1")
        assert server.seen(call="cancel") == 0


@pytest.mark.parametrize(
    ("region", "token_url", "expected"),
    [
        ("api-eu.writetext.ai", "https://api.writetext.ai", "https://api-eu.writetext.ai"),
        ("api-eu.writetext.ai:8443/", "https://a.b", "https://api-eu.writetext.ai:8443"),
        ("https://api-eu.writetext.ai", "https://api.writetext.ai", "https://api-eu.writetext.ai"),
        ("https://127.0.0.1:81", "http://127.0.0.1:80", "https://127.0.0.1:81"),
        ("127.0.0.1:81", "http://127.0.0.1:80", "http://127.0.0.1:81"),
        ("[::1]:81", "http://[::1]:80", "http://[::1]:81"),
    ],
)
def test_region_hosts_that_are_accepted(region: str, token_url: str, expected: str) -> None:
    assert region_url(region, token_url) == expected


@pytest.mark.parametrize(
    "region",
    ["http://api-eu.writetext.ai", "HTTP://x.y", "ftp://x.y", "x.y/path", "u@x.y", "x.y#", ""],
)
def test_region_hosts_that_are_refused(region: str) -> None:
    with pytest.raises(ValueError, match=r"http|scheme|not a host"):
        region_url(region, "https://api.writetext.ai")


def test_a_bad_region_extra_is_a_connection_error(set_connection: Any, run_hook: Any) -> None:
    set_connection("wt_bad_region", "writetext", password="k-123456", extra={"region": "x.y/z"})
    with pytest.raises(ConnectionConfigError, match=r"region 'x\.y/z' is not usable"):
        run_hook(WriteTextHook("wt_bad_region", **FAST), "cancel_job", "req-1")


# ---------------------------------------------------------------------- 6. memory


@pytest.mark.parametrize("api", ["useapi_v2", "writetext"])
def test_an_endless_body_costs_at_most_the_cap_in_memory(
    fresh_emu: Any, set_connection: Any, run_hook: Any, api: str
) -> None:
    from tests.hostile_server import endless_body

    with hostile(
        lambda request: endless_body() if request.call == "status" else None,
        forward_to=("127.0.0.1", fresh_emu.region_port if api == "writetext" else fresh_emu.port),
    ) as server:
        if api == "writetext":
            conn_id = set_connection(
                "wt_endless",
                "writetext",
                host=fresh_emu.url,
                password=WRITETEXT_KEY,
                extra={"region": server.host},
            )
        else:
            conn_id = connect(set_connection, api, server.url, USEAPI_TOKEN)
        tracemalloc.start()
        try:
            started = time.monotonic()
            with pytest.raises(InvalidResponseError, match="larger than 262144 bytes"):
                run_hook(hook_for(api, conn_id, max_response_size=256 * 1024), "get_job", "j")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert time.monotonic() - started < 10
        assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while reading"


# ---------------------------------------------------------------------- 7. the bulk report


def test_a_bulk_keeps_its_report_whatever_one_job_raises(
    fresh_emu: Any, set_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes import FakeTI

    conn_id = connect(set_connection, "useapi_v2", fresh_emu.url, USEAPI_TOKEN)
    ids = [fresh_emu.submit_useapi() for _ in range(4)]
    original = UseApiHook.cancel_flow

    def cancel_flow(self: UseApiHook, job_id: str) -> Any:
        if job_id == ids[1]:
            raise RuntimeError(f"something odd happened to {job_id}")
        return original(self, job_id)

    monkeypatch.setattr(UseApiHook, "cancel_flow", cancel_flow)
    ti = FakeTI()
    operator = CancelJobOperator(task_id="cancel", conn_id=conn_id, job_id=ids)
    with pytest.raises(AirflowException) as caught:
        operator.execute({"ti": ti, "task_instance": ti})
    report = ti.pushed["return_value"]
    assert list(report) == ids
    assert report[ids[1]]["outcome"] == "error"
    assert "RuntimeError: something odd happened" in report[ids[1]]["message"]
    assert {report[i]["outcome"] for i in (ids[0], ids[2], ids[3])} == {"cancelled"}
    assert ids[1] in str(caught.value)
    assert "1 of 4" in str(caught.value)


def test_a_bulk_with_a_redirect_for_one_job_keeps_its_report(
    fresh_emu: Any, set_connection: Any
) -> None:
    from tests.hostile_server import redirect

    ids = [fresh_emu.submit_useapi() for _ in range(3)]
    with hostile(
        lambda r: redirect(302, "/stolen") if quote(ids[0], safe="") in r.path else None,
        forward_to=("127.0.0.1", fresh_emu.port),
    ) as server:
        conn_id = connect(set_connection, "useapi_v2", server.url, USEAPI_TOKEN)
        results = hook_for("useapi_v2", conn_id).cancel_jobs(ids)
    assert [r.outcome for r in results] == [
        CancelOutcome.ERROR,
        CancelOutcome.CANCELLED,
        CancelOutcome.CANCELLED,
    ]
    assert "HTTP 302" in results[0].message
    assert server.seen(path="/stolen") == 0


# ---------------------------------------------------------------------- 8. shared token failures


def test_a_wrong_key_makes_one_token_request_for_a_whole_bulk(
    fresh_emu: Any, set_connection: Any
) -> None:
    conn_id = connect(set_connection, "writetext", fresh_emu.url, "not-the-right-key-1234")
    ids = [f"req-{n}" for n in range(500)]
    results = hook_for("writetext", conn_id).cancel_jobs(ids, max_concurrency=16)
    assert {r.outcome for r in results} == {CancelOutcome.ERROR}
    assert all("refused the API key" in r.message for r in results)
    assert fresh_emu.counters["token_requests"] == 1
    assert fresh_emu.counters["cancel_requests"] == 0


def test_a_wrong_key_makes_one_token_request_for_concurrent_async_reads(
    fresh_emu: Any, set_connection: Any
) -> None:
    conn_id = connect(set_connection, "writetext", fresh_emu.url, "not-the-right-key-1234")
    hook = hook_for("writetext", conn_id)

    async def read_all() -> list[BaseException | Any]:
        try:
            calls = [hook.aget_job(f"req-{n}") for n in range(100)]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await hook.aclose()

    answers = asyncio.run(read_all())
    assert all(isinstance(a, AuthenticationError) for a in answers)
    assert fresh_emu.counters["token_requests"] == 1


def test_a_hanging_token_endpoint_costs_one_retry_cycle_for_the_whole_bulk(
    set_connection: Any,
) -> None:
    def hang(request: Request, sock: Any) -> None:
        time.sleep(5)

    with hostile(lambda request: hang) as server:
        conn_id = connect(set_connection, "writetext", server.url, WRITETEXT_KEY)
        hook = hook_for("writetext", conn_id, timeout=0.3, retry_limit=1)
        started = time.monotonic()
        results = hook.cancel_jobs([f"req-{n}" for n in range(12)], max_concurrency=4)
        seconds = time.monotonic() - started
        token_requests = server.seen(call="token")
    assert {r.outcome for r in results} == {CancelOutcome.ERROR}
    assert all("no answer" in r.message for r in results)
    assert token_requests == 2  # one cycle: the first attempt and its one retry
    # one cycle is 2 x (connect 0.3 + answer 0.3) s; twelve cycles would be over 7 s
    assert seconds < 4, f"{seconds:.1f}s"


def test_job_calls_refused_after_a_refresh_do_not_refresh_per_job(
    fresh_emu: Any, set_connection: Any
) -> None:
    conn_id = connect(set_connection, "writetext", fresh_emu.url, WRITETEXT_KEY)
    ids = [fresh_emu.submit_writetext() for _ in range(50)]
    fresh_emu.inject("expired_token", count=10_000, call="cancel", api="writetext")
    results = hook_for("writetext", conn_id).cancel_jobs(ids, max_concurrency=8)
    assert {r.outcome for r in results} == {CancelOutcome.ERROR}
    assert fresh_emu.counters["token_requests"] == 2  # the first token and one refresh


def test_async_reads_refused_after_a_refresh_do_not_refresh_per_job(
    fresh_emu: Any, set_connection: Any
) -> None:
    conn_id = connect(set_connection, "writetext", fresh_emu.url, WRITETEXT_KEY)
    ids = [fresh_emu.submit_writetext() for _ in range(50)]
    fresh_emu.inject("expired_token", count=10_000, call="status", api="writetext")
    hook = hook_for("writetext", conn_id)

    async def read_one_by_one() -> list[BaseException]:
        refused: list[BaseException] = []
        try:
            for job_id in ids:  # one after another: each job meets the refused token anew
                try:
                    await hook.aget_job(job_id)
                except AuthenticationError as error:
                    refused.append(error)
        finally:
            await hook.aclose()
        return refused

    assert len(asyncio.run(read_one_by_one())) == len(ids)
    assert fresh_emu.counters["token_requests"] == 2  # the first token and one refresh


# ---------------------------------------------------------------------- 10. pool wait


def test_waiting_for_a_pooled_connection_is_not_read_time(
    fresh_emu: Any, set_connection: Any, run_hook: Any
) -> None:
    conn_id = connect(set_connection, "useapi_v2", fresh_emu.url, USEAPI_TOKEN)
    ids = [fresh_emu.submit_useapi() for _ in range(160)]
    fresh_emu.configure(latency=0.3)
    hook = hook_for("useapi_v2", conn_id, timeout=1.0, retry_limit=0, pool_size=16)
    # 160 reads, 16 at a time, 0.3 s each: about 3 s in all, each read within its 1 s
    try:
        states = run_hook(hook, "get_jobs", ids)
    finally:
        fresh_emu.configure(latency=0)
    assert len(states) == 160
    assert fresh_emu.counters["status_requests"] == 160


# ---------------------------------------------------------------------- 11. Retry-After


@pytest.mark.parametrize("value", ["-5", "nan", "NaN", "soon", "-inf", ""])
def test_an_unusable_retry_after_is_ignored(value: str) -> None:
    assert retry_after_seconds(ApiResponse(429, {"retry-after": value}, "")) is None


@pytest.mark.parametrize("value", ["-5", "nan", "soon"])
def test_an_unusable_retry_after_falls_back_to_the_backoff(
    set_connection: Any, run_hook: Any, value: str
) -> None:
    answers = iter([reply(429, "", {"Retry-After": value}), reply_json(200, {"status": "started"})])
    lock = threading.Lock()

    def route(request: Request) -> Any:
        with lock:
            return next(answers)

    with hostile(route) as server:
        conn_id = connect(set_connection, "useapi_v2", server.url, USEAPI_TOKEN)
        started = time.monotonic()
        hook = hook_for("useapi_v2", conn_id, retry_delay=0.4)
        state = run_hook(hook, "get_job", "job-1")
        assert time.monotonic() - started >= 0.4  # exponential backoff, not "retry now"
    assert state.raw_status == "started"


# ---------------------------------------------------------------------- 2. secrets, property

PRINTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=8, max_size=40)
SECRETS = PRINTABLE.filter(lambda s: s.strip() == s and len(s) >= 8)
PADDING = st.sampled_from(["", " ", "\n", "\r\n", " \t "])


def test_the_secret_forms_are_what_a_server_would_send() -> None:
    forms = secret_forms("a/b+c=d:e")
    assert "a\\/b+c=d:e" in forms
    assert "a\\u002Fb\\u002Bc\\u003Dd\\u003Ae" in forms
    assert "a%2Fb%2Bc%3Dd%3Ae" in forms


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    # a fixed head keeps shrunk examples ("00000000") from matching unrelated log text
    secret=SECRETS.map(lambda s: "Sk" + s[:4] + "/+=:" + s[4:]),
    access=SECRETS.filter(lambda s: " " not in s).map(lambda s: "Ac" + s),
    padding=PADDING,
    form=st.sampled_from(ECHO_FORMS),
    api=st.sampled_from(["useapi_v2", "writetext"]),
    mode=st.sampled_from(["sync", "async"]),
)
def test_echoed_secrets_never_reach_a_message_a_log_or_the_report(
    secret: str, access: str, padding: str, form: str, api: str, mode: str
) -> None:
    from airflow_provider_cancel.hooks import writetext
    from tests.conftest import HookRunner

    writetext.TOKEN_CACHE.clear()

    def route(request: Request) -> Any:
        if request.call == "token" and form != "raw":  # a token, then job calls that echo it
            return reply_json(200, {"access_token": access, "region": server.host})
        return echo_secret(form)

    with hostile(route) as server, _log_capture() as logs:
        conn = Connection(
            conn_id="prop",
            conn_type="writetext" if api == "writetext" else "useapi",
            host=server.url,
            password=f"{padding}{secret}{padding}",
        )
        hook = hook_for(api, "prop")
        hook.use_connection(conn)
        told: list[str] = []
        run = HookRunner(mode)
        for call in ("get_job", "cancel_job"):
            try:
                told.append(str(getattr(run(hook, call, "job-1"), "message", "")))
            except Exception as error:  # what the task log and the UI would show
                told.append(str(error))
        if mode == "sync":
            told += [r.message for r in hook.cancel_jobs(["job-1", "job-2"])]
            told.append(hook.test_connection()[1])
        told.append(logs.getvalue())
    text = "\n".join(told)
    for known in (secret, access):
        leaked = [f for f in secret_forms(known) if f in text]
        assert not leaked, f"{leaked} in {text[:500]}"


@contextlib.contextmanager
def _log_capture() -> Iterator[io.StringIO]:
    """Every record of the provider's and Airflow's loggers at DEBUG, as text."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


# ---------------------------------------------------------------------- codes from the catalog


@pytest.mark.parametrize(
    ("body", "low", "high"),
    [
        ({"retryAfter": 7}, 7, 7),
        ({"retryAfter": "2.5"}, 2.5, 2.5),
        ({"retryAt": "NOW+30"}, 28, 30),
        ({"retryAt": "NOW_MS+30"}, 28, 30),
        ({"retryAt": "2000-01-01T00:00:00Z"}, 0, 0),
        ({"retryAfter": -1}, None, None),
        ({"retryAt": "tomorrow-ish"}, None, None),
        ({"error": "busy"}, None, None),
    ],
)
def test_a_429_body_may_say_when_to_retry(body: dict[str, Any], low: Any, high: Any) -> None:
    # epoch seconds and milliseconds 30 s from now, made when the test runs
    relative = {"NOW+30": time.time() + 30, "NOW_MS+30": (time.time() + 30) * 1000}
    body = {key: relative.get(value, value) for key, value in body.items()}
    seconds = retry_after_seconds(ApiResponse(429, {}, json.dumps(body)))
    if low is None:
        assert seconds is None
    else:
        assert seconds is not None
        assert low <= seconds <= high


@pytest.mark.parametrize("field", ["retryAfter", "retryAt"])
def test_a_429_body_with_retry_after_is_honoured(
    set_connection: Any, run_hook: Any, field: str
) -> None:
    wait = 0.6
    lock = threading.Lock()
    served: list[str] = []

    def route(request: Request) -> Any:
        with lock:
            served.append(request.path)
            if len(served) == 1:
                when = wait if field == "retryAfter" else time.time() + wait
                return reply_json(429, {"error": "account busy", field: when})
            return reply_json(200, {"status": "started"})

    with hostile(route) as server:
        conn_id = connect(set_connection, "useapi_v2", server.url, USEAPI_TOKEN)
        started = time.monotonic()
        state = run_hook(hook_for("useapi_v2", conn_id, retry_delay=0.01), "get_job", "job-1")
        assert time.monotonic() - started >= wait - 0.05
    assert state.raw_status == "started"
    assert len(served) == 2


@pytest.mark.parametrize(
    ("code", "kind", "says"),
    [
        (403, AuthenticationError, "belongs to another account"),
        (410, JobNotFoundError, "expired"),
        (596, ModerationPendingError, "moderation"),
    ],
)
def test_403_410_and_596_are_not_retried_and_read_clearly(
    set_connection: Any, run_hook: Any, code: int, kind: type, says: str
) -> None:
    with hostile(lambda request: reply_json(code, {"error": "no", "code": code})) as server:
        conn_id = connect(set_connection, "useapi_v2", server.url, USEAPI_TOKEN)
        with pytest.raises(kind, match=says) as caught:
            run_hook(hook_for("useapi_v2", conn_id, retry_limit=3), "get_job", "job-1")
        assert f"HTTP {code}" in str(caught.value)
        assert server.seen() == 1
