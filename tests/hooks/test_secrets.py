"""No token, API key or access token in any log line or exception message, on error paths too.

Logs are captured at DEBUG before Airflow's secret masker runs (``all_logs``), so a secret that
only the masker would hide still fails these tests.
"""

from __future__ import annotations

import socket
import traceback

import pytest

from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    CancelApiError,
    ServerError,
    TransportError,
)
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.writetext import WriteTextHook
from tests.conftest import FAST

from .conftest import TOKEN_URL, USEAPI, WRITETEXT_REGION

USEAPI_SECRET = "useapi-secret-token-9f8e7d"
WT_KEY = "writetext-secret-key-1a2b3c"
ACCESS = "writetext-access-token-4d5e6f"
JOB = "job:1-user:2"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _error_text(error: BaseException) -> str:
    return "\n".join(
        [str(error), repr(error), "".join(traceback.format_exception(error))]
        + [str(getattr(error, name, "")) for name in ("server_message", "job_id")]
    )


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"secret {secret[:6]}... leaked"


def _expect_failure(run_hook, hook, method, *args):
    """Run and return the error (a CancelApiError) or the result."""
    try:
        return run_hook(hook, method, *args)
    except CancelApiError as error:
        return error


# ---------------------------------------------------------------------- useapi


@pytest.mark.parametrize(
    ("code", "kind"), [(401, AuthenticationError), (500, ServerError), (403, AuthenticationError)]
)
def test_useapi_error_echoing_the_token(set_connection, fake_api, run_hook, all_logs, code, kind):
    set_connection("u", "useapi", password=USEAPI_SECRET)
    url = f"{USEAPI}/v2/jobs/?jobid=job%3A1-user%3A2"
    fake_api.add(
        "GET", url, code, json={"error": f"Bad token Bearer {USEAPI_SECRET}", "code": code}
    )
    with pytest.raises(kind) as caught:
        run_hook(UseApiHook("u", retry_limit=2, **FAST), "get_job", JOB)
    assert "Bad token" in str(caught.value)  # the message is kept, the secret is not
    assert_clean(_error_text(caught.value), USEAPI_SECRET)
    assert_clean(all_logs(), USEAPI_SECRET)


def test_useapi_server_errors_after_retries_on_emulator(emulator, useapi_conn, run_hook, all_logs):
    job_id = emulator.submit_useapi()
    emulator.inject("500", count=10)
    error = _expect_failure(run_hook, UseApiHook(retry_limit=2, **FAST), "cancel_job", job_id)
    assert isinstance(error, ServerError)
    logs = all_logs()
    assert "retrying" in logs  # the capture works: retries are logged...
    assert "-> 500" in logs  # ...and so are DEBUG request lines
    assert_clean(_error_text(error) + logs, "emulator-useapi-token")


def test_useapi_secret_never_in_url(set_connection, fake_api, run_hook):
    set_connection("u", "useapi", password=USEAPI_SECRET)
    fake_api.add("GET", f"{USEAPI}/v2/jobs/?jobid=job%3A1-user%3A2", json={"status": "created"})
    run_hook(UseApiHook("u", **FAST), "get_job", JOB)
    assert_clean(" ".join(fake_api.urls()), USEAPI_SECRET)


# ---------------------------------------------------------------------- WriteText


def _wt(set_connection, **extra):
    set_connection("wt", "writetext", password=WT_KEY, extra=extra or None)
    return WriteTextHook("wt", retry_limit=2, **FAST)


def test_writetext_wrong_key_echoed(set_connection, fake_api, run_hook, all_logs):
    fake_api.add("GET", TOKEN_URL, 401, json={"error": f"Invalid API key {WT_KEY}"})
    error = _expect_failure(run_hook, _wt(set_connection), "cancel_job", "r1")
    assert isinstance(error, AuthenticationError)
    assert_clean(_error_text(error) + all_logs(), WT_KEY)


def test_writetext_401_refresh_path(set_connection, fake_api, run_hook, all_logs):
    second = "second-access-token-7a8b9c"
    fake_api.token(ACCESS)
    fake_api.token(second)
    url = f"{WRITETEXT_REGION}/text/Generate/Bulk/r1"
    # each 401 echoes the token that request carried
    fake_api.add("GET", url, 401, json={"error": f"invalid_token {ACCESS}"})
    fake_api.add("GET", url, 401, json={"error": f"invalid_token {second}"})
    error = _expect_failure(run_hook, _wt(set_connection), "get_job", "r1")
    assert isinstance(error, AuthenticationError)
    assert [c.headers["Authorization"] for c in fake_api.calls if c.url == url] == [
        f"Bearer {ACCESS}",
        f"Bearer {second}",
    ]
    logs = all_logs()
    assert "401" in logs or "refused" in logs
    assert_clean(_error_text(error) + logs, WT_KEY, ACCESS, second)


def test_writetext_500_after_retries_echoing_tokens(set_connection, fake_api, run_hook, all_logs):
    fake_api.token(ACCESS)
    fake_api.add(
        "POST",
        f"{WRITETEXT_REGION}/text/Generate/Bulk/r1/cancel",
        500,
        json={"error": f"crash; headers Bearer {ACCESS} WriteTextAI-Token {WT_KEY}"},
    )
    error = _expect_failure(run_hook, _wt(set_connection), "cancel_job", "r1")
    assert isinstance(error, ServerError)
    assert_clean(_error_text(error) + all_logs(), WT_KEY, ACCESS)


def test_writetext_emulator_error_paths(emulator, writetext_conn, run_hook, all_logs):
    job_id = emulator.submit_writetext()
    run_hook(WriteTextHook(**FAST), "get_job", job_id)
    access_tokens = list(emulator.state.tokens)
    assert len(access_tokens) == 1
    emulator.inject("expired_token", count=4, api="writetext")
    errors = [_expect_failure(run_hook, WriteTextHook(**FAST), "cancel_job", job_id)]
    emulator.clear_faults()
    emulator.inject("502", count=10, api="writetext")
    errors.append(
        _expect_failure(run_hook, WriteTextHook(retry_limit=1, **FAST), "get_job", job_id)
    )
    emulator.clear_faults()
    emulator.inject("drop", count=10, api="writetext")
    errors.append(
        _expect_failure(run_hook, WriteTextHook(retry_limit=1, **FAST), "get_job", job_id)
    )
    emulator.clear_faults()
    assert [type(e) for e in errors] == [AuthenticationError, ServerError, TransportError]
    access_tokens = list(emulator.state.tokens) + access_tokens
    text = "\n".join(_error_text(e) for e in errors) + all_logs()
    assert_clean(text, "emulator-writetext-key", *access_tokens)


def test_writetext_key_only_sent_to_token_endpoint(set_connection, fake_api, run_hook):
    fake_api.token(ACCESS)
    fake_api.add("GET", f"{WRITETEXT_REGION}/text/Generate/Bulk/r1", json={"status": "Running"})
    run_hook(_wt(set_connection), "get_job", "r1")
    token_call, job_call = fake_api.calls
    assert token_call.headers["WriteTextAI-Token"] == WT_KEY
    assert_clean(str(dict(job_call.headers)) + job_call.url, WT_KEY)
    assert_clean(" ".join(fake_api.urls()), WT_KEY, ACCESS)


def test_access_token_registered_with_masker(set_connection, fake_api, monkeypatch):
    from airflow_provider_cancel.hooks import writetext

    masked: list[str] = []
    monkeypatch.setattr(writetext, "mask_secret", lambda value, *a, **k: masked.append(value))
    fake_api.token(ACCESS)
    fake_api.add("GET", f"{WRITETEXT_REGION}/text/Generate/Bulk/r1", json={"status": "Running"})
    _wt(set_connection).get_job("r1")
    assert ACCESS in masked
