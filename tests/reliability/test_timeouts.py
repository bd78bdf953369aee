"""Timeouts: connect and read timeouts come from the connection's extra or the hook's
arguments (arguments win), and a server that accepts and never answers cannot hold a hook call,
a task or a trigger past ``attempts x timeout`` (plus backoff)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_cancel.exceptions import TransportError
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.writetext import WriteTextHook
from airflow_provider_cancel.operators.cancel import CancelJobOperator
from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor
from airflow_provider_cancel.triggers.status import JobStatusTrigger
from tests.conftest import HookRunner

from .conftest import conn_env
from .fault_matrix import USEAPI_TOKEN, WRITETEXT_KEY, Blackhole
from .test_bad_input import context

SLACK = 2.5
"""Backoff (retry_delay 0.01), a WriteText token request, thread start-up and scheduling noise
on a loaded machine; every hanging server here holds on for 10 s or more, so a call that
waited for it could not pass."""


def bound(attempts: int, timeout: float) -> float:
    return attempts * timeout + SLACK


@pytest.fixture
def timeout_conns(emu: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Connections whose extra sets short timeouts and one retry."""
    extra = {"timeout": 0.5, "retry_limit": 1, "retry_delay": 0.01}
    conns = {
        "useapi": "rel_timeouts_useapi",
        "writetext": "rel_timeouts_writetext",
        "useapi_strings": "rel_timeouts_strings",
    }
    monkeypatch.setenv(
        *conn_env(conns["useapi"], "useapi", host=emu.url, password=USEAPI_TOKEN, extra=extra)
    )
    monkeypatch.setenv(
        *conn_env(
            conns["writetext"], "writetext", host=emu.url, password=WRITETEXT_KEY, extra=extra
        )
    )
    # The UI stores extras as strings.
    monkeypatch.setenv(
        *conn_env(
            conns["useapi_strings"],
            "useapi",
            host=emu.url,
            password=USEAPI_TOKEN,
            extra={"timeout": "0.5", "connect_timeout": "0.25", "retry_limit": "1"},
        )
    )
    return conns


def test_timeouts_come_from_the_extra_and_arguments_win(timeout_conns: dict[str, str]) -> None:
    hook = UseApiHook(timeout_conns["useapi"])
    assert (hook.settings.timeout, hook.settings.connect_timeout, hook.settings.retry_limit) == (
        0.5,
        0.5,
        1,
    )
    hook = UseApiHook(timeout_conns["useapi_strings"])
    assert (hook.settings.timeout, hook.settings.connect_timeout, hook.settings.retry_limit) == (
        0.5,
        0.25,
        1,
    )
    hook = UseApiHook(timeout_conns["useapi"], timeout=2, connect_timeout=0.1, retry_limit=0)
    assert (hook.settings.timeout, hook.settings.connect_timeout, hook.settings.retry_limit) == (
        2.0,
        0.1,
        0,
    )
    assert UseApiHook(timeout_conns["useapi"], timeout=30).settings.connect_timeout == 10.0


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("method", ["cancel_job", "get_job"])
@pytest.mark.parametrize("api", ["useapi", "writetext"])
def test_a_hanging_server_cannot_hold_a_call_past_the_timeout(
    api: str, method: str, mode: str, fresh_emu: Any, timeout_conns: dict[str, str]
) -> None:
    if api == "writetext":
        fresh_emu.create_job("writetext", "job:1", "Running")
    else:
        fresh_emu.create_job("useapi_v2", "job:1", "started")
    hung_call = "cancel" if method == "cancel_job" else "status"
    fresh_emu.inject("hang", count=10, call=hung_call, hang_seconds=10)
    kind = WriteTextHook if api == "writetext" else UseApiHook
    started = time.monotonic()
    with pytest.raises(TransportError) as raised:
        HookRunner(mode)(kind(timeout_conns[api]), method, "job:1")
    seconds = time.monotonic() - started
    assert seconds < bound(2, 0.5), seconds
    assert seconds >= 2 * 0.5 * 0.9  # both attempts really waited for their timeout
    assert "no answer within the timeout" in str(raised.value)
    assert "read 0.5s" in str(raised.value)
    assert "after 2 attempts" in str(raised.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_connect_timeout_is_separate_from_read_timeout(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    blackhole = Blackhole()
    try:
        monkeypatch.setenv(
            *conn_env(
                "rel_blackhole",
                "useapi",
                host=f"http://127.0.0.1:{blackhole.port}",
                password=USEAPI_TOKEN,
                extra={
                    "connect_timeout": 0.3,
                    "timeout": 30,
                    "retry_limit": 1,
                    "retry_delay": 0.01,
                },
            )
        )
        started = time.monotonic()
        with pytest.raises(TransportError, match=re.escape("connect 0.3s, read 30s")):
            HookRunner(mode)(UseApiHook("rel_blackhole"), "get_job", "job:1")
        assert time.monotonic() - started < bound(2, 0.3)
    finally:
        blackhole.close()


def test_an_operator_task_fails_within_the_bound(
    fresh_emu: Any, timeout_conns: dict[str, str]
) -> None:
    for n in range(5):
        fresh_emu.create_job("useapi_v2", f"job:{n}", "started")
    fresh_emu.inject("hang", rate=1.0, call="cancel", hang_seconds=10)
    operator = CancelJobOperator(
        task_id="cancel", conn_id=timeout_conns["useapi"], job_id=[f"job:{n}" for n in range(5)]
    )
    started = time.monotonic()
    with pytest.raises(AirflowException, match="5 of 5 job"):
        operator.execute(context())
    # The five cancels run concurrently: the task takes one job's bound, not five.
    assert time.monotonic() - started < bound(2, 0.5)


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_sensor_poke_fails_within_the_bound(
    deferrable: bool, fresh_emu: Any, timeout_conns: dict[str, str]
) -> None:
    fresh_emu.create_job("writetext", "req-1", "Running")
    fresh_emu.inject("hang", rate=1.0, call="status", hang_seconds=10)
    sensor = JobCancelledSensor(
        task_id="wait",
        conn_id=timeout_conns["writetext"],
        job_id="req-1",
        deferrable=deferrable,
        poke_interval=0.05,
        timeout=30,
    )
    started = time.monotonic()
    with pytest.raises(TransportError):
        sensor.execute(context("wait"))
    assert time.monotonic() - started < bound(2, 0.5)


def test_a_trigger_reports_an_error_event_within_the_bound(
    fresh_emu: Any, timeout_conns: dict[str, str]
) -> None:
    fresh_emu.create_job("useapi_v2", "job:1", "started")
    fresh_emu.inject("hang", rate=1.0, call="status", hang_seconds=10)
    trigger = JobStatusTrigger(
        conn_id=timeout_conns["useapi"], job_ids=["job:1"], poll_interval=0.05
    )

    async def first_event() -> dict[str, Any]:
        from airflow_provider_cancel.hooks.transport import close_async_clients

        try:
            async for event in trigger.run():
                return dict(event.payload)
            raise AssertionError("no event")
        finally:
            await close_async_clients()

    started = time.monotonic()
    event = asyncio.run(asyncio.wait_for(first_event(), 10))
    assert time.monotonic() - started < bound(2, 0.5)
    assert event["status"] == "error"
    assert "TransportError" in event["message"]
    assert USEAPI_TOKEN not in json.dumps(event)


# ---------------------------------------------------------------------- a server that drips


@pytest.fixture
def drip_server() -> Iterator[int]:
    """Answers 200 with a valid job body, one byte every 0.1 s (about 4 s in all): each read
    is well within the read timeout, the whole answer is not."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            body = json.dumps({"jobid": "job:1", "status": "started"}).encode().ljust(40)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            for byte in body:
                if stop.wait(0.1):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        server.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_server_that_drips_its_answer_cannot_hold_a_call_past_the_timeout(
    mode: str, drip_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timeout bounds one attempt, not only each socket read (requests applies it
    per read): a slow-drip answer must end in TransportError within the bound too."""
    monkeypatch.setenv(
        *conn_env(
            "rel_drip", "useapi", host=f"http://127.0.0.1:{drip_server}", password=USEAPI_TOKEN
        )
    )
    hook = UseApiHook("rel_drip", timeout=0.5, retry_limit=1, retry_delay=0.01)
    started = time.monotonic()
    with pytest.raises(TransportError):
        HookRunner(mode)(hook, "get_job", "job:1")
    # One attempt may take connect_timeout (defaults to the timeout) + timeout.
    assert time.monotonic() - started < bound(2, 0.5 + 0.5)
