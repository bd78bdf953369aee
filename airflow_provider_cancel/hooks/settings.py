"""A hook's settings, read once from its arguments and its connection: numbers checked, the
secret cleaned, nothing read again per request."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from airflow_provider_cancel.exceptions import ConnectionConfigError
from airflow_provider_cancel.messages import shorten

MIB = 1024 * 1024
LONGEST_RETRY_WAIT = 24 * 3600.0
"""``max_retry_wait`` may not exceed a day (an endless sleep would outlive any task)."""

MAXIMA: dict[str, float] = {
    "timeout": 3600.0,
    "connect_timeout": 3600.0,
    "retry_limit": 100,
    "max_response_size": 1024 * MIB,
    "pool_size": 1000,
}
"""The largest value of each setting (the others are bounded where they are used): one attempt
waits at most an hour to connect and an hour for its answer, a call makes at most 101
attempts, an answer is at most 1 GiB, a pool holds at most 1,000 connections. A larger or infinite value is refused with the
connection, not met as an ``OverflowError`` at request time."""


@dataclass(frozen=True)
class HookSettings:
    """How a hook talks to its API. Hook arguments win over the connection's extra, which wins
    over these defaults (``connect_timeout`` defaults to ``min(timeout, 10)``)."""

    retry_limit: int = 3
    """Retries after connection errors, timeouts, 429 and 5xx."""
    retry_delay: float = 1.0
    """First backoff in seconds, doubled each retry, with jitter."""
    timeout: float = 30.0
    """Read timeout of one request in seconds."""
    connect_timeout: float = 10.0
    max_retry_wait: float = 60.0
    """Cap on one wait, jitter and a server's ``Retry-After`` included (at most a day)."""
    max_response_size: int = MIB
    """Larger answers are refused (an endless body cannot fill the worker's memory)."""
    verify: bool = True
    """TLS verification."""
    pool_size: int = 16
    """Connections kept open per host, i.e. useful concurrency."""

    @property
    def attempt_seconds(self) -> float:
        """The longest one attempt may take: connecting, then the whole answer."""
        return self.connect_timeout + self.timeout

    @classmethod
    def resolve(
        cls, conn_id: str, arguments: Mapping[str, Any], extra: Mapping[str, Any]
    ) -> HookSettings:
        """Settings from hook ``arguments`` (``None`` means unset) and connection ``extra``;
        a bad value raises :class:`ConnectionConfigError` naming the connection and the field."""
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = spec.name
            value = arguments.get(name)
            if value is None:
                value = extra.get(name)
            if value is None:
                continue
            if name == "verify":
                values[name] = _flag(value)
                continue
            kind = int if name in ("retry_limit", "max_response_size", "pool_size") else float
            values[name] = _number(conn_id, name, value, kind)
        if "connect_timeout" not in values:
            values["connect_timeout"] = min(values.get("timeout", cls.timeout), 10.0)
        return cls(**values)


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)


def _number(conn_id: str, name: str, value: Any, kind: type) -> Any:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: {name}={shorten(repr(value), 60)} is not a {kind.__name__}"
        ) from None
    strictly_positive = name in ("timeout", "connect_timeout", "max_response_size", "pool_size")
    most = MAXIMA.get(name, math.inf)
    # NaN compares false with everything: only "within the bounds" lets it through, never.
    if not ((number > 0 if strictly_positive else number >= 0) and number <= most):
        need = "> 0" if strictly_positive else ">= 0"
        if most < math.inf:
            need += f" and <= {most:.0f}"
        raise ConnectionConfigError(f"Connection {conn_id!r}: {name} must be {need}")
    if name == "max_retry_wait" and number > LONGEST_RETRY_WAIT:  # inf too: a sleep must end
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: max_retry_wait must be at most {LONGEST_RETRY_WAIT:g}"
        )
    if isinstance(number, float) and not math.isfinite(number):  # "inf", "1e400": no clock
        raise ConnectionConfigError(f"Connection {conn_id!r}: {name} must be a finite number")
    return number


def clean_secret(conn_id: str, label: str, value: Any) -> str:
    """The connection's secret without the whitespace a copy-paste or an env file leaves around
    it. One with a control character inside (CR, LF, TAB...) or a non-ASCII one could never be
    sent as a header: it is refused up front, naming the field, never the value."""
    secret = str(value).strip() if value is not None else ""
    if not secret:
        raise ConnectionConfigError(
            f"Connection {conn_id!r} has no {label}: set it as the connection's password"
        )
    if not all(32 <= ord(char) < 127 for char in secret):
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: the {label} (the connection's password) contains a "
            "line break, another control character or a non-ASCII character, which no HTTP "
            "header can carry; paste it again without one"
        )
    return secret


HOST_NAME = re.compile(
    r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?"
    r"|\[[0-9A-Fa-f:.]+\]"
)
"""A DNS name (labels of letters, digits, ``-`` and ``_``), an IPv4 address or a bracketed IPv6
address: nothing a URL parser could read as user info, a query, a fragment or a second host."""
PATH_PREFIX = re.compile(r"(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:-]|%[0-9A-Fa-f]{2})*)*")
"""An optional path prefix (``/proxy/useapi``): path characters and percent-escapes only; no
``?``, ``#``, ``@``, backslash, space or control character."""


def without_userinfo(text: str) -> str:
    """``text`` (a host or URL someone typed) with everything up to its last ``@`` replaced by
    ``…``: a message may quote a refused host, never the user name and password in it."""
    return f"…@{text.rsplit('@', 1)[1]}" if "@" in text else text


def connection_url(conn_id: str, host: Any, port: Any, default: str) -> str:
    """The API base URL from the connection's host and port fields: ``http`` or ``https`` (the
    default), a host, an optional port (in the host or in the port field, not both) and an
    optional path prefix. Anything else — user info, a query, a fragment, a control character
    or a space, a port given twice — raises :class:`ConnectionConfigError` naming the field,
    before any request; the message never quotes user info."""
    text = str(host or "").strip()
    if not text:
        return default
    shown = shorten(without_userinfo(text), 80)

    def refuse(why: str, field: str = "host") -> ConnectionConfigError:
        return ConnectionConfigError(f"Connection {conn_id!r}: {field} {shown!r} refused: {why}")

    scheme, found, rest = text.partition("://")
    if not found:
        scheme, rest = "https", text
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise refuse("the scheme is not http or https")
    authority, slash, path = rest.partition("/")
    path = (slash + path).rstrip("/")
    if "@" in rest:
        raise refuse(
            "it holds user info (user@ or user:password@); the secret goes in the password"
        )
    if any(char in rest for char in "?#"):
        raise refuse("it holds a query (?) or a fragment (#); give a host and an optional path")
    if not PATH_PREFIX.fullmatch(path) or any(ord(c) <= 32 or ord(c) >= 127 for c in rest):
        raise refuse("it holds a space, a control or non-ASCII character, or a backslash")
    name, in_host = authority, None
    if not authority.endswith("]") and ":" in authority:
        name, in_host = authority.rsplit(":", 1)
    if not HOST_NAME.fullmatch(name):
        raise refuse("it is not a host name or an IP address")
    if in_host is not None and not _is_port(in_host):
        raise refuse("its port is not a number from 1 to 65535")
    if port not in (None, "", 0, "0"):  # Airflow's connection test sends port 0 for "none"
        if in_host is not None:
            raise refuse(f"a port is given twice, in the host and in the port field ({port!r})")
        if isinstance(port, bool) or not _is_port(str(port)):
            raise ConnectionConfigError(
                f"Connection {conn_id!r}: port {shorten(repr(port), 40)} is not a number from "
                "1 to 65535"
            )
        authority = f"{authority}:{int(port)}"
    return f"{scheme}://{authority}{path}"


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5 and 0 < int(text) < 65536
