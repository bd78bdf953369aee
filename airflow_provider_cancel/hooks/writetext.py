"""What WriteText.ai's API means: the API-key → access-token exchange, region routing, bulk
generation requests and their statuses."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import datetime
import hashlib
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import mask_secret

from airflow_provider_cancel.answers import CancelCodes
from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    CancelApiError,
    ConnectionConfigError,
    InvalidResponseError,
    TransportError,
)
from airflow_provider_cancel.hooks.apis import WRITETEXT
from airflow_provider_cancel.hooks.base import JobApiHook
from airflow_provider_cancel.hooks.scrub import clean_text
from airflow_provider_cancel.hooks.settings import without_userinfo
from airflow_provider_cancel.hooks.transport import ApiRequest, Flow
from airflow_provider_cancel.job_ids import encode_path_segment
from airflow_provider_cancel.messages import shorten
from airflow_provider_cancel.status import (
    JobState,
    JobStatus,
    map_raw_status,
)

STATUSES = {
    "pending": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "cancelling": JobStatus.CANCELLING,
    "cancelled": JobStatus.CANCELLED,
    "completed": JobStatus.COMPLETED,
    "timedout": JobStatus.FAILED,
    "failed": JobStatus.FAILED,
}

CANCEL_CODES = CancelCodes(
    # WriteText forgets finished requests: "not found" may also mean "long done".
    missing=frozenset({404}),
    unclear_refusals=frozenset({400, 409, 422}),
)

TOKEN_PATH = "/web/apitoken/accesstoken"
TOKEN_FIELDS = ("access_token", "accessToken", "token")
LIFETIME_FIELDS = ("expires_in", "expiresIn")
EXPIRY_TIME_FIELDS = ("expires", "expiresAt", "expires_at", "expiration", "expiry")
DEFAULT_LIFETIME = 24 * 3600.0
SHORTEST_LIFETIME = 30.0
LONGEST_LIFETIME = 30 * 24 * 3600.0
"""A lifetime the answer gives is read within these bounds (a 400-digit ``expires_in`` lives 30
days, a millisecond one 30 s: a bulk still shares one token; a token refused before its time is
fetched again once, on its 401)."""
LONGEST_TIME_TEXT = 64
"""An expiry written as text longer than this is no ISO-8601 time: not parsed."""
REFRESH_MARGIN = 300.0
"""Refresh this long before expiry (or at 90 % of a shorter lifetime)."""
FAILURE_REUSE_SECONDS = 10.0
"""A failed token exchange is the answer for every caller waiting on it and for this long
after: a bulk cancel with a wrong key makes one token request, not one per job."""

_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"|\[[0-9A-Fa-f:.]+\]"
)


def job_state(job_id: str, body: Any) -> JobState:
    """Normalise a WriteText request body (``docs/statuses.md``)."""
    raw = body.get("status") if isinstance(body, dict) else None
    return JobState(
        job_id, map_raw_status(raw, STATUSES), raw if isinstance(raw, str) else None, body
    )


@dataclass(frozen=True)
class AccessToken:
    """An access token, the region base URL it is for, and when to refresh it."""

    token: str
    region_url: str
    expires_at: float
    refresh_at: float
    after_refusal: bool = False
    """Fetched because a job call refused the previous token (401)."""
    obtained: float = field(default_factory=time.monotonic)


def region_url(region: str, token_url: str) -> str:
    """The base URL of a region given as a host with an optional port (``api-eu.writetext.ai``,
    ``127.0.0.1:8081``), or ``ValueError`` saying why it is not one. A scheme may come with it,
    but never one that moves the access token from https to plain http; a path, query,
    fragment or user info never."""
    scheme = urlsplit(token_url).scheme or "https"
    text = region.strip()
    if "://" in text:
        given, text = text.split("://", 1)
        given = given.lower()
        if given not in ("http", "https"):
            raise ValueError(f"scheme {given!r} is not http or https")
        if scheme == "https" and given == "http":
            raise ValueError("it would send the access token over plain http")
        scheme = given
    text = text.removesuffix("/")
    host, port = text, ""
    if not text.endswith("]") and ":" in text:
        host, port = text.rsplit(":", 1)
    # ASCII and short: never int() of "²" (a digit to isdigit) or of 5,000 digits
    digits = port.isascii() and port.isdigit() and len(port) <= 5
    if not _HOST.fullmatch(host) or (port and not (digits and 0 < int(port) < 65536)):
        raise ValueError("it is not a host with an optional port")
    return f"{scheme}://{text}"


def _clean_token(value: str) -> str:
    token = value.strip()
    if not all(33 <= ord(char) < 127 for char in token):
        # It could never be sent as a header; its value is not shown.
        raise InvalidResponseError(
            "WriteText.ai token answer: the access token contains whitespace, a control "
            "character (such as a line break) or a non-ASCII character; refused"
        )
    return token


def parse_token_answer(
    body: Any,
    token_url: str,
    region_override: str | None,
    clean: Callable[[str, int], str] | None = None,
) -> AccessToken:
    """Read the token endpoint's JSON, accepting every field-name variant we have seen. Text
    from the answer quoted in an error goes through ``clean`` (the hook's scrubber; by default
    :func:`~airflow_provider_cancel.hooks.scrub.clean_text` without secrets)."""
    if clean is None:
        clean = _clean_text
    if not isinstance(body, dict):
        raise InvalidResponseError("WriteText.ai token answer is not a JSON object")
    token = next((body[k] for k in TOKEN_FIELDS if isinstance(body.get(k), str) and body[k]), None)
    if token is None:
        raise InvalidResponseError(
            "WriteText.ai token answer has no access token "
            f"(looked for {', '.join(TOKEN_FIELDS)}; got fields "
            f"{clean(', '.join(sorted(body)[:10]), 200)})"
        )
    region = region_override or body.get("region")
    if not isinstance(region, str) or not region.strip():
        region = urlsplit(token_url).netloc
    try:
        base = region_url(region, token_url)
    except ValueError as why:
        raise InvalidResponseError(
            f"WriteText.ai token answer: region {clean(without_userinfo(region), 80)!r} "
            f"refused ({why}); "
            "no request was sent there"
        ) from None
    now = time.time()
    lifetime = _lifetime(body, now)
    margin = min(REFRESH_MARGIN, lifetime * 0.1)
    return AccessToken(_clean_token(token), base, now + lifetime, now + lifetime - margin)


def _clean_text(text: str, limit: int) -> str:
    return clean_text(text, (), limit)


def _lifetime(body: Mapping[str, Any], now: float) -> float:
    """Seconds the token lives: a lifetime field, else an absolute expiry, else 24 h; within
    ``SHORTEST_LIFETIME`` and ``LONGEST_LIFETIME`` whatever the number (NaN and negative ones
    are ignored, an overflowing one is the longest)."""
    for key in LIFETIME_FIELDS:
        seconds = _number(body.get(key))
        if seconds is not None and seconds > 0:
            return _within_bounds(seconds)
    for key in EXPIRY_TIME_FIELDS:
        expires_at = _timestamp(body.get(key))
        if expires_at is not None and expires_at > now:
            return _within_bounds(expires_at - now)
    return DEFAULT_LIFETIME


def _within_bounds(seconds: float) -> float:
    return min(max(seconds, SHORTEST_LIFETIME), LONGEST_LIFETIME)


def _number(value: Any) -> float | None:
    """A number from JSON or text; ``inf`` for one too large for a float (a 310-digit integer),
    ``None`` for anything else (NaN included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and len(value) > LONGEST_TIME_TEXT:
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        return math.inf if value > 0 else None
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _timestamp(value: Any) -> float | None:
    """An absolute time as epoch seconds: a number (seconds, or milliseconds) or ISO-8601."""
    number = _number(value)
    if number is not None:
        return number / 1000 if number > 1e11 else number
    if not isinstance(value, str) or not value or len(value) > LONGEST_TIME_TEXT:
        return None
    import pendulum

    try:
        parsed = pendulum.parse(value)
    except (ValueError, OverflowError, pendulum.parsing.exceptions.ParserError):
        return None
    # An ISO duration or interval ("P1D") is not a point in time: fall back to the default.
    return parsed.timestamp() if isinstance(parsed, datetime.datetime) else None


class _TokenCache:
    """Access tokens per connection, shared by every hook, thread and event loop of a process.

    One caller (a thread, or a coroutine on any event loop) fetches while every other waits —
    threads blocked, coroutines awaiting without blocking their loop — and then reuses the
    token, so a cold cache makes exactly one token request per connection, however many
    threads and loops ask at once (see :meth:`take_off`).
    """

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._issued: dict[str, list[str]] = {}
        self._failures: dict[str, tuple[CancelApiError, float]] = {}
        self._refused: set[str] = set()
        self._flights: dict[str, concurrent.futures.Future[None]] = {}
        self._guard = threading.Lock()

    def valid(self, key: str) -> AccessToken | None:
        token = self._tokens.get(key)
        return token if token is not None and time.time() < token.refresh_at else None

    def store(self, key: str, token: AccessToken) -> AccessToken:
        with self._guard:
            if key in self._refused:
                self._refused.discard(key)
                token = replace(token, after_refusal=True)
            self._tokens[key] = token
            self._issued.setdefault(key, []).append(token.token)
            self._failures.pop(key, None)
        return token

    def failed(self, key: str, error: CancelApiError) -> None:
        """Remember a failed exchange for the callers waiting on it and those right after."""
        with self._guard:
            self._failures[key] = (error, time.monotonic())

    def recent_failure(self, key: str) -> CancelApiError | None:
        """A copy of the last failed exchange for ``key``, if it is recent."""
        error, at = self._failures.get(key, (None, 0.0))
        if error is None or time.monotonic() - at > FAILURE_REUSE_SECONDS:
            return None
        return copy.copy(error)  # each raise gets its own traceback

    def issued(self, key: str) -> list[str]:
        """Every token this process got for ``key``: error texts are scrubbed of all of them."""
        return list(self._issued.get(key, ()))

    def forget(self, key: str, token: str) -> bool:
        """A job call refused ``token`` (401): drop it, so the next caller fetches a new one.
        True when a retry with a new token is worth it; False when the refused token was
        itself fetched after a refusal moments ago (fetching more would not help, and a
        bulk would fetch once per job)."""
        with self._guard:
            cached = self._tokens.get(key)
            if cached is not None and cached.token == token:
                recent = time.monotonic() - cached.obtained < FAILURE_REUSE_SECONDS
                if cached.after_refusal and recent:
                    return False
                del self._tokens[key]
                self._refused.add(key)
        return True

    def take_off(self, key: str) -> tuple[concurrent.futures.Future[None], bool]:
        """The fetch for ``key`` under way, and whether the caller must make it (True: no
        fetch was under way; the caller fetches, then calls :meth:`land`). Others wait for
        the future — a thread-safe one, so threads and every event loop can — and then read
        the cache again."""
        with self._guard:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = concurrent.futures.Future()
            flight.set_running_or_notify_cancel()  # no waiter can cancel it for the others
            self._flights[key] = flight
            return flight, True

    def land(self, key: str, flight: concurrent.futures.Future[None]) -> None:
        """The fetch ended (a token or a failure stored, or neither if it was cancelled: then
        a waiter takes off in its turn)."""
        with self._guard:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.set_result(None)

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()
            self._issued.clear()
            self._failures.clear()
            self._refused.clear()


TOKEN_CACHE = _TokenCache()


class WriteTextHook(JobApiHook):
    """Cancel and read WriteText.ai (bulk) text-generation requests.

    Connection: type ``writetext``; password = API key; host optional (default
    ``https://api.writetext.ai``, the token endpoint's base); extra ``region`` optional (a host
    such as ``api-eu.writetext.ai``: skips using the region the token endpoint returns).

    The API key is exchanged for an access token (cached per connection and shared across
    threads and async code, refreshed before expiry and once on 401); job calls go to the
    region host with that token.

    Example::

        hook = WriteTextHook("writetext_default")
        print(hook.cancel_job("3fa85f64-5717-4562-b3fc-2c963f66afa6").outcome)
    """

    api = WRITETEXT
    cancel_codes = CANCEL_CODES

    _token_key: str | None = None
    """The token cache's key for this hook's connection, once known."""

    @property
    def _cache_key(self) -> str:
        fingerprint = hashlib.sha256(self.secret.encode()).hexdigest()[:16]
        self._token_key = (
            f"{self.conn_id}|{self.base_url}|{self.extra_value('region')}|{fingerprint}"
        )
        return self._token_key

    def token_request(self) -> ApiRequest:
        """The API key's exchange for an access token (the key goes to the token host only)."""
        return ApiRequest(
            "GET",
            TOKEN_PATH,
            call="token",
            headers={"WriteTextAI-Token": self.secret, "Accept": "application/json"},
            base_url=self.base_url,
            authenticated=False,
        )

    def token_flow(self) -> Flow[AccessToken]:
        """Exchange the API key; the new access token is registered with Airflow's masker."""
        response = yield self.token_request()
        code = response.status_code
        if code in (401, 403):
            raise AuthenticationError(
                "WriteText.ai refused the API key: check the connection's password",
                status_code=code,
                server_message=self.server_said(response),
            )
        if code in (404, 410):  # the token endpoint itself is missing: never "job not found"
            raise ConnectionConfigError(
                f"WriteText.ai has no token endpoint at {self.base_url}: check the "
                "connection's host",
                status_code=code,
                server_message=self.server_said(response),
            )
        if code != 200:
            raise self.error_for(response, call="token")
        body = self.parse_json(response, call="token")
        token = parse_token_answer(body, self.base_url, self.extra_value("region"), self.scrub)
        mask_secret(token.token)
        self.log.info(
            "WriteText.ai: got an access token for %s, valid %.0f s",
            token.region_url,
            token.expires_at - time.time(),
        )
        return token

    def _headers(self, token: AccessToken) -> tuple[str, dict[str, str]]:
        return token.region_url, {
            "Authorization": f"Bearer {token.token}",
            "Accept": "application/json",
        }

    def auth(self) -> tuple[str, dict[str, str]]:
        """The region and a valid access token, fetched once per connection for all threads
        and event loops."""
        key = self._cache_key
        waited_until = time.monotonic() + self._token_wait_seconds
        while (token := TOKEN_CACHE.valid(key)) is None:
            self._raise_recent_failure(key)
            flight, leading = TOKEN_CACHE.take_off(key)
            if not leading:
                try:
                    flight.result(timeout=max(0.0, waited_until - time.monotonic()))
                except concurrent.futures.TimeoutError:
                    raise self._waited_too_long() from None
                continue
            try:
                token = TOKEN_CACHE.store(key, self.run_flow(self.token_flow()))
            except CancelApiError as error:
                TOKEN_CACHE.failed(key, error)
                raise
            finally:
                TOKEN_CACHE.land(key, flight)
            break
        return self._headers(token)

    async def aauth(self) -> tuple[str, dict[str, str]]:
        """Async twin of :meth:`auth`, sharing the same token cache and fetch: waiting for
        another thread's or loop's fetch never blocks this loop."""
        key = self._cache_key
        waited_until = time.monotonic() + self._token_wait_seconds
        while (token := TOKEN_CACHE.valid(key)) is None:
            self._raise_recent_failure(key)
            flight, leading = TOKEN_CACHE.take_off(key)
            if not leading:
                try:
                    await asyncio.wait_for(
                        asyncio.wrap_future(flight), max(0.0, waited_until - time.monotonic())
                    )
                except TimeoutError:
                    raise self._waited_too_long() from None
                continue
            try:
                token = TOKEN_CACHE.store(key, await self.arun_flow(self.token_flow()))
            except CancelApiError as error:
                TOKEN_CACHE.failed(key, error)
                raise
            finally:
                TOKEN_CACHE.land(key, flight)
            break
        return self._headers(token)

    @property
    def _token_wait_seconds(self) -> float:
        """How long a caller waits for another's token fetch: as long as this hook's own
        fetch could take (every attempt at its longest, every wait at its cap), plus slack."""
        s = self.settings
        return (s.retry_limit + 1) * s.attempt_seconds + s.retry_limit * s.max_retry_wait + 5.0

    def _waited_too_long(self) -> TransportError:
        return TransportError(
            f"WriteText.ai token: the exchange another caller started did not end within "
            f"{self._token_wait_seconds:.0f} s"
        )

    def _raise_recent_failure(self, key: str) -> None:
        failure = TOKEN_CACHE.recent_failure(key)
        if failure is not None:
            self.log.debug("WriteText.ai: the token exchange failed moments ago; not repeated")
            raise failure

    def forget_auth(self, used_headers: Mapping[str, str]) -> bool:
        """Drop an access token a job call refused (see :meth:`_TokenCache.forget`)."""
        used = used_headers.get("Authorization", "").removeprefix("Bearer ")
        return TOKEN_CACHE.forget(self._cache_key, used)

    def secrets(self) -> list[str]:
        """The API key, and every access token this process was issued for it."""
        known = super().secrets()
        if self._token_key is not None:
            known.extend(TOKEN_CACHE.issued(self._token_key))
        return known

    def check_extras(self, conn: Any) -> None:
        """``region``, if set, is a host with an optional port."""
        region = self.extra_value("region", conn)
        if region is None:
            return
        try:
            region_url(str(region), self.base_url)
        except ValueError as why:
            shown = shorten(without_userinfo(str(region)), 80)
            raise ConnectionConfigError(
                f"Connection {self.conn_id!r}: region {shown!r} is not "
                f"usable ({why}); give a host such as api-eu.writetext.ai"
            ) from None

    def state_from_body(self, job_id: str, body: Any) -> JobState:
        """The request as WriteText's status table reads it."""
        return job_state(job_id, body)

    def status_request(self, job_id: str) -> ApiRequest:
        """``GET /text/Generate/Bulk/{id}`` on the region host."""
        path = f"/text/Generate/Bulk/{encode_path_segment(job_id)}"
        return ApiRequest("GET", path, call="status", job_id=job_id)

    def cancel_request(self, job_id: str) -> ApiRequest:
        """``POST /text/Generate/Bulk/{id}/cancel`` on the region host."""
        path = f"/text/Generate/Bulk/{encode_path_segment(job_id)}/cancel"
        return ApiRequest("POST", path, call="cancel", job_id=job_id)

    def test_flow(self) -> Flow[str]:
        """Exchange the key and read ``/text/Credit``."""
        response = yield ApiRequest("GET", "/text/Credit", call="credit")
        if response.status_code != 200:
            raise self.error_for(response, call="credit")
        region = TOKEN_CACHE.valid(self._cache_key)
        return f"Connected to WriteText.ai (region {region.region_url if region else 'unknown'})"
