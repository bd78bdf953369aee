"""Boundaries of the network around a request, on the sync and the async path: the proxy
environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``, upper and lower case), interim
(1xx) answers and framing errors, and one token request per connection however many threads
and event loops ask at once (docs/security.md, "Environment variables" and "API answers")."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_cancel.exceptions import CancelApiError, TransportError
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.writetext import WriteTextHook
from tests import hostile_server
from tests.conftest import HookRunner
from tests.hostile_server import HostileServer, head_bytes, hostile
from tests.proxy_server import Proxy, TlsServer

from .conftest import CONNS, FAST, conn_env
from .fault_matrix import USEAPI_TOKEN, WRITETEXT_KEY, dead_port

JOB = {"jobid": "job-1", "status": "started"}


def useapi_hook(conn_id: str = CONNS["useapi_v2"], **params: Any) -> UseApiHook:
    return UseApiHook(conn_id, **{**FAST, **params})


def set_env(monkeypatch: pytest.MonkeyPatch, lower: bool, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name.lower() if lower else name.upper(), value)


# ---------------------------------------------------------------------- proxies


@pytest.mark.parametrize("lower", [False, True], ids=["UPPER", "lower"])
def test_plain_http_goes_through_the_proxy_in_absolute_form(
    fresh_emu: Any, run_hook: HookRunner, monkeypatch: pytest.MonkeyPatch, lower: bool
) -> None:
    fresh_emu.create_job("useapi_v2", "job-1", "started")
    with Proxy() as proxy:
        set_env(monkeypatch, lower, HTTP_PROXY=proxy.url)
        result = run_hook(useapi_hook(), "cancel_job", "job-1")

        assert result.outcome.value == "cancelled"
        assert proxy.request_lines() == [
            f"GET http://127.0.0.1:{fresh_emu.port}/v2/jobs/cancel/?jobid=job-1 HTTP/1.1"
        ]
    assert fresh_emu.counters["cancel_requests"] == 1  # the proxy passed it on


@pytest.mark.parametrize("lower", [False, True], ids=["UPPER", "lower"])
def test_https_goes_through_connect_to_a_host_only_the_proxy_can_reach(
    emu: Any, run_hook: HookRunner, monkeypatch: pytest.MonkeyPatch, lower: bool
) -> None:
    body = json.dumps(JOB).encode()
    answer = head_bytes(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
    with TlsServer(answer + body) as origin, Proxy(tunnel_to=origin.address) as proxy:
        # .test never resolves: only a CONNECT through the proxy reaches the TLS server.
        monkeypatch.setenv(
            *conn_env(
                "via_proxy",
                "useapi",
                host="https://api.proxied.test",
                password=USEAPI_TOKEN,
                extra={"verify": False},  # the test server's certificate is self-signed
            )
        )
        set_env(monkeypatch, lower, HTTPS_PROXY=proxy.url, HTTP_PROXY=dead_url())
        state = run_hook(useapi_hook("via_proxy"), "get_job", "job-1")

        assert state.status.value == "running"
        [connect] = proxy.request_lines()
        assert connect.startswith("CONNECT api.proxied.test:443 HTTP/1.")
        assert [h.split(b"\r\n")[0] for h in origin.heads] == [
            b"GET /v2/jobs/?jobid=job-1 HTTP/1.1"
        ]


@pytest.mark.parametrize(
    "no_proxy", ["127.0.0.1", "localhost,127.0.0.1", ".example.com, 127.0.0.1", "*"]
)
@pytest.mark.parametrize("lower", [False, True], ids=["UPPER", "lower"])
def test_no_proxy_goes_straight_to_the_origin(
    fresh_emu: Any,
    run_hook: HookRunner,
    monkeypatch: pytest.MonkeyPatch,
    lower: bool,
    no_proxy: str,
) -> None:
    fresh_emu.create_job("useapi_v2", "job-1", "started")
    with Proxy() as proxy:
        set_env(monkeypatch, lower, HTTP_PROXY=proxy.url, NO_PROXY=no_proxy)
        state = run_hook(useapi_hook(), "get_job", "job-1")
        assert state.status.value == "running"
        assert proxy.request_lines() == []


@pytest.mark.parametrize(
    "no_proxy",
    ["127.0.0.1", "127.0.0.0/8", "127.0.0.1:{port}", "localhost", ".0.0.1", "0.1", "", ","],
)
def test_both_paths_read_no_proxy_the_same_way(
    fresh_emu: Any,
    both_paths: tuple[HookRunner, HookRunner],
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
) -> None:
    """Whatever NO_PROXY holds, the async path sends exactly what the sync path sends through
    the proxy (requests' rules decide for both)."""
    fresh_emu.create_job("useapi_v2", "job-1", "started")
    seen = []
    for runner in both_paths:
        with Proxy() as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            monkeypatch.setenv("NO_PROXY", no_proxy.format(port=fresh_emu.port))
            assert runner(useapi_hook(), "get_job", "job-1").status.value == "running"
            seen.append(proxy.request_lines())
    assert seen[0] == seen[1]


def test_proxy_user_info_is_proxy_auth_and_never_in_a_message(
    fresh_emu: Any, run_hook: HookRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_emu.create_job("useapi_v2", "job-1", "started")
    with Proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://squid%20user:pr0xy-pa55@127.0.0.1:{proxy.port}")
        run_hook(useapi_hook(), "get_job", "job-1")
        assert proxy.header("proxy-authorization") == [
            "Basic " + base64.b64encode(b"squid user:pr0xy-pa55").decode()
        ]
    assert not any("pa55" in str(e) for e in fresh_emu.requests_log)  # not passed on

    monkeypatch.setenv("HTTP_PROXY", f"http://squid:pr0xy-pa55@127.0.0.1:{dead_port()}")
    with pytest.raises(TransportError) as refused:
        run_hook(useapi_hook(retry_limit=0), "get_job", "job-1")
    assert "pa55" not in str(refused.value)


@pytest.mark.parametrize(
    "proxy", ["socks5://squid:pr0xy-pa55@127.0.0.1:1", "http://squid:pr0xy-pa55@[bad"]
)
def test_a_proxy_that_cannot_be_used_is_a_typed_error_without_its_password(
    fresh_emu: Any, run_hook: HookRunner, monkeypatch: pytest.MonkeyPatch, proxy: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy)
    with pytest.raises(CancelApiError) as refused:
        run_hook(useapi_hook(retry_limit=0), "get_job", "job-1")
    assert "pa55" not in str(refused.value)
    assert "proxy" in str(refused.value)
    assert fresh_emu.counters["status_requests"] == 0


def dead_url() -> str:
    return f"http://127.0.0.1:{dead_port()}"


# ---------------------------------------------------------------------- interim answers, framing


def interim_then(codes: tuple[int, ...], final: bytes) -> hostile_server.Answer:
    def answer(request: hostile_server.Request, sock: Any) -> None:
        for code in codes:
            sock.sendall(head_bytes(code, {"Link": "</style.css>; rel=preload"}, "Interim"))
        sock.sendall(final)

    return answer


def job_answer(headers: dict[str, str] | None = None) -> bytes:
    body = json.dumps(JOB).encode()
    all_headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    return head_bytes(200, {**all_headers, "Connection": "close", **(headers or {})}) + body


@pytest.mark.parametrize("codes", [(103,), (102,), (100, 102, 103), (103,) * 20])
def test_interim_answers_before_the_answer_are_skipped(
    run_hook: HookRunner, set_connection: Callable[..., str], codes: tuple[int, ...]
) -> None:
    with hostile(lambda request: interim_then(codes, job_answer())) as server:
        set_connection("interim", "useapi", host=server.url, password=USEAPI_TOKEN)
        state = run_hook(useapi_hook("interim"), "get_job", "job-1")
    assert state.status.value == "running"


def endless_interim(request: hostile_server.Request, sock: Any) -> None:
    until = time.monotonic() + hostile_server.MAX_SECONDS
    while time.monotonic() < until:
        sock.sendall(head_bytes(103, {"Link": "</style.css>; rel=preload"}, "Early Hints"))
        time.sleep(0.001)


def test_an_endless_run_of_interim_answers_is_no_answer(
    run_hook: HookRunner, set_connection: Callable[..., str]
) -> None:
    with hostile(lambda request: endless_interim) as server:
        set_connection("interim", "useapi", host=server.url, password=USEAPI_TOKEN)
        with pytest.raises(TransportError):
            run_hook(useapi_hook("interim", retry_limit=0), "get_job", "job-1")


FRAMING_FAULTS = {
    "two Content-Lengths": b"Content-Length: 36\r\nContent-Length: 5\r\n",
    "Content-Length list": b"Content-Length: 36, 5\r\n",
    "negative Content-Length": b"Content-Length: -1\r\n",
    "Content-Length and chunked": b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    "unknown charset": b"Content-Type: application/json; charset=utf-99\r\n",
    "no text charset": b"Content-Type: application/json; charset=base64\r\n",
}


@pytest.mark.parametrize("fault", FRAMING_FAULTS)
def test_framing_errors_are_typed(
    run_hook: HookRunner, set_connection: Callable[..., str], fault: str
) -> None:
    body = json.dumps(JOB).encode()
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n" + FRAMING_FAULTS[fault] + b"\r\n" + body

    def answer(request: hostile_server.Request, sock: Any) -> None:
        sock.sendall(raw)

    with hostile(lambda request: answer) as server:
        set_connection("framing", "useapi", host=server.url, password=USEAPI_TOKEN)
        with contextlib.suppress(CancelApiError):  # typed: anything else fails the test
            run_hook(useapi_hook("framing", retry_limit=0), "get_job", "job-1")


STATUS_LINES = st.sampled_from(
    [
        *(b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 103 Early Hints", b"HTTP/1.1 101 Up"),
        *(b"HTTP/2 200 OK", b"HTTP/1.1 2000 X", b"HTTP/1.1 099 X", b"ICY 200 OK", b"HTTP/1.1 200"),
    ]
)
HEADER_LINES = st.sampled_from(
    [
        b"Content-Length: 36",
        b"Content-Length: 5",
        b"Content-Length: -1",
        b"Content-Length: 99999999999999999999999",
        b"Content-Length: 36, 5",
        b"Transfer-Encoding: chunked",
        b"Transfer-Encoding: gzip, chunked",
        b"Content-Encoding: gzip",
        b"Content-Encoding: br",
        b"Content-Type: application/json; charset=utf-99",
        b"Content-Type: text/html; charset=punycode",
        b"X: a\x00b",
        b"no colon",
        b" folded continuation",
        b"\xff\xfe: binary",
        b"Location: //elsewhere",
        b"Retry-After: 99999999999999999999",
    ]
)
BODIES = st.sampled_from([json.dumps(JOB).encode(), b"", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n"])


class Scripted:
    """One hostile server for many examples: each answers with the bytes set last."""

    def __init__(self) -> None:
        self.raw = b""
        self.server = HostileServer(lambda request: self.answer)

    def answer(self, request: hostile_server.Request, sock: Any) -> None:
        sock.sendall(self.raw)


@pytest.fixture(scope="module")
def scripted() -> Any:
    server = Scripted()
    yield server
    server.server.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    status=STATUS_LINES,
    headers=st.lists(HEADER_LINES, max_size=5),
    body=BODIES,
    line_end=st.sampled_from([b"\r\n", b"\n"]),
)
def test_any_answer_head_ends_in_a_state_or_a_typed_error_on_both_paths(
    scripted: Scripted,
    both_paths: tuple[HookRunner, HookRunner],
    status: bytes,
    headers: list[bytes],
    body: bytes,
    line_end: bytes,
) -> None:
    from airflow.models.connection import Connection

    scripted.raw = line_end.join([status, *headers]) + line_end * 2 + body
    conn = Connection(
        conn_id="scripted", conn_type="useapi", host=scripted.server.url, password=USEAPI_TOKEN
    )
    for runner in both_paths:
        hook = useapi_hook("scripted", retry_limit=0, timeout=2.0)
        hook.use_connection(conn)
        # typed; anything else (InvalidHeader, LookupError...) fails the example
        with contextlib.suppress(CancelApiError):
            runner(hook, "get_job", "job-1")


# ---------------------------------------------------------------------- one token request


TOKEN_DELAY = 1.5
"""The token host answers this late, so every caller asks while the first fetch is under way."""


def test_a_cold_cache_makes_one_token_request_across_threads_and_event_loops(
    fresh_emu: Any, set_connection: Callable[..., str]
) -> None:
    for n in range(8):
        fresh_emu.create_job("writetext", f"job-{n}", "Running")

    def slow_token(request: hostile_server.Request) -> None:
        if request.call == "token":
            time.sleep(TOKEN_DELAY)
        # None: passed through to the emulator

    threads, loops = 16, 8
    start = threading.Barrier(threads + loops)
    errors: list[BaseException] = []
    loop_gaps: list[float] = []

    def hook() -> WriteTextHook:
        return WriteTextHook("slow_token", retry_limit=0, timeout=10.0)

    def in_thread(n: int) -> None:
        start.wait()
        try:
            hook().get_job(f"job-{n % 8}")
        except BaseException as error:  # reported below
            errors.append(error)

    async def ticking(n: int) -> None:
        """Reads a job while a ticker checks the loop keeps running (never blocked by the
        wait for another thread's or loop's token fetch)."""
        gaps = [0.0]
        done = asyncio.Event()

        async def tick() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        the_hook = hook()
        try:
            await the_hook.aget_job(f"job-{n % 8}")
        finally:
            done.set()
            await ticker
            await the_hook.aclose()
        loop_gaps.append(max(gaps))

    def in_loop(n: int) -> None:
        start.wait()
        try:
            asyncio.run(ticking(n))
        except BaseException as error:  # reported below
            errors.append(error)

    with hostile(slow_token, forward_to=("127.0.0.1", fresh_emu.port)) as token_host:
        set_connection("slow_token", "writetext", host=token_host.url, password=WRITETEXT_KEY)
        workers = [threading.Thread(target=in_thread, args=(n,)) for n in range(threads)]
        workers += [threading.Thread(target=in_loop, args=(n,)) for n in range(loops)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)

    assert errors == []
    assert fresh_emu.counters["token_requests"] == 1
    assert fresh_emu.counters["status_requests"] == threads + loops
    # A loop blocked while waiting would show a gap of the whole token delay.
    assert max(loop_gaps) < TOKEN_DELAY * 0.66, loop_gaps


def test_a_cancelled_fetch_hands_over_to_a_waiter(
    fresh_emu: Any, set_connection: Callable[..., str]
) -> None:
    """The loop fetching the token is cancelled (a trigger killed): a caller waiting on it
    fetches in its turn instead of waiting for ever or failing."""
    fresh_emu.create_job("writetext", "job-1", "Running")

    def slow_token(request: hostile_server.Request) -> None:
        if request.call == "token" and not slow_token.served:  # type: ignore[attr-defined]
            slow_token.served = True  # type: ignore[attr-defined]
            time.sleep(TOKEN_DELAY)

    slow_token.served = False  # type: ignore[attr-defined]
    with hostile(slow_token, forward_to=("127.0.0.1", fresh_emu.port)) as token_host:
        set_connection("slow_token", "writetext", host=token_host.url, password=WRITETEXT_KEY)

        async def main() -> Any:
            first = asyncio.create_task(WriteTextHook("slow_token", **FAST).aget_job("job-1"))
            await asyncio.sleep(0.3)  # the first is fetching
            second = asyncio.create_task(WriteTextHook("slow_token", **FAST).aget_job("job-1"))
            await asyncio.sleep(0.1)
            first.cancel()
            return await second

        assert asyncio.run(main()).status.value == "running"
