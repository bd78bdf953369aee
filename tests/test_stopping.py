"""The cancels of a stopped task (``stopping.py``): bounded work on both paths. No request is
sent after the kill budget, the outcome of every request that was sent is logged, and a line
that lists ids lists a few and a count.

The API is a byte-level local server (``tests/hostile_server.py``) that answers every cancel
after a delay, so a long list cannot finish within the budget.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_cancel.hooks import hook_for_connection
from airflow_provider_cancel.stopping import acancel_watched, cancel_watched, cancel_with_own_hook
from tests.hostile_server import HostileServer, Request, hostile, reply_json

BUDGET = {"connect_timeout": 0.5, "timeout": 0.5, "retry_limit": 0, "max_retry_wait": 0.1}
"""A kill budget of 1 s (``connect_timeout + timeout``)."""


class SlowApi:
    """Answers every request after ``delay`` seconds (404: the outcome does not matter here),
    noting when each arrived."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.arrived: list[float] = []
        self._lock = threading.Lock()

    def route(self, request: Request) -> Any:
        with self._lock:
            self.arrived.append(time.monotonic())
        answer = reply_json(404, {"error": "not found"})

        def slowly(request: Request, sock: socket.socket) -> None:
            time.sleep(self.delay)
            answer(request, sock)

        return slowly


@pytest.fixture
def slow_api(set_connection: Callable[..., str]) -> Iterator[tuple[str, SlowApi, HostileServer]]:
    api = SlowApi(delay=0.1)
    with hostile(api.route) as server:
        conn_id = set_connection("useapi_slow", "useapi", host=server.url, password="t-123456")
        yield conn_id, api, server


def ids(count: int) -> list[str]:
    return [f"job-{n}" for n in range(count)]


@pytest.mark.parametrize("path", ["sync", "async"])
def test_no_request_is_sent_after_the_budget_and_what_ran_is_logged(
    slow_api: tuple[str, SlowApi, HostileServer], all_logs: Callable[[], str], path: str
) -> None:
    conn_id, api, _ = slow_api
    hook = hook_for_connection(conn_id, BUDGET)
    log = __import__("logging").getLogger("test.stopping")
    started = time.monotonic()
    try:
        if path == "sync":
            left = cancel_watched(hook, ids(2000), log=log, why="stopped")
        else:
            left = asyncio.run(acancel_watched(hook, ids(2000), log=log, why="stopped"))
    finally:
        hook.close()
    returned = time.monotonic()
    sent = len(api.arrived)
    time.sleep(0.5)  # anything still going would send more now

    budget = 1.0
    assert sent, "some cancels went out"
    assert len(api.arrived) == sent < 2000  # nothing after the cancel returned
    # None started after the budget (the slack is for a loaded machine, not the design).
    assert max(api.arrived) < started + budget + 1.0
    assert returned - started < 2 * budget + 3.0  # the answers of those sent, then done
    assert len(left) == 2000  # 404s and unsent ones: each may still run
    text = all_logs()
    assert "not sent (the time ran out)" in text
    assert "and 1995 more (2000 ids)" in text
    assert max(len(line) for line in text.splitlines()) < 2000


def test_a_line_about_100000_ids_stays_short(all_logs: Callable[[], str]) -> None:
    log = __import__("logging").getLogger("test.stopping")

    def no_hook() -> Any:
        raise RuntimeError("the connection is gone")

    left = cancel_with_own_hook(no_hook, ids(100_000), log=log, why="stopped")

    assert len(left) == 100_000
    lines = [line for line in all_logs().splitlines() if "may still be running" in line]
    assert lines
    assert all(len(line) < 1000 for line in lines), max(map(len, lines))
    assert "and 99995 more (100000 ids)" in lines[0]
