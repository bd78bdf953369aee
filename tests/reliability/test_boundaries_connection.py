"""Boundaries of the connection: its host and port fields, the WriteText region extra and the
hook settings (from hook arguments or extras). Hostile values are refused with
``ConnectionConfigError`` naming the field, before any request, on both paths; no message
quotes user info (docs/security.md, "Connection fields, extras and hook settings")."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airflow_provider_cancel.exceptions import ConnectionConfigError
from airflow_provider_cancel.hooks.settings import MAXIMA, connection_url
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.writetext import WriteTextHook
from tests.conftest import HookRunner
from tests.hostile_server import HostileServer, reply_json

from .fault_matrix import USEAPI_TOKEN, WRITETEXT_KEY

PASSWORD = "hunter2-Pa55w0rd"
"""User info in a hostile host: no message may quote it."""
HOOKS = {"useapi": UseApiHook, "writetext": WriteTextHook}
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def listening() -> Iterator[HostileServer]:
    """Where every hostile host points: it answers anything, and counts what reached it."""
    server = HostileServer(lambda request: reply_json(200, {"status": "started"}))
    yield server
    server.close()


def connection(conn_type: str, host: Any, port: Any = None, extra: Any = None) -> Any:
    from airflow.models.connection import Connection

    secret = WRITETEXT_KEY if conn_type == "writetext" else USEAPI_TOKEN
    return Connection(
        conn_id="hostile",
        conn_type=conn_type,
        host=host,
        port=port,
        password=secret,
        extra=json.dumps(extra or {}),
    )


def refused(runner: HookRunner, conn: Any, **params: Any) -> ConnectionConfigError:
    """The error a call on ``conn`` raises on ``runner``'s path (the test fails without one)."""
    hook = HOOKS[conn.conn_type]("hostile", **params)
    hook.connection = conn  # as fetched, not yet checked: the call itself must check it
    with pytest.raises(ConnectionConfigError) as raised:
        runner(hook, "get_job", "job-1")
    return raised.value


# ---------------------------------------------------------------------- host and port

INJECTED = st.sampled_from(
    [
        "?x=1",
        "?",
        "#",
        "#/v2/jobs",
        "/a?b",
        f"user:{PASSWORD}@",
        f"{PASSWORD}@",
        "\r\nX-Injected: 1",
        "\n",
        "\r",
        " ",
        "\t",
        "\x00",
        "\x7f",
        "\\",
        "\u2028",
        "é",
        "%0d%0a@",
        "@",
    ]
)


@PROPERTY
@given(
    conn_type=st.sampled_from(sorted(HOOKS)),
    scheme=st.sampled_from(["", "http://", "https://", "HTTP://"]),
    where=st.sampled_from(["before host", "after host", "after port", "in path", "at end"]),
    injected=INJECTED,
)
def test_a_hostile_host_is_refused_before_any_request(
    listening: HostileServer,
    both_paths: tuple[HookRunner, HookRunner],
    conn_type: str,
    scheme: str,
    where: str,
    injected: str,
) -> None:
    port = str(listening.port)
    parts = {
        "before host": f"{injected}127.0.0.1:{port}/api",
        "after host": f"127.0.0.1{injected}:{port}/api",
        "after port": f"127.0.0.1:{port}{injected}/api",
        "in path": f"127.0.0.1:{port}/a{injected}pi",
        "at end": f"127.0.0.1:{port}/api{injected}",
    }
    host = scheme + parts[where]
    assume(host == host.strip())  # whitespace around the host is a copy-paste's, dropped
    before = listening.seen()
    for runner in both_paths:
        error = refused(runner, connection(conn_type, host))
        assert "host" in str(error)
        assert PASSWORD not in str(error)
    assert listening.seen() == before


@pytest.mark.parametrize(
    "host",
    ["ftp://127.0.0.1", "file:///etc/passwd", "javascript:alert(1)", "//127.0.0.1", "http://"],
)
def test_a_host_with_another_scheme_or_none_is_refused(
    listening: HostileServer, run_hook: HookRunner, host: str
) -> None:
    before = listening.seen()
    assert "host" in str(refused(run_hook, connection("useapi", host)))
    assert listening.seen() == before


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("http://127.0.0.1:{port}", "{port}"),
        ("127.0.0.1:{port}", 443),
        ("http://127.0.0.1:{port}/prefix", 8080),
    ],
)
def test_a_port_given_twice_is_refused(
    listening: HostileServer, run_hook: HookRunner, host: str, port: Any
) -> None:
    before = listening.seen()
    here = listening.port
    port = int(port.format(port=here)) if isinstance(port, str) else port
    error = refused(run_hook, connection("useapi", host.format(port=here), port))
    assert "port is given twice" in str(error)
    assert listening.seen() == before


@PROPERTY
@given(
    port=st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=65536),
        st.sampled_from(
            ["abc", "80x", "1e3", " ", "\uff18\uff10", "99999", "-1", True, 80.5, "0x50"]
        ),
    )
)
def test_a_bad_port_field_is_refused(
    listening: HostileServer, both_paths: tuple[HookRunner, HookRunner], port: Any
) -> None:
    before = listening.seen()
    for runner in both_paths:
        assert "port" in str(refused(runner, connection("useapi", "127.0.0.1", port)))
    assert listening.seen() == before


@pytest.mark.parametrize("port_in_host", ["0", "65536", "99999", "x", "", "80:80"])
def test_a_bad_port_in_the_host_is_refused(run_hook: HookRunner, port_in_host: str) -> None:
    assert "host" in str(refused(run_hook, connection("useapi", f"127.0.0.1:{port_in_host}")))


LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@PROPERTY
@given(
    scheme=st.sampled_from(["", "http://", "https://"]),
    labels=st.lists(LABEL, min_size=1, max_size=4),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    port_in_host=st.booleans(),
    path=st.lists(st.from_regex(r"[A-Za-z0-9._~-]{1,8}", fullmatch=True), max_size=3),
    trailing_slash=st.booleans(),
)
def test_a_host_an_optional_port_and_path_prefix_make_the_base_url(
    scheme: str,
    labels: list[str],
    port: int | None,
    port_in_host: bool,
    path: list[str],
    trailing_slash: bool,
) -> None:
    name = ".".join(labels)
    prefix = "".join(f"/{segment}" for segment in path)
    host_port = f":{port}" if port is not None and port_in_host else ""
    host = f"{scheme}{name}{host_port}{prefix}{'/' if trailing_slash else ''}"
    field_port = port if not port_in_host else None
    expected = f"{scheme or 'https://'}{name}{f':{port}' if port else ''}{prefix}"
    assert connection_url("c", host, field_port, "https://default") == expected


def test_an_empty_host_is_the_default_and_port_zero_is_no_port() -> None:
    assert connection_url("c", None, None, "https://api.useapi.net") == "https://api.useapi.net"
    assert connection_url("c", "  ", 0, "https://api.useapi.net") == "https://api.useapi.net"
    assert connection_url("c", "http://127.0.0.1:8765", 0, "x") == "http://127.0.0.1:8765"
    assert connection_url("c", "[::1]:8765", None, "x") == "https://[::1]:8765"


def test_a_refused_region_never_quotes_its_user_info(
    listening: HostileServer, run_hook: HookRunner
) -> None:
    before = listening.seen()
    conn = connection(
        "writetext",
        f"http://127.0.0.1:{listening.port}",
        extra={"region": f"https://user:{PASSWORD}@api-eu.writetext.ai"},
    )
    error = refused(run_hook, conn)
    assert "region" in str(error)
    assert PASSWORD not in str(error)
    assert "user" not in str(error)
    assert listening.seen() == before


# ---------------------------------------------------------------------- settings

BOUNDED = ("timeout", "connect_timeout")
HOSTILE_NUMBERS = st.one_of(
    st.sampled_from(
        ["inf", "-inf", "nan", "Infinity", "1e300", "1e400", "-1", "0", "3600.5", "abc", ""]
    ).filter(bool),
    st.sampled_from([math.inf, -math.inf, math.nan, 1e300, -1.0, 0, 0.0, 3601, 10**400]),
    st.floats(min_value=3600, exclude_min=True),
    st.floats(max_value=0),
    st.sampled_from([True, False, [1], {"a": 1}]),
)


@PROPERTY
@given(
    name=st.sampled_from(BOUNDED),
    value=HOSTILE_NUMBERS,
    source=st.sampled_from(["argument", "extra"]),
    conn_type=st.sampled_from(sorted(HOOKS)),
)
def test_a_hostile_timeout_is_refused_naming_the_field_before_any_request(
    listening: HostileServer,
    both_paths: tuple[HookRunner, HookRunner],
    name: str,
    value: Any,
    source: str,
    conn_type: str,
) -> None:
    before = listening.seen()
    if source == "extra" and isinstance(value, float) and not math.isfinite(value):
        value = str(value)  # JSON has no inf or NaN: an extra would hold the text
    if source == "extra" and isinstance(value, int) and abs(value) > 10**300:
        value = str(value)
    extra = {name: value} if source == "extra" else {}
    params = {name: value} if source == "argument" else {}
    host = f"http://127.0.0.1:{listening.port}"
    for runner in both_paths:
        error = refused(runner, connection(conn_type, host, extra=extra), **params)
        assert name in str(error)
    assert listening.seen() == before


def test_the_bounds_are_stated_in_the_message() -> None:
    from airflow_provider_cancel.hooks.settings import HookSettings

    for name in BOUNDED:
        with pytest.raises(ConnectionConfigError, match=rf"{name} must be > 0 and <= 3600"):
            HookSettings.resolve("c", {name: "inf"}, {})
    assert MAXIMA["timeout"] == MAXIMA["connect_timeout"] == 3600
    ok = HookSettings.resolve("c", {"timeout": 3600, "connect_timeout": "3600"}, {})
    assert ok.attempt_seconds == 7200


@PROPERTY
@given(
    name=st.sampled_from(["retry_limit", "max_response_size", "pool_size"]),
    value=st.one_of(
        st.sampled_from(["inf", "nan", "1e3", "abc", "-1", "10**9", True, 1.5e300, [3]]),
        st.integers(max_value=-1),
        st.sampled_from([101, 1024**3 + 1, 10**400]),
    ),
)
def test_a_hostile_count_or_size_is_refused_naming_the_field(
    listening: HostileServer, run_hook: HookRunner, name: str, value: Any
) -> None:
    if name != "retry_limit" and value == 101:
        value = 0  # 101 connections or bytes are fine; none is not
    if name == "pool_size" and value == 1024**3 + 1:
        value = 0
    before = listening.seen()
    host = f"http://127.0.0.1:{listening.port}"
    assert name in str(refused(run_hook, connection("useapi", host), **{name: value}))
    assert listening.seen() == before
