"""Answers at the edge of what the APIs document: a missing token endpoint, error bodies that
echo secrets, garbage instead of HTTP, odd expiry values, and settings that cannot work."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    ConnectionConfigError,
    JobNotFoundError,
    TransportError,
)
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.writetext import (
    DEFAULT_LIFETIME,
    WriteTextHook,
    parse_token_answer,
)
from airflow_provider_cancel.job_ids import encode_path_segment
from airflow_provider_cancel.status import CancelOutcome, JobStatus
from tests.conftest import FAST

from .conftest import TOKEN_URL, WRITETEXT, WRITETEXT_REGION

KEY = "wt-api-key-secret-0123456789"
ACCESS = "access-token-0123456789"
REQ = "req-1"
ONE_RETRY: dict[str, Any] = {**FAST, "retry_limit": 1}


@pytest.fixture
def writetext_conn(set_connection: Any) -> str:
    return set_connection("wt_edge", "writetext", password=KEY)


def job_url(job_id: str = REQ) -> str:
    return f"{WRITETEXT_REGION}/text/Generate/Bulk/{encode_path_segment(job_id)}"


def test_a_missing_token_endpoint_is_a_connection_error_not_a_missing_job(
    fake_api: Any, writetext_conn: str, run_hook: Any
) -> None:
    """A 404 from the token endpoint must never read as "job not found": a sensor told to read
    missing jobs as cancelled would otherwise succeed while the job still runs."""
    fake_api.add("GET", TOKEN_URL, 404, json={"error": "Not Found"})
    hook = WriteTextHook(writetext_conn, **ONE_RETRY)

    with pytest.raises(ConnectionConfigError, match="no token endpoint") as caught:
        run_hook(hook, "get_jobs", [REQ], missing_status=JobStatus.CANCELLED)

    assert not isinstance(caught.value, JobNotFoundError)
    assert WRITETEXT in str(caught.value)


def test_refused_cancel_of_a_forgotten_request_is_not_found(
    fake_api: Any, writetext_conn: str, run_hook: Any
) -> None:
    fake_api.token(ACCESS)
    fake_api.add("POST", f"{job_url()}/cancel", 409, json={"error": "not active"})
    fake_api.add("GET", job_url(), 404, json={"error": "Request req-1 not found"})

    result = run_hook(WriteTextHook(writetext_conn, **ONE_RETRY), "cancel_job", REQ)

    assert result.outcome is CancelOutcome.NOT_FOUND


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": f"cannot cancel: bearer {ACCESS} is read-only"}),
        (404, {"error": f"unknown request for key {KEY}"}),
    ],
)
def test_cancel_reports_never_carry_a_secret_the_server_echoed(
    fake_api: Any, writetext_conn: str, run_hook: Any, status: int, body: dict[str, str]
) -> None:
    fake_api.token(ACCESS)
    fake_api.add("POST", f"{job_url()}/cancel", status, json=body)
    fake_api.add("GET", job_url(), 200, json={"id": REQ, "status": "Running"})

    result = run_hook(WriteTextHook(writetext_conn, **ONE_RETRY), "cancel_job", REQ)

    assert result.outcome in (CancelOutcome.ERROR, CancelOutcome.NOT_FOUND)
    assert ACCESS not in result.message
    assert KEY not in result.message
    assert "***" in result.message


def test_a_long_error_is_scrubbed_before_it_is_shortened(
    fake_api: Any, writetext_conn: str, run_hook: Any
) -> None:
    """Cutting first could leave the start of a secret behind, where scrubbing no longer
    recognises it."""
    fake_api.add("GET", TOKEN_URL, 401, json={"error": "x" * 190 + f" key {KEY}"})

    with pytest.raises(AuthenticationError) as caught:
        run_hook(WriteTextHook(writetext_conn, **ONE_RETRY), "get_job", REQ)

    assert KEY[:5] not in str(caught.value).split("x" * 190, 1)[-1]


@pytest.mark.parametrize("expires", ["P1D", "2026-01-01/2027-01-01"])
def test_an_expiry_that_is_not_a_point_in_time_falls_back_to_the_default(expires: str) -> None:
    token = parse_token_answer(
        {"access_token": ACCESS, "region": "api-eu.writetext.ai", "expires": expires},
        f"{WRITETEXT}/web/apitoken/accesstoken",
        None,
    )
    assert token.expires_at - token.refresh_at < DEFAULT_LIFETIME
    assert abs((token.expires_at - token.refresh_at) - 300) < 1  # the 24 h default's margin


@pytest.mark.parametrize("name", ["timeout", "connect_timeout"])
def test_a_zero_timeout_is_refused_up_front(set_connection: Any, name: str) -> None:
    conn_id = set_connection("ua_zero", "useapi", password="tok-123456", extra={name: 0})
    with pytest.raises(ConnectionConfigError, match=f"{name} must be > 0"):
        UseApiHook(conn_id).check_connection()


@pytest.fixture
def not_http_server() -> Iterator[int]:
    """Accepts connections and answers bytes that are not HTTP."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


def test_garbage_instead_of_http_is_retried_then_a_transport_error(
    set_connection: Any, not_http_server: int, run_hook: Any
) -> None:
    """Both paths: requests and aiohttp each report the garbage their own way."""
    conn_id = set_connection(
        "ua_garbage",
        "useapi",
        host=f"http://127.0.0.1:{not_http_server}",
        password="tok-123456",
    )
    with pytest.raises(TransportError, match="2 attempts"):
        run_hook(UseApiHook(conn_id, **{**ONE_RETRY, "timeout": 2}), "get_job", "job:1")
