"""How an :class:`ApiRequest` travels: one retry policy (tenacity) for a pooled ``requests``
session and for the event loop's shared ``aiohttp`` session, with every attempt bounded in time.

Nothing here knows an API: hooks build requests and read answers (see ``hooks/flows.py``); this
module only sends them, retries what is worth retrying, and reports an answer or a
:class:`~airflow_provider_cancel.exceptions.TransportError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_cancel.exceptions import (
    NOT_SENT,
    CancelApiError,
    ConnectionConfigError,
    InvalidResponseError,
    NotSentError,
    TransportError,
)
from airflow_provider_cancel.hooks.retry_after import retry_after_seconds
from airflow_provider_cancel.hooks.settings import HookSettings, without_userinfo
from airflow_provider_cancel.messages import plural, shorten

if TYPE_CHECKING:
    import aiohttp
    import requests
    import yarl
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
        """The parsed body; ``None`` when empty; raises ``ValueError`` when not JSON (or
        nested too deeply to parse)."""
        try:
            return json.loads(self.text) if self.text.strip() else None
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None

    @property
    def is_redirect(self) -> bool:
        """Whether the answer is a 3xx."""
        return 300 <= self.status_code < 400


Flow = Generator[ApiRequest, ApiResponse, T]
"""A generator that yields requests, receives their responses and returns a result."""


class _Retryable(Exception):
    """One attempt failed in a way worth another try: a response or a transport error."""

    def __init__(self, response: ApiResponse | None = None, error: BaseException | None = None):
        super().__init__(response.status_code if response else repr(error))
        self.response = response
        self.error = error


class Transport:
    """Sends requests for one hook, retrying connection errors, timeouts, 429 and 5xx (but not
    596) with exponential backoff and jitter, honouring ``Retry-After``.

    A retryable status still answered after the last retry is returned, so the hook can turn
    it into the right typed error; no answer at all raises :class:`TransportError`.
    """

    def __init__(
        self,
        settings: HookSettings,
        *,
        hook_name: str,
        log: logging.Logger,
        scrub: Callable[[str, int], str],
    ) -> None:
        self.settings = settings
        self.hook_name = hook_name
        self.log = log
        self.scrub = scrub
        self._environment: dict[str, dict[str, Any]] = {}
        self._proxies: dict[str, _Proxy] = {}
        self.send_until: float | None = None
        """``time.monotonic()`` after which no request (first attempt or retry) is sent."""

    def _check_send_window(self, request: ApiRequest) -> None:
        if self.send_until is not None and time.monotonic() >= self.send_until:
            raise NotSentError(f"{self.hook_name} {request.call} {NOT_SENT}", job_id=request.job_id)

    def send(self, request: ApiRequest, base: str, headers: Mapping[str, str]) -> ApiResponse:
        """Send ``request`` to ``base`` with the retry policy; the final answer."""
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
        """Async :meth:`send`."""
        from tenacity import AsyncRetrying

        try:
            async for attempt in AsyncRetrying(**self._retry_policy()):
                with attempt:
                    return await self._aattempt(request, base, headers)
        except _Retryable as gave_up:
            return self._gave_up(request, gave_up)
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_policy(self) -> dict[str, Any]:
        from tenacity import retry_if_exception_type, stop_after_attempt

        settings = self.settings

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            server_says = retry_after_seconds(getattr(error, "response", None))
            return backoff_seconds(
                settings.retry_delay, settings.max_retry_wait, state.attempt_number, server_says
            )

        return {
            "stop": stop_after_attempt(settings.retry_limit + 1),
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
            f"no answer within the timeout (connect {self.settings.connect_timeout:g}s, "
            f"read {self.settings.timeout:g}s)"
            if timed_out
            else f"{type(error).__name__}: {self.scrub(str(error), 200)}"
        )
        raise TransportError(
            f"{self.hook_name} {request.call} got no answer after "
            f"{plural(self.settings.retry_limit + 1, 'attempt')} ({reason})",
            job_id=request.job_id,
        ) from None

    def _too_large(self, request: ApiRequest, code: int) -> InvalidResponseError:
        return InvalidResponseError(
            f"{self.hook_name} {request.call}: the answer is larger than "
            f"{self.settings.max_response_size} bytes (max_response_size); not read",
            status_code=code,
            job_id=request.job_id,
        )

    def _bad_header(self, request: ApiRequest) -> CancelApiError:
        # The library's message quotes the header's value, which may be a secret: not shown.
        return CancelApiError(
            f"{self.hook_name} {request.call}: a request header holds a character HTTP "
            "forbids (a line break or another control character)",
            job_id=request.job_id,
        )

    def _url(self, request: ApiRequest, base: str) -> str:
        return f"{request.base_url or base}{request.path}"

    @staticmethod
    def _check_retryable(response: ApiResponse) -> ApiResponse:
        code = response.status_code
        if code == 429 or (code >= 500 and code != 596):
            raise _Retryable(response=response)
        return response

    # ------------------------------------------------------------------ transports
    def prepare_sync(self) -> None:
        """Build the pooled session now (before worker threads share it)."""
        self.session.get_adapter("https://")

    @cached_property
    def session(self) -> requests.Session:
        """One pooled session per hook: every request of a bulk cancel reuses it."""
        import requests

        from airflow_provider_cancel.hooks.deadline import DeadlineAdapter

        session = requests.Session()
        adapter = DeadlineAdapter(
            pool_connections=4, pool_maxsize=self.settings.pool_size, max_retries=0
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.verify = self.settings.verify
        session.headers["User-Agent"] = _user_agent()
        return session

    @property
    def async_client(self) -> aiohttp.ClientSession:
        """The running event loop's pooled client, shared per transport settings.

        Every hook with the same transport settings shares it: a triggerer running many triggers
        keeps one pool of connections, and no poll builds a client. (A client cannot outlive its
        event loop, so each loop gets its own.)
        """
        return self._async_pool().client

    def _async_pool(self) -> _AsyncPool:
        loop_pools = _ASYNC_CLIENTS.setdefault(asyncio.get_running_loop(), {})
        s = self.settings
        key = (s.verify, s.timeout, s.connect_timeout, s.pool_size)
        pool = loop_pools.get(key)
        if pool is None or pool.client.closed:
            import aiohttp

            client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=s.pool_size, ssl=s.verify),
                # total bounds the whole attempt, also an answer that trickles in
                timeout=aiohttp.ClientTimeout(
                    total=s.attempt_seconds, sock_connect=s.connect_timeout, sock_read=s.timeout
                ),
                headers={"User-Agent": _user_agent()},
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            # aiohttp silently resends a request whose kept-alive connection dropped; our
            # retry policy already decides that, the same way on the sync path.
            client._retry_connection = False
            pool = loop_pools[key] = _AsyncPool(client, asyncio.Semaphore(s.pool_size))
        return pool

    def _attempt(self, request: ApiRequest, base: str, headers: Mapping[str, str]) -> ApiResponse:
        import requests
        import urllib3

        from airflow_provider_cancel.hooks.deadline import deadline

        self._check_send_window(request)
        started = time.monotonic()
        url = self._url(request, base)
        # Prepared by hand: Session.prepare_request would re-quote the URL (turning an encoded
        # dot %2E back into ".", so an id ".." would navigate up the path) and re-read the
        # environment on every call; our URL is already encoded exactly.
        prepared = requests.PreparedRequest()
        prepared.prepare_method(request.method)
        prepared.url = url
        try:
            prepared.prepare_headers({**self.session.headers, **headers, **request.headers})
        except ValueError:
            raise self._bad_header(request) from None
        prepared.prepare_body(None, None, request.json)
        prepared.prepare_cookies(None)
        environment = self._environment_settings(url)
        # The adapter, not Session.send: the session would read a redirect's whole body to
        # follow it (even with allow_redirects=False), unbounded; we never follow redirects.
        adapter = self.session.get_adapter(url)
        try:
            with deadline(started + self.settings.attempt_seconds):
                answer = adapter.send(
                    prepared,
                    timeout=(self.settings.connect_timeout, self.settings.timeout),
                    **environment,  # stream=True: the body is read, capped, below
                )
                try:
                    body = _read_capped(answer, self.settings.max_response_size)
                finally:
                    answer.close()
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            # a malformed answer: two different Content-Length headers, as aiohttp's
            # ClientResponseError below (the request's own headers were checked above)
            requests.exceptions.InvalidHeader,
            urllib3.exceptions.HTTPError,  # raised while reading a streamed body
        ) as error:
            self._log_request(request, None, started)
            raise _Retryable(error=error) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema) as error:
            # The host was checked with the connection: this is the environment's proxy (not a
            # URL, or SOCKS without PySocks). Its user info is not quoted.
            raise ConnectionConfigError(
                f"{self.hook_name} {request.call}: the proxy the environment names for "
                f"{_origin(url)} is not usable ({type(error).__name__}: "
                f"{self.scrub(without_userinfo(str(error)), 120)})",
                job_id=request.job_id,
            ) from None
        if body is None:
            raise self._too_large(request, answer.status_code)
        text = _decode(body, answer.encoding)
        response = ApiResponse(
            answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, text
        )
        self._log_request(request, response, started)
        return self._check_retryable(response)

    async def _aattempt(
        self, request: ApiRequest, base: str, headers: Mapping[str, str]
    ) -> ApiResponse:
        import aiohttp
        import yarl

        url = self._url(request, base)
        proxy = self._async_proxy(url)
        pool = self._async_pool()
        # Waiting for a pooled connection is not part of the request's time: the semaphore
        # (one slot per pooled connection) is taken before aiohttp's clock starts.
        async with pool.slots:
            self._check_send_window(request)  # the wait for a slot may have used the time up
            started = time.monotonic()
            try:
                async with pool.client.request(
                    request.method,
                    yarl.URL(url, encoded=True),  # already encoded exactly
                    json=request.json,
                    headers={**headers, **request.headers, **proxy.request_headers(url)},
                    allow_redirects=False,
                    proxy=proxy.url,
                    proxy_headers=proxy.connect_headers,
                ) as answer:
                    body = await _aread_capped(answer, self.settings.max_response_size)
                    if body is None:
                        raise self._too_large(request, answer.status)
                    response = ApiResponse(
                        answer.status,
                        {k.lower(): v for k, v in answer.headers.items()},
                        _decode(body, answer.charset),
                    )
            except (
                aiohttp.ClientConnectionError,
                aiohttp.ClientPayloadError,
                aiohttp.ClientResponseError,  # a malformed answer, before any status is known
                TimeoutError,
            ) as error:
                self._log_request(request, None, started)
                raise _Retryable(error=error) from None
            except ValueError:  # aiohttp refuses a header value with a line break
                raise self._bad_header(request) from None
        self._log_request(request, response, started)
        return self._check_retryable(response)

    def _environment_settings(self, url: str) -> dict[str, Any]:
        """Proxies, CA bundle, certificates and streaming for ``url``'s origin, read once per
        hook: requests would re-scan the environment on every send (a quarter of a call's
        CPU)."""
        origin = _origin(url)
        if origin not in self._environment:
            self._environment[origin] = dict(
                self.session.merge_environment_settings(
                    origin, {}, True, self.settings.verify, None
                )
            )
        return self._environment[origin]

    def _async_proxy(self, url: str) -> _Proxy:
        """The proxy the environment names for ``url``'s origin, read once per hook and chosen
        exactly as the sync path chooses (requests' own rules: ``HTTPS_PROXY``,
        ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, upper or lower case). aiohttp's own
        ``trust_env`` is not used: it would also send ``~/.netrc`` passwords to the API."""
        origin = _origin(url)
        if origin not in self._proxies:
            self._proxies[origin] = _environment_proxy(origin)
        return self._proxies[origin]

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
        """Close the sync session and forget the environment settings read per origin."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]
        self._environment.clear()
        self._proxies.clear()


def _origin(url: str) -> str:
    return "/".join(url.split("/", 3)[:3])


@dataclass(frozen=True)
class _Proxy:
    """Where the async path sends a request: ``url`` (``None``: straight to the origin) and the
    ``Proxy-Authorization`` its user info asks for, which only the proxy reads: on the
    ``CONNECT`` of an https request, on a plain http request itself (as requests does)."""

    url: yarl.URL | None = None
    authorization: str | None = None

    @property
    def connect_headers(self) -> dict[str, str] | None:
        """Headers of the ``CONNECT`` (https through the proxy)."""
        return {"Proxy-Authorization": self.authorization} if self.authorization else None

    def request_headers(self, url: str) -> dict[str, str]:
        """Headers a plain http request adds for the proxy (aiohttp sends ``proxy_headers``
        only on a ``CONNECT``)."""
        if self.authorization and url.startswith("http://"):
            return {"Proxy-Authorization": self.authorization}
        return {}


def _environment_proxy(origin: str) -> _Proxy:
    import base64

    import yarl
    from requests.utils import get_environ_proxies, select_proxy

    chosen = select_proxy(origin, get_environ_proxies(origin))
    if not chosen:
        return _Proxy()
    try:
        proxy = yarl.URL(chosen if "://" in chosen else f"http://{chosen}")  # as requests does
        usable = proxy.scheme in ("http", "https") and bool(proxy.host)
    except ValueError:  # not a URL at all
        usable = False
    if not usable:
        raise ConnectionConfigError(
            f"the proxy the environment names for {origin} "
            f"({shorten(without_userinfo(chosen), 80)!r}) is not an http or https proxy URL: "
            "the async path sends only through one (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY; "
            "NO_PROXY to go direct)"
        )
    if proxy.user is None:
        return _Proxy(proxy)
    # As requests does: the user info becomes Basic proxy auth, and leaves the URL.
    credentials = f"{proxy.user}:{proxy.password or ''}".encode()
    authorization = f"Basic {base64.b64encode(credentials).decode('ascii')}"
    return _Proxy(proxy.with_user(None), authorization)


_TEXT_ENCODINGS = frozenset(
    {"utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "ascii"}
    | {"iso8859-1", "iso8859-15", "cp1252"}
)
"""Charsets an answer may name; any other (unknown to Python, not a text encoding such as
``base64``, or one that decodes in more than linear time such as ``punycode``) reads as UTF-8."""


def _decode(body: bytes, charset: str | None) -> str:
    """The answer's text in the charset its ``Content-Type`` names, if a known text one."""
    import codecs

    try:
        name = codecs.lookup(charset or "utf-8").name
    except (LookupError, ValueError):  # unknown, or a NUL or lone surrogate in the name
        name = "utf-8"
    return body.decode(name if name in _TEXT_ENCODINGS else "utf-8", errors="replace")


def backoff_seconds(
    retry_delay: float, max_retry_wait: float, attempt: int, server_says: float | None = None
) -> float:
    """The wait before retry ``attempt + 1``: what the server said (``Retry-After``), else
    ``retry_delay`` doubled per attempt plus up to ``retry_delay`` of jitter; never more than
    ``max_retry_wait``, jitter included, whatever the numbers (``1e308`` or ``inf`` give the
    cap, never an overflow)."""
    wait = server_says
    if wait is None:
        doubled = retry_delay * 2.0 ** min(attempt - 1, 64)  # inf at worst, never an error
        wait = doubled + random.uniform(0, min(retry_delay, max_retry_wait))
    if not wait <= max_retry_wait:  # NaN (inf * 0) too
        return max_retry_wait
    return max(0.0, wait)


def _declared_too_large(length: str | None, cap: int) -> bool:
    digits = (length or "").strip()
    if not (digits.isascii() and digits.isdigit()):
        return False
    return len(digits) > 18 or int(digits) > cap  # a 5,000-digit length is no int() to parse


def _read_capped(answer: requests.Response, cap: int) -> bytes | None:
    """A streamed body (decoded from gzip etc.), or ``None`` once it passes ``cap`` bytes: an
    endless body costs at most ``cap`` of memory. The whole-answer deadline is the
    connection's (see :mod:`~airflow_provider_cancel.hooks.deadline`)."""
    if _declared_too_large(answer.headers.get("content-length"), cap):
        return None
    chunks, size = [], 0
    while chunk := answer.raw.read1(65536, decode_content=True):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _aread_capped(answer: aiohttp.ClientResponse, cap: int) -> bytes | None:
    """Async twin of :func:`_read_capped`."""
    if _declared_too_large(answer.headers.get("content-length"), cap):
        return None
    chunks, size = [], 0
    async for chunk in answer.content.iter_chunked(65536):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class _AsyncPool:
    """An event loop's shared client, and one slot per connection it may hold open."""

    client: aiohttp.ClientSession
    slots: asyncio.Semaphore


_ASYNC_CLIENTS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], _AsyncPool]] = (
    weakref.WeakKeyDictionary()
)


_HOLDERS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def holding_async_clients() -> AsyncIterator[None]:
    """Keep the running loop's shared clients open for the block; the last block to end
    closes them. A trigger holds them for its whole life, so its polls (and every other
    trigger's) reuse one pool; a lone ``await hook.aget_job(...)`` leaves nothing open."""
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
    for pool in _ASYNC_CLIENTS.pop(asyncio.get_running_loop(), {}).values():
        await pool.client.close()


def _user_agent() -> str:
    from airflow_provider_cancel import __version__

    return f"airflow-provider-cancel/{__version__}"
