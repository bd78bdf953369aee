"""A hook's settings, read once from its arguments and its connection: numbers checked, the
secret cleaned, nothing read again per request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from airflow_provider_cancel.exceptions import ConnectionConfigError

MIB = 1024 * 1024
LONGEST_RETRY_WAIT = 24 * 3600.0
"""``max_retry_wait`` may not exceed a day (an endless sleep would outlive any task)."""


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
            f"Connection {conn_id!r}: {name}={value!r} is not a {kind.__name__}"
        ) from None
    strictly_positive = name in ("timeout", "connect_timeout", "max_response_size", "pool_size")
    if number != number or number < 0 or (number == 0 and strictly_positive):  # NaN too
        need = "> 0" if strictly_positive else ">= 0"
        raise ConnectionConfigError(f"Connection {conn_id!r}: {name} must be {need}")
    if name == "max_retry_wait" and number > LONGEST_RETRY_WAIT:  # inf too: a sleep must end
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: max_retry_wait must be at most {LONGEST_RETRY_WAIT:g}"
        )
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
