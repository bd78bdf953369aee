"""When a server says to try again: ``Retry-After`` (a delay or an HTTP date), or useapi.net's
``retryAfter`` (seconds) and ``retryAt`` (a time) in a JSON error body.

Pure parsing, used by :class:`~airflow_provider_cancel.hooks.transport.Transport`'s retry wait::

    retry_after_seconds(ApiResponse(429, {"retry-after": "2"}, ""))  # 2.0
"""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_cancel.hooks.transport import ApiResponse

LONGEST_WAIT = 24 * 3600.0
"""A server's wait is read as at most this (a 310-digit ``retryAfter``, a ``retryAt`` of 400
digits, ``1e308``); the transport then caps it at the hook's ``max_retry_wait``."""
LONGEST_TEXT = 64
"""A value written as text longer than this (digits aside) is no delay or date: ignored, so
parsing stays cheap."""


def retry_after_seconds(response: ApiResponse | None) -> float | None:
    """When the server says to retry, in seconds from now: the ``Retry-After`` header (a delay
    or an HTTP date), else ``retryAfter`` (seconds) or ``retryAt`` (a time) in a JSON error body,
    as useapi.net sends them, at most :data:`LONGEST_WAIT`. A negative, NaN or unparsable
    value is ignored (the backoff applies); none raises, whatever its size."""
    if response is None:
        return None
    header = response.headers.get("retry-after")
    if header:
        return _delay(header) if _number(header) is not None else _until(header, http_date=True)
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if body.get("retryAfter") is not None:
        return _delay(body["retryAfter"])
    if body.get("retryAt") is not None:
        return _until(body["retryAt"], http_date=False)
    return None


def _number(value: object) -> float | None:
    """A finite or infinite number from JSON or text (an int too large for a float is
    ``inf``); ``None`` for NaN, text that is not a plain number ("inf", "nan") and the rest."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        digits = text.isascii() and text.isdigit()  # any length: float() reads it linearly
        if text.isalpha() or (len(text) > LONGEST_TEXT and not digits):
            return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # a JSON integer beyond any float
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _delay(value: object) -> float | None:
    seconds = _number(value)
    return min(seconds, LONGEST_WAIT) if seconds is not None and seconds >= 0 else None


def _until(value: object, *, http_date: bool) -> float | None:
    """Seconds until a point in time: epoch seconds or milliseconds, ISO-8601, or an HTTP date."""
    number = _number(value)
    if number is not None:
        when = number / 1000 if number > 1e11 else number
    elif isinstance(value, str) and len(value) <= LONGEST_TEXT:
        try:
            parsed = (
                email.utils.parsedate_to_datetime(value)
                if http_date
                else datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            )
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=datetime.UTC)
            when = parsed.timestamp()
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    else:
        return None
    return min(max(0.0, when - time.time()), LONGEST_WAIT)
