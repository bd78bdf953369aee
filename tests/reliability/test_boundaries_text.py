"""Hostile text and numbers from servers (docs/security.md, "API answers" and "The WriteText token
answer"): every string a server writes reaches a log line, an exception, an XCom report or a
trigger event only cleaned (no control or format character, no known secret in any encoding,
bounded), in linear time; every number a server sends parses without an exception at any size
and is clamped; no wait is longer than ``max_retry_wait``, jitter included.

The first part feeds the cleaner and the number parsers directly (many examples, cheap); the
rest goes through a byte-level local server (:mod:`tests.hostile_server`) on both paths, and
through the operator, the sensor and the trigger. Time bounds are generous (a 1 MiB body in
well under a second where the old scrubbing took minutes): they catch a quadratic step, not a
slow machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from airflow.models.connection import Connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_cancel.exceptions import CancelApiError, ConnectionConfigError
from airflow_provider_cancel.hooks.retry_after import LONGEST_WAIT, retry_after_seconds
from airflow_provider_cancel.hooks.scrub import (
    MIN_SECRET_LENGTH,
    READ_LIMIT,
    STATUS_LIMIT,
    TEXT_LIMIT,
    clean_text,
)
from airflow_provider_cancel.hooks.transport import ApiResponse, backoff_seconds
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.writetext import (
    LONGEST_LIFETIME,
    SHORTEST_LIFETIME,
    WriteTextHook,
    parse_token_answer,
)
from airflow_provider_cancel.operators.cancel import CancelJobOperator
from airflow_provider_cancel.sensors.status import JobStatusSensor
from airflow_provider_cancel.triggers.status import JobStatusTrigger
from tests.fakes import FakeTI
from tests.hostile_server import (
    FORGED_LINE,
    Request,
    backslash_error,
    forged_status,
    hostile,
    reply,
    reply_json,
    secret_forms,
)

from .fault_matrix import USEAPI_TOKEN, WRITETEXT_KEY

FAST: dict[str, Any] = {"retry_limit": 1, "retry_delay": 0.01, "max_retry_wait": 0.05}
ACCESS = "Ac/cess+tok=en:7f3a9b"
MIB = 1024 * 1024
BOUND_SECONDS = 1.0
"""A 1 MiB hostile text is cleaned within this (the old scrubbing: minutes)."""
CALL_SECONDS = 3.0
"""A call answered with 1 MiB of hostile text ends within this, request included."""
FORBIDDEN = ("\n", "\r", "\x1b", "\x85", "\u2028", "\u2029", "\u202e", "\u200b", "\x00")


def assert_shown_safely(text: str, *secrets: str, bound: int | None = None) -> None:
    """No control or format character, no secret in any encoding, at most ``bound`` long."""
    assert text.isprintable(), f"a control or format character in {text[:300]!r}"
    for secret in secrets:
        leaked = [form for form in secret_forms(secret) if form in text]
        assert not leaked, f"{leaked} in {text[:300]!r}"
    if bound is not None:
        assert len(text) <= bound, f"{len(text)} characters: {text[:200]!r}"


# ---------------------------------------------------------------------- 1. the cleaner

CONTROL = st.sampled_from(
    [
        *map(chr, range(0x20)),
        "\x7f",
        *map(chr, range(0x80, 0xA0)),
        "\u2028",
        "\u2029",
        "\u200b",
        "\u200e",
        "\u202a",
        "\u202e",
        "\u2066",
        "\u2069",
        "\ufeff",
        "\x1b[2K",
        "\x1b[1A",
        "\x1b]0;title\x07",
        "\x1b[38;5;196m",
    ]
)
HOSTILE_TEXT = st.lists(st.one_of(CONTROL, st.text(max_size=12)), max_size=30).map("".join)
SECRET = st.text(
    st.characters(min_codepoint=33, max_codepoint=126), min_size=MIN_SECRET_LENGTH, max_size=24
).map(lambda s: "Sk" + s + "/+=:")
"""Printable ASCII (what a connection's password may hold), with the characters encoders change."""


@st.composite
def encoded(draw: st.DrawFn, secret: str) -> str:
    """``secret`` as a server might quote it: each character raw, JSON-escaped (behind any
    number of backslashes, either case), percent-encoded (``%25`` repeated), an HTML
    reference (zero-padded, decimal or hex) or ``+`` for a space; then maybe nested whole."""
    parts = []
    for char in secret:
        form = draw(st.sampled_from(["raw", "json", "percent", "html", "hex"]))
        code = ord(char)
        if form == "json":
            hex_code = f"{code:04x}" if draw(st.booleans()) else f"{code:04X}"
            parts.append("\\" * draw(st.integers(1, 6)) + "u" + hex_code)
        elif form == "percent":
            parts.append("%" + "25" * draw(st.integers(0, 6)) + f"{code:02X}")
        elif form == "html":
            parts.append("&#" + "0" * draw(st.integers(0, 6)) + f"{code};")
        elif form == "hex":
            parts.append(f"&#x{code:x};")
        else:
            parts.append(char)
    text = "".join(parts)
    if draw(st.booleans()):
        text = json.dumps(text)[1:-1]  # the whole body quoted in another JSON string
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    before=HOSTILE_TEXT,
    after=HOSTILE_TEXT,
    data=st.data(),
    secret=SECRET,
    limit=st.integers(20, 600),
)
def test_cleaned_text_is_printable_bounded_and_holds_no_secret_in_any_encoding(
    before: str, after: str, data: st.DataObject, secret: str, limit: int
) -> None:
    text = before + data.draw(encoded(secret)) + after
    shown = clean_text(text, [secret], limit)
    assert_shown_safely(shown, secret, bound=limit)
    assert decoded_secret_absent(shown, secret)


def decoded_secret_absent(shown: str, secret: str) -> bool:
    """Even decoded once more, the output holds no secret (the cleaner shows decoded text)."""
    return secret not in shown and secret.replace("+", " ") not in shown


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.data(),
    secret=SECRET,
    shift=st.integers(0, 200),
    filler=st.sampled_from(["x", "\\", "%25", "&#0", "é", " "]),
)
def test_a_cut_before_scrubbing_never_leaves_part_of_a_secret(
    data: st.DataObject, secret: str, shift: int, filler: str
) -> None:
    """Text longer than READ_LIMIT is cut before it is cleaned: wherever the cut falls in an
    encoded secret, no prefix of it survives."""
    quoted = data.draw(encoded(secret))
    head = (filler * READ_LIMIT)[: READ_LIMIT - shift]
    text = head + " " + quoted + " tail" * 10_000
    shown = clean_text(text, [secret], 10 * READ_LIMIT)
    assert_shown_safely(shown, secret)
    assert secret[:MIN_SECRET_LENGTH] not in shown
    assert "characters cut]" in shown


HOSTILE_MEGABYTES = {
    "backslashes": "\\" * MIB,
    "%25 run": "%25" * (MIB // 3),
    "&#0 run": "&#0" * (MIB // 3),
    "zero-padded reference": "&#" + "0" * MIB,
    "mixed escapes": ("\\\\u00" + "%252" + "&#00") * (MIB // 13),
    "ANSI": "\x1b[" * (MIB // 2),
    "OSC": "\x1b]" * (MIB // 2),
    "controls": "\x00\u202e\u200b\x85" * (MIB // 4),
    "secret near-misses": (USEAPI_TOKEN[:-1] + "\\") * (MIB // len(USEAPI_TOKEN)),
}


@pytest.mark.parametrize("name", list(HOSTILE_MEGABYTES))
def test_a_hostile_megabyte_is_cleaned_in_milliseconds(name: str) -> None:
    text = HOSTILE_MEGABYTES[name]
    started = time.process_time()
    shown = clean_text(text, [USEAPI_TOKEN, WRITETEXT_KEY, ACCESS], TEXT_LIMIT)
    assert time.process_time() - started < BOUND_SECONDS
    assert_shown_safely(shown, USEAPI_TOKEN, WRITETEXT_KEY, ACCESS, bound=TEXT_LIMIT)


@pytest.mark.parametrize("size", [100, READ_LIMIT - 1, READ_LIMIT + 1, 400_000])
def test_a_cut_says_how_much_was_cut(size: int) -> None:
    shown = clean_text("word " * (size // 5), limit=200)
    assert len(shown) <= 200
    if size > 200:
        cut = int(shown.rsplit("[", 1)[1].split(" ", 1)[0])
        assert cut + len(shown.rsplit("…", 1)[0]) == len("word " * (size // 5))


def test_a_forged_log_line_becomes_one_line() -> None:
    shown = clean_text("Running" + FORGED_LINE + "\r\x85\u2028\x1b[2K\u202e", limit=200)
    assert shown == "Running [2026-12-08T00:00:00.000+0000] {cancel.py:1} INFO - job-2: cancelled"


@pytest.mark.parametrize(
    "quoted",
    [
        USEAPI_TOKEN,
        quote(USEAPI_TOKEN, safe=""),
        quote(quote(USEAPI_TOKEN, safe=""), safe=""),
        json.dumps(json.dumps(USEAPI_TOKEN))[1:-1],
        "".join(f"&#{ord(c)};" for c in USEAPI_TOKEN),
        USEAPI_TOKEN.replace("+", " "),
        "\u200b".join(USEAPI_TOKEN),  # split by zero-width spaces
        "\x1b[0m".join(USEAPI_TOKEN),  # split by ANSI resets
    ],
)
def test_known_forms_of_a_token_are_scrubbed(quoted: str) -> None:
    shown = clean_text(f"bad token {quoted} given", [USEAPI_TOKEN])
    assert shown.startswith("bad token ")
    assert "***" in shown
    assert_shown_safely(shown, USEAPI_TOKEN)


# ---------------------------------------------------------------------- 2. numbers, parsed

NUMBER_TEXT = st.one_of(
    st.integers(-(10**400), 10**400).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["9" * 400, "1e308", "-1e308", "inf", "-inf", "nan", "NaN", "Infinity"]),
    st.text(max_size=80),
)
JSON_NUMBER = st.one_of(
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    NUMBER_TEXT,
)


@settings(max_examples=300, deadline=None)
@given(header=NUMBER_TEXT, field=st.sampled_from(["retryAfter", "retryAt"]), value=JSON_NUMBER)
def test_a_servers_wait_never_raises_and_is_bounded(header: str, field: str, value: Any) -> None:
    for response in (
        ApiResponse(429, {"retry-after": header}, ""),
        ApiResponse(429, {}, json.dumps({field: value})),
    ):
        wait = retry_after_seconds(response)
        assert wait is None or 0 <= wait <= LONGEST_WAIT


@settings(max_examples=300, deadline=None)
@given(
    delay=st.floats(min_value=0, allow_infinity=True),
    cap=st.floats(min_value=0, max_value=24 * 3600),
    attempt=st.integers(1, 10_000),
    server=st.one_of(st.none(), st.floats(min_value=0, allow_infinity=True)),
)
def test_no_wait_exceeds_max_retry_wait_jitter_included(
    delay: float, cap: float, attempt: int, server: float | None
) -> None:
    wait = backoff_seconds(delay, cap, attempt, server)
    assert 0 <= wait <= cap


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["expires_in", "expiresIn", "expires", "expiresAt", "expiry"]),
    value=JSON_NUMBER,
)
def test_a_token_expiry_of_any_size_gives_a_usable_bounded_lifetime(field: str, value: Any) -> None:
    before = time.time()
    token = parse_token_answer(
        json.loads(json.dumps({"access_token": ACCESS, field: value})),
        "https://api.writetext.ai",
        "api.writetext.ai",
    )
    lifetime = token.expires_at - before
    assert SHORTEST_LIFETIME - 1 <= lifetime <= LONGEST_LIFETIME + 1
    assert before < token.refresh_at < token.expires_at


@pytest.mark.parametrize("field", ["retry_delay", "max_retry_wait"])
def test_an_endless_wait_setting_is_refused_naming_the_field(
    set_connection: Callable[..., str], field: str
) -> None:
    conn_id = set_connection("endless", "useapi", password="tok-123456")
    settings: dict[str, Any] = {field: math.inf}
    with pytest.raises(ConnectionConfigError, match=field):
        UseApiHook(conn_id, **settings).check_connection()


@pytest.mark.parametrize("value", ["1e308", "inf", 1e308, 24 * 3600 + 1])
def test_an_endless_max_retry_wait_is_refused_naming_the_field(
    set_connection: Callable[..., str], value: Any
) -> None:
    conn_id = set_connection("wait", "useapi", password="tok-123456")
    with pytest.raises(ConnectionConfigError, match="max_retry_wait"):
        UseApiHook(conn_id, max_retry_wait=value).check_connection()


# ---------------------------------------------------------------------- 3. through a server


def hook_on(server_url: str, api: str, **params: Any) -> Any:
    conn = Connection(
        conn_id=f"bound_{api}",
        conn_type="writetext" if api == "writetext" else "useapi",
        host=server_url,
        password=WRITETEXT_KEY if api == "writetext" else USEAPI_TOKEN,
    )
    kind = WriteTextHook if api == "writetext" else UseApiHook
    hook = kind(conn.conn_id, **{**FAST, **params})
    hook.use_connection(conn)
    return hook


def token_then(answer: Callable[[Request], Any], **token: Any) -> Callable[[Request], Any]:
    """A route: WriteText's token call answered with ``ACCESS`` for this server's region,
    every other call with ``answer(request)``."""
    box: dict[str, str] = {}

    def route(request: Request) -> Any:
        if request.call == "token":
            return reply_json(200, {"access_token": ACCESS, "region": box["host"], **token})
        return answer(request)

    route.box = box  # type: ignore[attr-defined]
    return route


@contextlib.contextmanager
def serving(route: Callable[[Request], Any]) -> Iterator[Any]:
    with hostile(route) as server:
        if hasattr(route, "box"):
            route.box["host"] = server.host
        yield server


def call(hook: Any, mode: str, name: str, *args: Any) -> tuple[Any, float, float]:
    """Run ``hook.<name>`` on a path; the result (or the error), wall seconds, and the longest
    the event loop went without running another task (0 on the sync path)."""
    started = time.monotonic()
    if mode == "sync":
        try:
            result: Any = getattr(hook, name)(*args)
        except Exception as error:  # judged by the test
            result = error
        finally:
            hook.close()
        return result, time.monotonic() - started, 0.0

    async def run() -> tuple[Any, float]:
        gaps = [0.0]
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.ensure_future(ticker())
        try:
            outcome: Any = await getattr(hook, f"a{name}")(*args)
        except Exception as error:  # judged by the test
            outcome = error
        finally:
            stop.set()
            await tick
            await hook.aclose()
        return outcome, max(gaps)

    result, frozen = asyncio.run(run())
    return result, time.monotonic() - started, frozen


def shown_of(result: Any) -> list[str]:
    """What a user would see of a call's end: an error's text, or a result's texts."""
    if isinstance(result, BaseException):
        return [str(result), str(getattr(result, "server_message", "") or "")]
    return [str(getattr(result, "message", "")), str(getattr(result, "raw_status", "") or "")]


JSON_STRING_BACKSLASHES = '"' + "\\\\" * 450_000 + '"'


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("api", ["useapi", "writetext"])
@pytest.mark.parametrize(
    "answer",
    [
        backslash_error(status=404),
        backslash_error(status=400),
        reply(404, JSON_STRING_BACKSLASHES, {"Content-Type": "application/json"}),
        reply(500, "%25" * 300_000, {"Content-Type": "text/plain"}),
        reply(400, '{"error": "' + "&#0" * 300_000 + '"}', {"Content-Type": "application/json"}),
    ],
    ids=["404 backslashes", "400 backslashes", "JSON string", "%25 run", "&#0 run"],
)
def test_a_hostile_megabyte_error_body_is_cleaned_without_freezing_the_loop(
    mode: str, api: str, answer: Any
) -> None:
    route = token_then(lambda request: answer)
    with serving(route) as server:
        hook = hook_on(server.url, api)
        result, seconds, frozen = call(hook, mode, "get_job", "job-1")
    assert isinstance(result, CancelApiError), result
    assert seconds < CALL_SECONDS
    assert frozen < CALL_SECONDS / 2
    for text in shown_of(result):
        assert_shown_safely(text, USEAPI_TOKEN, WRITETEXT_KEY, ACCESS, bound=2 * TEXT_LIMIT)


def test_a_token_refusal_of_a_megabyte_of_backslashes_is_cleaned_quickly() -> None:
    with serving(lambda request: backslash_error(status=401)) as server:
        result, seconds, _ = call(hook_on(server.url, "writetext"), "sync", "get_job", "r1")
    assert isinstance(result, CancelApiError)
    assert seconds < CALL_SECONDS
    assert_shown_safely(str(result), WRITETEXT_KEY, bound=2 * TEXT_LIMIT)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_forging_raw_status_is_one_bounded_line(mode: str) -> None:
    with serving(token_then(lambda request: forged_status())) as server:
        state, _, _ = call(hook_on(server.url, "writetext"), mode, "get_job", "r1")
    assert state.raw_status.startswith("Running [2026-12-08T00:00:00.000+0000] {c")
    assert state.raw_status.endswith("characters cut]")
    assert_shown_safely(state.raw_status, bound=STATUS_LIMIT)
    assert_shown_safely(state.message, bound=TEXT_LIMIT)
    assert_shown_safely(json.dumps(state.to_dict()), bound=2 * TEXT_LIMIT)


def quoting_the_token(status: str, size: int = 0) -> Callable[[Request], Any]:
    """useapi job reads of ``status`` whose ``error`` quotes the token raw, percent-encoded
    and JSON-escaped twice, with ``size`` characters more."""
    said = (
        f"auth {USEAPI_TOKEN} / {quote(USEAPI_TOKEN, safe='')} / "
        f"{json.dumps(json.dumps(USEAPI_TOKEN))}" + FORGED_LINE + "y" * size
    )
    return lambda request: reply_json(200, {"jobid": "job-1", "status": status, "error": said})


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_job_error_quoting_the_token_is_scrubbed_where_it_is_read(mode: str) -> None:
    with serving(quoting_the_token("started", 400_000)) as server:
        state, _, _ = call(hook_on(server.url, "useapi"), mode, "get_job", "job-1")
    assert state.message.startswith("auth *** / *** / ")
    assert_shown_safely(state.message, USEAPI_TOKEN, bound=TEXT_LIMIT)


# ---------------------------------------------------------------------- 4. where users see it


@contextlib.contextmanager
def connection(monkeypatch: pytest.MonkeyPatch, api: str, url: str) -> Iterator[str]:
    conn_id = f"shown_{api}"
    secret = WRITETEXT_KEY if api == "writetext" else USEAPI_TOKEN
    data = {"conn_type": "writetext" if api == "writetext" else "useapi"}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**data, "host": url, "password": secret})
    )
    yield conn_id


def log_lines(all_logs: Callable[[], str]) -> list[str]:
    return all_logs().split("\n")


def assert_logs_clean(lines: list[str], *secrets: str) -> None:
    """No line forged, none longer than a few bounded texts, no secret in any encoding."""
    text = "\n".join(lines)
    assert "\n[2026-12-08T00:00:00" not in text  # a forged line of its own
    assert "\\n[2026-12-08T00:00:00" not in text  # the same line break, escaped by a repr
    assert max(map(len, lines)) < 8 * TEXT_LIMIT
    for secret in secrets:
        leaked = [form for form in secret_forms(secret) if form in text]
        assert not leaked, leaked


def test_the_operator_report_and_log_show_a_forging_status_as_one_bounded_line(
    monkeypatch: pytest.MonkeyPatch, all_logs: Callable[[], str]
) -> None:
    with (
        serving(token_then(lambda request: forged_status())) as server,
        connection(monkeypatch, "writetext", server.url) as conn_id,
    ):
        ti = FakeTI(None)
        operator = CancelJobOperator(
            task_id="cancel", conn_id=conn_id, job_id="r1", hook_params=dict(FAST)
        )
        report = operator.execute({"ti": ti, "task_instance": ti})
    entry = report["r1"]
    assert entry["outcome"] == "cancelling"
    assert "Running [2026-12-08" in entry["raw_status"]
    assert_shown_safely(json.dumps(entry), bound=3 * TEXT_LIMIT)
    assert all(value.isprintable() for value in entry.values())
    assert_logs_clean(log_lines(all_logs), WRITETEXT_KEY, ACCESS)


def test_the_sensors_poke_line_never_forges_a_line_nor_shows_the_token(
    monkeypatch: pytest.MonkeyPatch, all_logs: Callable[[], str]
) -> None:
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    with (
        serving(quoting_the_token("started", 400_000)) as server,
        connection(monkeypatch, "useapi", server.url) as conn_id,
    ):
        ti = FakeTI(None, task_id="wait")
        sensor = JobStatusSensor(
            task_id="wait",
            conn_id=conn_id,
            job_id="job-1",
            hook_params=dict(FAST),
            poke_interval=0.05,
            timeout=0.3,
            deferrable=False,
            cancel_on_timeout=False,
        )
        with pytest.raises(AirflowSensorTimeout):
            sensor.execute({"ti": ti, "task_instance": ti})
    lines = log_lines(all_logs)
    assert any("job-1: running" in line and "auth ***" in line for line in lines)
    assert_logs_clean(lines, USEAPI_TOKEN)


@pytest.mark.parametrize("status", ["failed", "completed"])
def test_the_trigger_event_is_bounded_and_holds_no_token(
    monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    async def first_event(conn_id: str) -> Any:
        trigger = JobStatusTrigger(
            conn_id=conn_id,
            job_ids=["job-1"],
            success_statuses=["completed"],
            poll_interval=0.05,
            hook_params=dict(FAST),
        )
        return await asyncio.wait_for(anext(trigger.run()), 10)

    with (
        serving(quoting_the_token(status, 400_000)) as server,
        connection(monkeypatch, "useapi", server.url) as conn_id,
    ):
        event = asyncio.run(first_event(conn_id)).payload
    stored = json.dumps(event)  # what the metadata DB holds
    assert event["jobs"]["job-1"]["message"].startswith("auth ***")
    assert len(stored) < 4 * TEXT_LIMIT
    assert_shown_safely(json.loads(stored)["jobs"]["job-1"]["message"], USEAPI_TOKEN)
    for form in secret_forms(USEAPI_TOKEN):
        assert form not in stored


# ---------------------------------------------------------------------- 5. numbers, served

HUGE_NUMBERS = {
    "retryAfter 310 digits": ({}, '{"retryAfter": ' + "9" * 310 + "}"),
    "retryAt 400 digits": ({}, '{"retryAt": ' + "9" * 400 + "}"),
    "retryAt 400-digit text": ({}, '{"retryAt": "' + "9" * 400 + '"}'),
    "retryAfter 1e308": ({}, '{"retryAfter": 1e308}'),
    "retryAfter NaN": ({}, '{"retryAfter": NaN}'),
    "retryAfter -1e400": ({}, '{"retryAfter": -1e400}'),
    "Retry-After 400 digits": ({"Retry-After": "9" * 400}, ""),
    "Retry-After 1e308": ({"Retry-After": "1e308"}, ""),
    "Retry-After year 99999": ({"Retry-After": "Wed, 21 Oct 99999 07:28:00 GMT"}, ""),
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name", list(HUGE_NUMBERS))
def test_a_huge_wait_from_the_server_is_capped_at_max_retry_wait(mode: str, name: str) -> None:
    headers, body = HUGE_NUMBERS[name]
    served = {"status": 0}

    def route(request: Request) -> Any:
        served["status"] += 1
        if served["status"] == 1:
            return reply(429, body, {"Content-Type": "application/json", **headers})
        return reply_json(200, {"jobid": "job-1", "status": "started"})

    with serving(route) as server:
        state, seconds, _ = call(hook_on(server.url, "useapi"), mode, "get_job", "job-1")
    assert not isinstance(state, BaseException), state
    assert state.status.value == "running"
    assert seconds < CALL_SECONDS


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("retry_delay", "max_retry_wait"), [(2.0, 0.2), (1e6, 0.2), (1e308, 0.2)])
def test_retry_delay_of_any_size_waits_at_most_max_retry_wait(
    mode: str, retry_delay: float, max_retry_wait: float
) -> None:
    served = {"status": 0}

    def route(request: Request) -> Any:
        served["status"] += 1
        if served["status"] <= 2:
            return reply(503, "busy")
        return reply_json(200, {"jobid": "job-1", "status": "started"})

    with serving(route) as server:
        hook = hook_on(
            server.url,
            "useapi",
            retry_limit=2,
            retry_delay=retry_delay,
            max_retry_wait=max_retry_wait,
        )
        state, seconds, _ = call(hook, mode, "get_job", "job-1")
    assert not isinstance(state, BaseException), state
    assert seconds < 2 * max_retry_wait + 1.5  # two capped waits and the requests


TOKEN_EXPIRIES = {
    "expires_in 400 digits": '"expires_in": ' + "9" * 400,
    "expires_in 400-digit text": '"expires_in": "' + "9" * 400 + '"',
    "expires_in 1e308": '"expires_in": 1e308',
    "expires_in NaN": '"expires_in": NaN',
    "expires_in 1e-300": '"expires_in": 1e-300',
    "expires_in -5": '"expires_in": -5',
    "expires 400 digits": '"expires": ' + "9" * 400,
    "expiresAt far text": '"expiresAt": "' + "9" * 5000 + '"',
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name", list(TOKEN_EXPIRIES))
def test_an_absurd_token_expiry_still_gives_one_token_for_a_bulk(mode: str, name: str) -> None:
    from airflow_provider_cancel.hooks import writetext

    writetext.TOKEN_CACHE.clear()
    box: dict[str, str] = {}

    def route(request: Request) -> Any:
        if request.call == "token":
            body = f'{{"access_token": "{ACCESS}", "region": "{box["host"]}", '
            return reply(200, body + TOKEN_EXPIRIES[name] + "}", {"Content-Type": "json"})
        return reply_json(200, {"id": "r", "status": "Running"})

    ids = [f"r{n}" for n in range(20)]
    with hostile(route) as server:
        box["host"] = server.host
        hook = hook_on(server.url, "writetext", retry_limit=3)  # 20 connections at once
        if mode == "sync":
            states = hook.get_jobs(ids)
        else:

            async def read() -> dict[str, Any]:
                try:
                    return await hook.aget_jobs(ids)
                finally:
                    await hook.aclose()

            states = asyncio.run(read())
        tokens = server.seen(call="token")
    assert [s.status.value for s in states.values()] == ["running"] * 20
    assert tokens == 1


# ---------------------------------------------------------------------- 6. property, served


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    before=HOSTILE_TEXT,
    after=HOSTILE_TEXT,
    data=st.data(),
    code=st.sampled_from([200, 400, 404, 500]),
    padding=st.sampled_from([0, 300_000]),
    api=st.sampled_from(["useapi", "writetext"]),
    mode=st.sampled_from(["sync", "async"]),
)
def test_hostile_text_in_any_answer_reaches_no_report_raw(
    before: str,
    after: str,
    data: st.DataObject,
    code: int,
    padding: int,
    api: str,
    mode: str,
) -> None:
    """Any text (controls, ANSI, bidi, the connection's secret and WriteText's access token in
    any encoding, 300 KB more) in a job's status and error, or in an error answer, comes out of a
    read and a cancel on either path printable, bounded and without a secret."""
    from airflow_provider_cancel.hooks import writetext

    writetext.TOKEN_CACHE.clear()
    secret = WRITETEXT_KEY if api == "writetext" else USEAPI_TOKEN
    known = [secret, ACCESS] if api == "writetext" else [secret]  # the access token: WriteText's
    said = before + " ".join(data.draw(encoded(s)) for s in known) + after
    said += "z" * padding
    body = json.dumps({"jobid": "job-1", "id": "job-1", "status": said, "error": said})

    def answer(request: Request) -> Any:
        return reply(code, body, {"Content-Type": "application/json"})

    with serving(token_then(answer)) as server:
        shown: list[str] = []
        for name in ("get_job", "cancel_job"):
            result, seconds, frozen = call(hook_on(server.url, api), mode, name, "job-1")
            assert seconds < CALL_SECONDS
            assert frozen < CALL_SECONDS / 2
            shown += shown_of(result)
    for text in shown:
        assert_shown_safely(text, *known, bound=2 * TEXT_LIMIT)
        assert all(decoded_secret_absent(text, s) for s in known)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    field=st.sampled_from(["retryAfter", "retryAt"]),
    value=st.one_of(
        st.integers(-(10**400), 10**400).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
        NUMBER_TEXT.map(json.dumps),
    ),
    header=st.one_of(st.none(), NUMBER_TEXT.filter(lambda t: t.isprintable() and t.isascii())),
    mode=st.sampled_from(["sync", "async"]),
)
def test_any_number_in_a_429_ends_in_a_typed_answer_within_the_cap(
    field: str, value: str, header: str | None, mode: str
) -> None:
    headers = {"Retry-After": header.strip() or "x"} if header is not None else {}
    served = {"status": 0}

    def route(request: Request) -> Any:
        served["status"] += 1
        if served["status"] == 1:
            body = f'{{"error": "slow down", "{field}": {value}}}'
            return reply(429, body, {"Content-Type": "application/json", **headers})
        return reply_json(200, {"jobid": "job-1", "status": "started"})

    with serving(route) as server:
        state, seconds, _ = call(hook_on(server.url, "useapi"), mode, "get_job", "job-1")
    assert not isinstance(state, BaseException), state
    assert seconds < CALL_SECONDS
