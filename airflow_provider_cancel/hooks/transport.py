"""How an :class:`ApiRequest` travels: one retry policy (tenacity) for a pooled ``requests``
session and for the event loop's shared ``aiohttp`` session, with every attempt bounded in time.

Nothing here knows an API: hooks build requests and read answers (see ``hooks/base.py``); this
module only sends them, retries what is worth retrying, and reports an answer or a
:class:`~airflow_provider_cancel.exceptions.TransportError`.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_cancel.exceptions import TransportError

if TYPE_CHECKING:
    import aiohttp
    import requests
    from tenacity import RetryCallState

T = TypeVar("T")


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request an API flow wants sent. ``path`` is already percent-encoded."""

    method: str
    path: str
    call: str = "request"
    """What the request is for (``cancel``, ``status``, ``token``...), for logs and errors."""
    job_id: str | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    base_url: str | None = None
    """Absolute base for this request; ``None`` means the API base the auth step gives."""
    authenticated: bool = True


@dataclass(frozen=True)
class ApiResponse:
    """The parts of an HTTP answer the flows read. Header names are lower-case."""

    status_code: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        """The parsed body; ``None`` when empty; raises ``ValueError`` when not JSON."""
        return json.loads(self.text) if self.text.strip() else None


Flow = Generator[ApiRequest, ApiResponse, T]
"""A generator that yields requests, receives their responses and returns a result."""


class _Retryable(Exception):
    """One attempt failed in a way worth another try: a response or a transport error."""

    def __init__(self, response: ApiResponse | None = None, error: BaseException | None = None):
        super().__init__(response.status_code if response else repr(error))
        self.response = response
        self.error = error


def _retry_after_seconds(response: ApiResponse | None) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date), if the response carries one."""
    value = response.headers.get("retry-after") if response else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Transport:
    """Sends requests for one hook, retrying connection errors, timeouts, 429 and 5xx (but not
    596) with exponential backoff and jitter, honouring ``Retry-After``.

    A retryable status still answered after the last retry is returned, so the hook can turn
    it into the right typed error; no answer at all raises :class:`TransportError`.
    """

    def __init__(
        self,
        *,
        hook_name: str,
        log: logging.Logger,
        scrub: Callable[[str], str],
        retry_limit: int,
        retry_delay: float,
        timeout: float,
        connect_timeout: float,
        max_retry_wait: float,
        verify: bool,
        pool_size: int,
    ) -> None:
        self.hook_name = hook_name
        self.log = log
        self.scrub = scrub
        self.retry_limit = retry_limit
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retry_wait = max_retry_wait
        self.verify = verify
        self.pool_size = pool_size

    def send(self, request: ApiRequest, base: str, headers: Mapping[str, str]) -> ApiResponse:
        from tenacity import Retrying

        try:
            for attempt in Retrying(**self._retry_policy()):
                with attempt:
                    return self._attempt(request, base, headers)
        except _Retryable as gave_up:
            return self._gave_up(request, gave_up)
        raise AssertionError("unreachable")  # pragma: no cover

    async def asend(
        self, request: ApiRequest, base: str, headers: Mapping[str, str]
    ) -> ApiResponse:
        from tenacity import AsyncRetrying

        try:
            async for attempt in AsyncRetrying(**self._retry_policy()):
                with attempt:
                    return await self._aattempt(request, base, headers)
        except _Retryable as gave_up:
            return self._gave_up(request, gave_up)
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_policy(self) -> dict[str, Any]:
        from tenacity import (
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential,
            wait_random,
        )

        backoff = wait_exponential(multiplier=self.retry_delay, max=self.max_retry_wait) + (
            wait_random(0, self.retry_delay)
        )

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            server_says = _retry_after_seconds(getattr(error, "response", None))
            if server_says is not None:
                return min(server_says, self.max_retry_wait)
            return float(backoff(state))

        return {
            "stop": stop_after_attempt(self.retry_limit + 1),
            "wait": wait,
            "retry": retry_if_exception_type(_Retryable),
            "before_sleep": self._log_retry,
            "reraise": True,
        }

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        why = (
            f"HTTP {error.response.status_code}"
            if isinstance(error, _Retryable) and error.response is not None
            else type(getattr(error, "error", error)).__name__
        )
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning(
            "%s: attempt %d failed (%s); retrying in %.1fs",
            self.hook_name,
            state.attempt_number,
            why,
            wait,
        )

    def _gave_up(self, request: ApiRequest, gave_up: _Retryable) -> ApiResponse:
        if gave_up.response is not None:
            return gave_up.response  # the flow turns it into RateLimitedError / ServerError
        error = gave_up.error
        timed_out = "Timeout" in type(error).__name__
        reason = (
            f"no answer within the timeout (connect {self.connect_timeout:g}s, "
            f"read {self.timeout:g}s)"
            if timed_out
            else f"{type(error).__name__}: {self.scrub(str(error))[:200]}"
        )
        raise TransportError(
            f"{self.hook_name} {request.call} got no answer after {self.retry_limit + 1} "
            f"attempts ({reason})",
            job_id=request.job_id,
        ) from None

    def _url(self, request: ApiRequest, base: str) -> str:
        return f"{request.base_url or base}{request.path}"

    @staticmethod
    def _check_retryable(response: ApiResponse) -> ApiResponse:
        code = response.status_code
        if code == 429 or (code >= 500 and code != 596):
            raise _Retryable(response=response)
        return response

    # ------------------------------------------------------------------ transports
    @cached_property
    def session(self) -> requests.Session:
        """One pooled session per hook: every request of a bulk cancel reuses it."""
        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.verify = self.verify
        session.headers["User-Agent"] = _user_agent()
        return session

    @property
    def async_client(self) -> aiohttp.ClientSession:
        """The running event loop's pooled client, shared by every hook with the same transport
        settings: a triggerer running many triggers keeps one pool of connections, and no poll
        builds a client. (A client cannot outlive its event loop, so each loop gets its own.)"""
        import asyncio

        loop_clients = _ASYNC_CLIENTS.setdefault(asyncio.get_running_loop(), {})
        key = (self.verify, self.timeout, self.connect_timeout, self.pool_size)
        client = loop_clients.get(key)
        if client is None or client.closed:
            import aiohttp

            client = loop_clients[key] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.pool_size, ssl=self.verify),
                # total bounds the whole attempt, also an answer that trickles in
                timeout=aiohttp.ClientTimeout(
                    total=self.connect_timeout + self.timeout,
                    sock_connect=self.connect_timeout,
                    sock_read=self.timeout,
                ),
                headers={"User-Agent": _user_agent()},
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            # aiohttp silently resends a request whose kept-alive connection dropped; our
            # retry policy already decides that, the same way on the sync path.
            client._retry_connection = False
        return client

    def _attempt(self, request: ApiRequest, base: str, headers: Mapping[str, str]) -> ApiResponse:
        import requests
        import urllib3

        started = time.monotonic()
        url = self._url(request, base)
        # Prepared by hand: Session.prepare_request would re-quote the URL (turning an encoded
        # dot %2E back into ".", so an id ".." would navigate up the path) and re-read the
        # environment on every call; our URL is already encoded exactly.
        prepared = requests.PreparedRequest()
        prepared.prepare_method(request.method)
        prepared.url = url
        prepared.prepare_headers({**self.session.headers, **headers, **request.headers})
        prepared.prepare_body(None, None, request.json)
        settings = self._environment_settings(url)
        try:
            answer = self.session.send(
                prepared,
                timeout=(self.connect_timeout, self.timeout),
                allow_redirects=False,
                **settings,  # stream=True: the body is read under a deadline below
            )
            body = _read_before(answer, started + self.connect_timeout + self.timeout)
            response = ApiResponse(
                answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, body
            )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError,  # raised while reading a streamed body
        ) as error:
            self._log_request(request, None, started)
            raise _Retryable(error=error) from None
        self._log_request(request, response, started)
        return self._check_retryable(response)

    async def _aattempt(
        self, request: ApiRequest, base: str, headers: Mapping[str, str]
    ) -> ApiResponse:
        import asyncio

        import aiohttp
        import yarl

        started = time.monotonic()
        try:
            async with self.async_client.request(
                request.method,
                yarl.URL(self._url(request, base), encoded=True),  # already encoded exactly
                json=request.json,
                headers={**headers, **request.headers},
                allow_redirects=False,
            ) as answer:
                body = await answer.read()
                response = ApiResponse(
                    answer.status,
                    {k.lower(): v for k, v in answer.headers.items()},
                    body.decode(answer.charset or "utf-8", errors="replace"),
                )
        except (
            aiohttp.ClientConnectionError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientResponseError,  # a malformed answer, before any status is known
            asyncio.TimeoutError,
        ) as error:
            self._log_request(request, None, started)
            raise _Retryable(error=error) from None
        self._log_request(request, response, started)
        return self._check_retryable(response)

    def _environment_settings(self, url: str) -> dict[str, Any]:
        """Proxies, CA bundle and streaming for ``url``'s origin, read once per hook: requests
        would re-scan the environment on every send (a quarter of a call's CPU)."""
        origin = "/".join(url.split("/", 3)[:3])
        cache: dict[str, Any] = self.__dict__.setdefault("_environment", {})
        if origin not in cache:
            cache[origin] = self.session.merge_environment_settings(
                origin, {}, True, self.verify, None
            )
        return cache[origin]  # type: ignore[no-any-return]

    def _log_request(
        self, request: ApiRequest, response: ApiResponse | None, started: float
    ) -> None:
        # Only method, path and status: headers carry the secrets and are never logged.
        self.log.debug(
            "%s %s %s -> %s in %.0f ms",
            self.hook_name,
            request.method,
            request.path,
            response.status_code if response else "no answer",
            (time.monotonic() - started) * 1000,
        )

    def close(self) -> None:
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]
        self.__dict__.pop("_environment", None)


def _read_before(answer: requests.Response, deadline: float) -> str:
    """The body of a streamed answer, or ``requests.Timeout`` once ``deadline`` passes:
    requests times each socket read, so a server that trickles bytes could otherwise hold a
    task for as long as it likes. ``read1`` returns whatever one read brings, so the deadline
    is checked at least once per read timeout."""
    import requests

    chunks = []
    while chunk := answer.raw.read1(65536, decode_content=True):
        chunks.append(chunk)
        if time.monotonic() > deadline:
            answer.close()
            raise requests.Timeout("the answer did not arrive within the timeout")
    answer.close()  # the body is fully read: the connection goes back to the pool
    return b"".join(chunks).decode(answer.encoding or "utf-8", errors="replace")


_ASYNC_CLIENTS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], aiohttp.ClientSession]] = (
    weakref.WeakKeyDictionary()
)


_HOLDERS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def holding_async_clients() -> AsyncIterator[None]:
    """Keep the running loop's shared clients open for the block; the last block to end
    closes them. A trigger holds them for its whole life, so its polls (and every other
    trigger's) reuse one pool; a lone ``await hook.aget_job(...)`` leaves nothing open."""
    import asyncio

    loop = asyncio.get_running_loop()
    _HOLDERS[loop] = _HOLDERS.get(loop, 0) + 1
    try:
        yield
    finally:
        _HOLDERS[loop] -= 1
        if not _HOLDERS[loop]:
            del _HOLDERS[loop]
            await close_async_clients()


async def close_async_clients() -> None:
    """Close the running event loop's shared async clients now."""
    import asyncio

    for client in _ASYNC_CLIENTS.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


def _user_agent() -> str:
    from airflow_provider_cancel import __version__

    return f"airflow-provider-cancel/{__version__}"
