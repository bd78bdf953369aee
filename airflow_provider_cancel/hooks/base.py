"""The hook every API shares: connection settings, pooled sync and async transport, one retry
policy, and the mapping of HTTP answers to :mod:`airflow_provider_cancel.exceptions`.

Each API module describes *what to send* and *what an answer means* as generators ("flows")
that yield :class:`ApiRequest` objects and receive :class:`ApiResponse` objects. This module
runs a flow either synchronously (``requests``) or asynchronously (``aiohttp``) with the same
tenacity policy, so the sync and async paths cannot drift apart.
"""

from __future__ import annotations

import abc
import contextlib
import email.utils
import itertools
import json
import time
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import quote, urlencode

from airflow_provider_cancel._compat import BaseHook
from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    CancelApiError,
    ConnectionConfigError,
    InvalidResponseError,
    JobNotFoundError,
    ModerationPendingError,
    PaymentRequiredError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from airflow_provider_cancel.job_ids import validate_job_id
from airflow_provider_cancel.status import CancelOutcome, CancelResult, JobState, JobStatus

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


def server_message(response: ApiResponse, limit: int = 200) -> str:
    """The short human message in an error body, whatever shape the API chose."""
    try:
        body = response.json()
    except ValueError:
        content_type = response.headers.get("content-type", "unknown content type")
        return f"non-JSON body ({content_type.split(';')[0]}, {len(response.text)} bytes)"
    if isinstance(body, dict):
        for key in ("error", "Error", "message", "Message", "title", "detail"):
            if isinstance(body.get(key), str) and body[key]:
                text: str = body[key]
                details = body.get("errorDetails")
                if isinstance(details, str) and details:
                    text = f"{text} ({details})"
                return text[:limit]
    return response.text.strip()[:limit]


def decide_after_read(
    state: JobState, *, cancel_accepted: bool, cancel_answer: str
) -> CancelResult:
    """What an ambiguous cancel answer meant, given the job as read right after it.

    ``cancel_accepted`` is whether the API said yes (2xx). A job that reads as finished was
    finished before (unless it reads cancelled after a yes); a job still running after a "no"
    was not stopped, which is an error, never a success.
    """
    if state.status is JobStatus.CANCELLED and cancel_accepted:
        return CancelResult.from_state(state, CancelOutcome.CANCELLED, "cancelled")
    if state.status.is_terminal:
        return CancelResult.from_state(
            state, CancelOutcome.ALREADY_FINISHED, f"job had already ended ({state.raw_status})"
        )
    if state.status is JobStatus.CANCELLING or cancel_accepted:
        return CancelResult.from_state(
            state, CancelOutcome.CANCELLING, f"cancel accepted; job reads {state.raw_status}"
        )
    return CancelResult.from_state(
        state,
        CancelOutcome.ERROR,
        f"the API refused the cancel ({cancel_answer}) and the job still reads "
        f"{state.raw_status!r}",
    )


class JobApiHook(BaseHook, abc.ABC):  # type: ignore[misc]
    """Base of the per-API hooks: wraps an Airflow connection whose password is the secret.

    Subclasses say which requests cancel and read a job (``cancel_flow``, ``status_flow``),
    how to authenticate (``auth``), and how to check a connection (``test_flow``).

    :param conn_id: the Airflow connection.
    :param retry_limit: retries after connection errors, timeouts, 429 and 5xx (default 3).
    :param retry_delay: first backoff in seconds, doubled each retry, with jitter (default 1).
    :param timeout: read timeout of one request in seconds (default 30).
    :param connect_timeout: connect timeout in seconds (default: ``min(timeout, 10)``).
    :param max_retry_wait: cap on one wait, including a server's ``Retry-After`` (default 60).
    :param pool_size: connections kept open per host, i.e. useful concurrency (default 16).

    The connection's extra may set ``retry_limit``, ``retry_delay``, ``timeout``,
    ``connect_timeout``, ``max_retry_wait`` and ``verify`` (TLS verification, on by default);
    hook arguments win over the extra.
    """

    conn_name_attr = "conn_id"
    conn_type: ClassVar[str]
    default_conn_name: ClassVar[str]
    hook_name: ClassVar[str]
    default_host: ClassVar[str]
    secret_label: ClassVar[str] = "token"
    """How the connection's password is called in messages (never its value)."""

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        retry_limit: int | None = None,
        retry_delay: float | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retry_wait: float | None = None,
        pool_size: int | None = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self._arguments = {
            "retry_limit": retry_limit,
            "retry_delay": retry_delay,
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "max_retry_wait": max_retry_wait,
        }
        self.pool_size = pool_size or 16

    # ------------------------------------------------------------------ connection settings
    @cached_property
    def connection(self) -> Any:
        conn = self.get_connection(self.conn_id)
        self._check_connection(conn)
        return conn

    def _check_connection(self, conn: Any) -> None:
        if conn.conn_type and conn.conn_type != self.conn_type:
            raise ConnectionConfigError(
                f"Connection {self.conn_id!r} has type {conn.conn_type!r}; "
                f"{type(self).__name__} needs type {self.conn_type!r}"
            )
        if not conn.password:
            raise ConnectionConfigError(
                f"Connection {self.conn_id!r} has no {self.secret_label}: set it as the "
                "connection's password"
            )
        for name in self._arguments:  # a bad number fails once, up front, not once per job
            self._setting(name, 0, int if name == "retry_limit" else float, conn)

    def extra_value(self, name: str, conn: Any = None) -> Any:
        """A connection extra, also under Airflow 2's ``extra__<type>__<name>`` form key."""
        extra = (conn or self.connection).extra_dejson
        value = extra.get(name)
        if value in (None, ""):
            value = extra.get(f"extra__{self.conn_type}__{name}")
        return None if value == "" else value

    def _setting(self, name: str, default: float, kind: type = float, conn: Any = None) -> Any:
        value = self._arguments.get(name)
        if value is None:
            value = self.extra_value(name, conn)
        if value is None:
            return default
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConnectionConfigError(
                f"Connection {self.conn_id!r}: {name}={value!r} is not a {kind.__name__}"
            ) from None
        if number < 0:
            raise ConnectionConfigError(f"Connection {self.conn_id!r}: {name} must be >= 0")
        return number

    @cached_property
    def retry_limit(self) -> int:
        return int(self._setting("retry_limit", 3, int))

    @cached_property
    def retry_delay(self) -> float:
        return float(self._setting("retry_delay", 1.0))

    @cached_property
    def timeout(self) -> float:
        return float(self._setting("timeout", 30.0))

    @cached_property
    def connect_timeout(self) -> float:
        return float(self._setting("connect_timeout", min(self.timeout, 10.0)))

    @cached_property
    def max_retry_wait(self) -> float:
        return float(self._setting("max_retry_wait", 60.0))

    @cached_property
    def verify(self) -> bool:
        value = self.extra_value("verify")
        if isinstance(value, str):
            return value.strip().lower() not in ("false", "0", "no", "off")
        return value is None or bool(value)

    @cached_property
    def base_url(self) -> str:
        """The connection's host as a URL; ``http://`` hosts (the emulator) are kept as is."""
        host = (self.connection.host or "").strip().rstrip("/")
        if not host:
            return self.default_host
        if "://" not in host:
            host = f"https://{host}"
        if self.connection.port:
            host = f"{host}:{self.connection.port}"
        return host

    @property
    def secret(self) -> str:
        return str(self.connection.password)

    # ------------------------------------------------------------------ what subclasses say
    @abc.abstractmethod
    def cancel_flow(self, job_id: str) -> Flow[CancelResult]:
        """Requests that cancel ``job_id`` and what their answers mean."""

    @abc.abstractmethod
    def status_flow(self, job_id: str) -> Flow[JobState]:
        """Requests that read ``job_id``; raises :class:`JobNotFoundError` on 404."""

    @abc.abstractmethod
    def test_flow(self) -> Flow[str]:
        """A cheap authenticated call; returns a short success message."""

    @abc.abstractmethod
    def auth(self) -> tuple[str, dict[str, str]]:
        """The API base URL and the auth headers for the next request (sync path)."""

    async def aauth(self) -> tuple[str, dict[str, str]]:
        """Async twin of :meth:`auth`; APIs with a static token need not override it."""
        return self.auth()

    def forget_auth(self, used_headers: Mapping[str, str]) -> bool:
        """Drop credentials a 401 refused; return True if fresh ones are worth one retry."""
        return False

    def scrub(self, text: str) -> str:
        """Remove every secret this hook knows from ``text``."""
        for secret in self._secrets():
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def _secrets(self) -> list[str]:
        conn = self.__dict__.get("connection")
        return [str(conn.password)] if conn is not None and conn.password else []

    # ------------------------------------------------------------------ public interface
    def cancel_job(self, job_id: str) -> CancelResult:
        """Cancel one job. Returns what happened; raises :class:`CancelApiError` when the call
        itself failed (auth, payment, server errors after retries, no answer)."""
        return self.run_flow(self.cancel_flow(self._one_id(job_id)))

    def cancel_jobs(self, job_ids: list[str], max_concurrency: int = 16) -> list[CancelResult]:
        """Cancel many jobs concurrently over this hook's one pooled session.

        Never raises for a single job: a job whose cancel call failed gets outcome ``error``
        with the reason, so one bad job cannot hide what happened to the others. Results
        keep the order of ``job_ids``.
        """

        def cancel_one(job_id: str) -> CancelResult:
            try:
                return self.cancel_job(job_id)
            except CancelApiError as error:
                return CancelResult(job_id, CancelOutcome.ERROR, message=self.scrub(str(error)))

        return self._for_each(cancel_one, job_ids, max_concurrency, "cancel")

    def _for_each(
        self, call: Callable[[str], T], job_ids: list[str], max_concurrency: int, what: str
    ) -> list[T]:
        """``call`` on every id, ``max_concurrency`` at a time over the one pooled session,
        with progress in the log for long lists; results in the order of ``job_ids``."""
        from concurrent.futures import ThreadPoolExecutor

        self.connection  # noqa: B018 - a broken connection fails here, before any request
        ids = [self._one_id(job_id) for job_id in job_ids]
        workers = max(1, min(max_concurrency, len(ids)))
        self.pool_size = max(self.pool_size, workers)
        step = max(1, len(ids) // 10)
        answered = itertools.count(1)

        def one(job_id: str) -> T:
            result = call(job_id)
            done = next(answered)
            if len(ids) > 20 and done % step == 0:
                self.log.info(
                    "%s: %d of %d %s calls answered", self.hook_name, done, len(ids), what
                )
            return result

        if workers == 1:
            return [one(job_id) for job_id in ids]
        with ThreadPoolExecutor(workers, thread_name_prefix=what) as pool:
            return list(pool.map(one, ids))

    def get_job(self, job_id: str) -> JobState:
        """Read one job's status; raises :class:`JobNotFoundError` when the API does not know it."""
        return self.run_flow(self.status_flow(self._one_id(job_id)))

    def get_jobs(
        self,
        job_ids: list[str],
        *,
        missing_status: JobStatus | None = None,
        max_concurrency: int = 16,
    ) -> dict[str, JobState]:
        """Read several jobs concurrently. A job the API does not know raises
        :class:`JobNotFoundError`, unless ``missing_status`` says how to read a missing job."""

        def read(job_id: str) -> JobState:
            try:
                return self.get_job(job_id)
            except JobNotFoundError as error:
                return _missing(job_id, error, missing_status)

        states = self._for_each(read, job_ids, max_concurrency, "status")
        return {state.job_id: state for state in states}

    async def aget_jobs(
        self, job_ids: list[str], *, missing_status: JobStatus | None = None
    ) -> dict[str, JobState]:
        """Async twin of :meth:`get_jobs`; reads concurrently over the one async client."""
        import asyncio

        async def read(job_id: str) -> JobState:
            try:
                return await self.aget_job(job_id)
            except JobNotFoundError as error:
                return _missing(job_id, error, missing_status)

        return dict(zip(job_ids, await asyncio.gather(*map(read, job_ids)), strict=True))

    async def acancel_job(self, job_id: str) -> CancelResult:
        return await self.arun_flow(self.cancel_flow(self._one_id(job_id)))

    async def aget_job(self, job_id: str) -> JobState:
        return await self.arun_flow(self.status_flow(self._one_id(job_id)))

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call any other endpoint of the API with auth handled, e.g. to submit a job.

        Returns the parsed JSON body (``None`` when empty); raises :class:`CancelApiError` on
        an error status.
        """
        return self.run_flow(self._request_flow(method, path, json, params))

    async def arequest(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        return await self.arun_flow(self._request_flow(method, path, json, params))

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's "Test" button: True and a message, or False and what went wrong."""
        try:
            return True, self.run_flow(self.test_flow())
        except Exception as error:  # the button must show any failure, not crash
            return False, self.scrub(str(error))

    def get_conn(self) -> requests.Session:
        return self.session

    # ------------------------------------------------------------------ flows
    def _one_id(self, job_id: str) -> str:
        return validate_job_id(job_id, task=type(self).__name__)

    def _request_flow(
        self, method: str, path: str, body: Any, params: Mapping[str, Any] | None
    ) -> Flow[Any]:
        if not path.startswith("/"):
            path = f"/{path}"
        if params:
            path = f"{path}?{urlencode(params, doseq=True, quote_via=quote)}"
        response = yield ApiRequest(
            method.upper(), path, call=f"{method.upper()} {path}", json=body
        )
        if response.status_code >= 400:
            raise self.error_for(response, call=f"{method.upper()} {path}")
        return self.parse_json(response, call=f"{method.upper()} {path}")

    def parse_json(self, response: ApiResponse, *, call: str, job_id: str | None = None) -> Any:
        try:
            return response.json()
        except ValueError:
            raise InvalidResponseError(
                f"{self.hook_name} {call}: answer is not JSON",
                status_code=response.status_code,
                job_id=job_id,
                server_message=server_message(response),
            ) from None

    def parse_job_body(self, response: ApiResponse, *, call: str, job_id: str) -> dict[str, Any]:
        """A job's JSON object; anything else (empty, HTML, a list) is not a job."""
        body = self.parse_json(response, call=call, job_id=job_id)
        if not isinstance(body, dict):
            raise InvalidResponseError(
                f"{self.hook_name} {call}: answer is not a job object",
                status_code=response.status_code,
                job_id=job_id,
                server_message=server_message(response),
            )
        return body

    def error_for(
        self, response: ApiResponse, *, call: str, job_id: str | None = None
    ) -> CancelApiError:
        """The typed error for an error answer. API modules may refine it."""
        code = response.status_code
        kind: type[CancelApiError] = CancelApiError
        what = "failed"
        if code in (401, 403):
            kind, what = (
                AuthenticationError,
                f"was refused: check the connection's {self.secret_label}",
            )
        elif code == 402:
            kind, what = PaymentRequiredError, "was refused: no active subscription"
        elif code in (404, 410):
            kind, what = JobNotFoundError, "found no such job"
        elif code == 429:
            kind, what = RateLimitedError, f"was rate limited after {self.retry_limit} retries"
        elif code == 596:
            kind, what = ModerationPendingError, "is blocked by a pending moderation message"
        elif code >= 500:
            kind, what = ServerError, f"failed with a server error after {self.retry_limit} retries"
        return kind(
            f"{self.hook_name} {call} {what}",
            status_code=code,
            job_id=job_id,
            server_message=self.scrub(server_message(response)),
        )

    # ------------------------------------------------------------------ running flows
    def run_flow(self, flow: Flow[T]) -> T:
        """Run a flow over the pooled ``requests`` session."""
        try:
            request = next(flow)
            while True:
                request = flow.send(self._send(request))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def arun_flow(self, flow: Flow[T]) -> T:
        """Run a flow over the event loop's pooled ``aiohttp`` client."""
        async with holding_async_clients():
            try:
                request = next(flow)
                while True:
                    request = flow.send(await self._asend(request))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def _send(self, request: ApiRequest) -> ApiResponse:
        base, headers = self.auth() if request.authenticated else ("", {})
        response = self._with_retries(request, base, headers)
        if response.status_code == 401 and request.authenticated and self.forget_auth(headers):
            self.log.info("%s: access token refused (401); fetching a new one", self.hook_name)
            base, headers = self.auth()
            response = self._with_retries(request, base, headers)
        return response

    async def _asend(self, request: ApiRequest) -> ApiResponse:
        base, headers = await self.aauth() if request.authenticated else ("", {})
        response = await self._awith_retries(request, base, headers)
        if response.status_code == 401 and request.authenticated and self.forget_auth(headers):
            self.log.info("%s: access token refused (401); fetching a new one", self.hook_name)
            base, headers = await self.aauth()
            response = await self._awith_retries(request, base, headers)
        return response

    def _with_retries(
        self, request: ApiRequest, base: str, headers: Mapping[str, str]
    ) -> ApiResponse:
        from tenacity import Retrying

        try:
            for attempt in Retrying(**self._retry_policy()):
                with attempt:
                    return self._attempt(request, base, headers)
        except _Retryable as gave_up:
            return self._gave_up(request, gave_up)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _awith_retries(
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

    async def aclose(self) -> None:
        """Close the running loop's shared async clients (see :func:`close_async_clients`)."""
        await close_async_clients()


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


def _missing(job_id: str, error: JobNotFoundError, missing_status: JobStatus | None) -> JobState:
    if missing_status is None:
        raise error
    return JobState(
        job_id, missing_status, None, None, f"not found (404), read as {missing_status.value}"
    )


def _user_agent() -> str:
    from airflow_provider_cancel import __version__

    return f"airflow-provider-cancel/{__version__}"
