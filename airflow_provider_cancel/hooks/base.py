"""The hook every API shares: connection settings, the public interface and running flows.

What an API must say is one abstract interface, :class:`~airflow_provider_cancel.hooks.contract.JobApi`;
the cancel and status flows all APIs share (generators that yield :class:`ApiRequest` objects and
receive :class:`ApiResponse` objects), and the mapping of HTTP answers to
:mod:`airflow_provider_cancel.exceptions`, are in :mod:`~airflow_provider_cancel.hooks.flows`.
This module runs a flow either synchronously or asynchronously through one
:class:`~airflow_provider_cancel.hooks.transport.Transport` (``requests`` or ``aiohttp``, the same
tenacity policy), so the sync and async paths cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_cancel import connection_form
from airflow_provider_cancel.answers import failed_call, server_message
from airflow_provider_cancel.exceptions import (
    CancelApiError,
    ConnectionConfigError,
    InvalidResponseError,
    JobNotFoundError,
)
from airflow_provider_cancel.hooks.bulk import for_each
from airflow_provider_cancel.hooks.flows import JobFlows, Params
from airflow_provider_cancel.hooks.scrub import TEXT_LIMIT, clean_text
from airflow_provider_cancel.hooks.settings import (
    MAXIMA,
    HookSettings,
    clean_secret,
    connection_url,
)
from airflow_provider_cancel.hooks.transport import (
    ApiRequest,
    ApiResponse,
    Flow,
    Transport,
    close_async_clients,
    holding_async_clients,
)
from airflow_provider_cancel.job_ids import validate_job_id
from airflow_provider_cancel.status import CancelResult, JobState, JobStatus

if TYPE_CHECKING:
    import aiohttp
    import requests

T = TypeVar("T")


class JobApiHook(BaseHook, JobFlows):
    """Base of the per-API hooks: wraps an Airflow connection whose password is the secret.

    An API's hook gives its description (``api``) and implements
    :class:`~airflow_provider_cancel.hooks.contract.JobApi` (its requests, codes, job bodies,
    auth, Test button); the flows (:class:`~airflow_provider_cancel.hooks.flows.JobFlows`), the
    runners, the bulk calls and both Airflow versions' connection forms are shared.

    :param conn_id: the Airflow connection.
    :param retry_limit: retries after connection errors, timeouts, 429 and 5xx (default 3).
    :param retry_delay: first backoff in seconds, doubled each retry, with jitter (default 1).
    :param timeout: read timeout of one request in seconds (default 30).
    :param connect_timeout: connect timeout in seconds (default: ``min(timeout, 10)``).
    :param max_retry_wait: cap on one wait, including a server's ``Retry-After`` (default 60).
    :param pool_size: connections kept open per host, i.e. useful concurrency (default 16).
    :param max_response_size: larger answers are refused (bytes, default 1 MiB).
    :param confirm: read a job once after a cancel answer that does not say what happened
        (an empty or non-JSON 2xx, JSON without a status) to report what really did; with
        ``False`` such an answer is reported as ``cancelling`` unread (default True).

    The connection's extra may set ``retry_limit``, ``retry_delay``, ``timeout``,
    ``connect_timeout``, ``max_retry_wait``, ``max_response_size`` and ``verify`` (TLS
    verification, on by default); hook arguments win over the extra. The connection's password
    is read without surrounding whitespace.
    """

    conn_name_attr = "conn_id"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "api" in cls.__dict__:
            # The connection form of Airflow 2.11, 3.0 and 3.1 (3.2+ reads the provider info):
            # on each API's own class, since Airflow reads these only from the hook class's own
            # ``__dict__`` (providers_manager), never inherited.
            cls.get_ui_field_behaviour = connection_form.get_ui_field_behaviour
            cls.get_connection_form_widgets = connection_form.get_connection_form_widgets

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
        max_response_size: int | None = None,
        confirm: bool = True,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self._arguments = {
            "retry_limit": retry_limit,
            "retry_delay": retry_delay,
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "max_retry_wait": max_retry_wait,
            "pool_size": pool_size,
            "max_response_size": max_response_size,
        }
        self.confirm = confirm
        self._known_secrets: list[str] = []
        self._send_until: float | None = None

    def stop_sending_at(self, at: float) -> None:
        """Send no request (first attempt or retry) after ``at`` (``time.monotonic()``): a
        request due later fails with :class:`~airflow_provider_cancel.exceptions.NotSentError`
        instead. Used by the cancels of a stopped task, whose time is bounded."""
        self._send_until = at
        if "transport" in self.__dict__:
            self.transport.send_until = at

    # ------------------------------------------------------------------ connection settings
    @cached_property
    def connection(self) -> Any:
        """The Airflow connection (looked up on first use)."""
        return self._accepted(self.get_connection(self.conn_id))

    def use_connection(self, conn: Any) -> None:
        """Use a connection fetched already (the async path fetches its own), and check it."""
        self.connection = self._accepted(conn)
        self.check_connection()

    def _accepted(self, conn: Any) -> Any:
        if conn.conn_type and conn.conn_type != self.conn_type:
            raise ConnectionConfigError(
                f"Connection {self.conn_id!r} has type {conn.conn_type!r}; "
                f"{type(self).__name__} needs type {self.conn_type!r}"
            )
        # Known from now on, so that even an error about it can be scrubbed of it.
        self._known_secrets.append(str(conn.password or "").strip())
        return conn

    @cached_property
    def secret(self) -> str:
        """The connection's password (token or key), without surrounding whitespace."""
        return clean_secret(self.conn_id, self.secret_label, self.connection.password)

    @cached_property
    def settings(self) -> HookSettings:
        """Timeouts, retries, limits: resolved once from the arguments and the extra."""
        extra = {name: self.extra_value(name) for name in HookSettings.__dataclass_fields__}
        return HookSettings.resolve(self.conn_id, self._arguments, extra)

    def check_connection(self) -> None:
        """Check all of the connection now, before any request: its type, its host and port,
        its secret, its settings and the API's own extras. Raises
        :class:`ConnectionConfigError`."""
        checked = (self.connection, self.base_url, self.secret, self.settings)
        self.check_extras(checked[0])

    def extra_value(self, name: str, conn: Any = None) -> Any:
        """A connection extra, also under Airflow 2's ``extra__<type>__<name>`` form key."""
        extra = (conn or self.connection).extra_dejson
        value = extra.get(name)
        if value in (None, ""):
            value = extra.get(f"extra__{self.conn_type}__{name}")
        return None if value == "" else value

    @cached_property
    def base_url(self) -> str:
        """The connection's host (and port) as a URL, checked (see
        :func:`~airflow_provider_cancel.hooks.settings.connection_url`); ``https://`` unless the
        host says ``http://`` (the emulator)."""
        conn = self.connection
        return connection_url(self.conn_id, conn.host, conn.port, self.default_host)

    def server_said(self, response: ApiResponse, limit: int = 200) -> str:
        """The server's message for errors and reports, read as the API says
        (:meth:`error_text`) and cleaned (see :meth:`scrub`)."""
        return self.scrub(server_message(response, self.error_text), limit)

    def scrub(self, text: object, limit: int = TEXT_LIMIT) -> str:
        """``text`` (from outside, or quoting it) as it may be shown: control and format
        characters stripped, every secret this hook knows removed (raw or encoded), then cut to
        ``limit`` characters, in that order and in linear time (see
        :func:`~airflow_provider_cancel.hooks.scrub.clean_text`)."""
        return clean_text(text, self.secrets(), limit)

    def secrets(self) -> list[str]:
        """The secrets this hook has seen: the connection's (as stored and as cleaned), plus
        any an API module adds (WriteText's access tokens)."""
        return list(self._known_secrets)

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

        def cancel_one(job_id: str) -> CancelResult:  # the id is validated once, by _for_each
            try:
                return self.run_flow(self.cancel_flow(job_id))
            except CancelApiError as error:
                return failed_call(job_id, self.scrub(error.reason))
            except Exception as error:  # one job's surprise must not lose the whole report
                reason = self.scrub(f"{type(error).__name__}: {error}", 300)
                self.log.error("%s: cancel of %r failed: %s", self.hook_name, job_id, reason)
                return failed_call(job_id, reason)

        return self._for_each(cancel_one, job_ids, max_concurrency, "cancel")

    def _for_each(
        self, call: Callable[[str], T], job_ids: list[str], max_concurrency: int, what: str
    ) -> list[T]:
        """``call`` on every id (each validated here, once), ``max_concurrency`` at a time over
        the one pooled session, with progress in the log for long lists; results in the order
        of ``job_ids``."""
        ids = [self._one_id(job_id) for job_id in job_ids]
        workers = max(1, min(max_concurrency, len(ids), int(MAXIMA["pool_size"])))
        if "transport" not in self.__dict__ and (self._arguments["pool_size"] or 0) < workers:
            self._arguments["pool_size"] = workers
            self.__dict__.pop("settings", None)  # resolved again with the larger pool
        self.check_connection()  # a broken connection fails here, once, before any request
        self.transport.prepare_sync()  # built here, not raced for by the worker threads
        label = f"{self.hook_name} {what}"
        return for_each(call, ids, workers, log=self.log, label=label)

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

        def read(job_id: str) -> JobState:  # the id is validated once, by _for_each
            try:
                return self.run_flow(self.status_flow(job_id))
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
        """Async twin of :meth:`cancel_job`."""
        return await self.arun_flow(self.cancel_flow(self._one_id(job_id)))

    async def aget_job(self, job_id: str) -> JobState:
        """Async twin of :meth:`get_job`."""
        return await self.arun_flow(self.status_flow(self._one_id(job_id)))

    def request(self, method: str, path: str, *, json: Any = None, params: Params = None) -> Any:
        """Call any other endpoint of the API with auth handled, e.g. to submit a job.

        Returns the parsed JSON body (``None`` when empty); raises :class:`CancelApiError` on
        an error status.
        """
        return self.run_flow(self._request_flow(method, path, json, params))

    async def arequest(
        self, method: str, path: str, *, json: Any = None, params: Params = None
    ) -> Any:
        """Async twin of :meth:`request`."""
        return await self.arun_flow(self._request_flow(method, path, json, params))

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's "Test" button: True and a message, or False and what went wrong."""
        try:
            return True, self.run_flow(self.test_flow())
        except Exception as error:  # the button must show any failure, not crash
            return False, self.scrub(str(error))

    def get_conn(self) -> requests.Session:
        """Airflow's hook interface: the pooled ``requests`` session."""
        return self.session

    def _one_id(self, job_id: str) -> str:
        return validate_job_id(job_id, task=type(self).__name__)

    # ------------------------------------------------------------------ running flows
    def run_flow(self, flow: Flow[T]) -> T:
        """Run a flow over the pooled ``requests`` session."""
        self.check_connection()
        try:
            request = next(flow)
            while True:
                request = flow.send(self._send(request))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def arun_flow(self, flow: Flow[T]) -> T:
        """Run a flow over the event loop's pooled ``aiohttp`` client."""
        self.check_connection()
        async with holding_async_clients():
            try:
                request = next(flow)
                while True:
                    request = flow.send(await self._asend(request))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    @cached_property
    def transport(self) -> Transport:
        """Sends this hook's requests; built on first use, with the settings resolved then."""
        transport = Transport(
            self.settings, hook_name=self.hook_name, log=self.log, scrub=self.scrub
        )
        transport.send_until = self._send_until  # also for one built again after close()
        return transport

    @property
    def session(self) -> requests.Session:
        """The pooled ``requests`` session every sync call of this hook uses."""
        return self.transport.session

    @property
    def async_client(self) -> aiohttp.ClientSession:
        """The running event loop's pooled ``aiohttp`` session, shared with other hooks."""
        return self.transport.async_client

    def close(self) -> None:
        """Close this hook's pooled session (the operator does it when the task ends)."""
        if "transport" in self.__dict__:
            self.transport.close()
            del self.__dict__["transport"]

    def _send(self, request: ApiRequest) -> ApiResponse:
        base, headers = self.auth() if request.authenticated else ("", {})
        response = self.transport.send(request, base, headers)
        if response.status_code == 401 and request.authenticated and self.forget_auth(headers):
            self.log.info("%s: access token refused (401); fetching a new one", self.hook_name)
            base, headers = self.auth()
            response = self.transport.send(request, base, headers)
        return self._no_redirect(request, response)

    async def _asend(self, request: ApiRequest) -> ApiResponse:
        base, headers = await self.aauth() if request.authenticated else ("", {})
        response = await self.transport.asend(request, base, headers)
        if response.status_code == 401 and request.authenticated and self.forget_auth(headers):
            self.log.info("%s: access token refused (401); fetching a new one", self.hook_name)
            base, headers = await self.aauth()
            response = await self.transport.asend(request, base, headers)
        return self._no_redirect(request, response)

    def _no_redirect(self, request: ApiRequest, response: ApiResponse) -> ApiResponse:
        """A redirect is never followed (it could carry the token elsewhere) and never read as
        an answer: the API's documented calls do not redirect."""
        if response.is_redirect:
            target = response.headers.get("location")
            where = f" to {self.scrub(target, 120)}" if target else ""
            raise InvalidResponseError(
                f"{self.hook_name} {request.call} was answered with a redirect{where}, which is "
                "never followed: check the connection's host",
                status_code=response.status_code,
                job_id=request.job_id,
            )
        return response

    async def aclose(self) -> None:
        """Close the running loop's shared async clients (see :func:`close_async_clients`)."""
        await close_async_clients()


def _missing(job_id: str, error: JobNotFoundError, missing_status: JobStatus | None) -> JobState:
    if missing_status is None:
        raise error
    return JobState(
        job_id, missing_status, None, None, f"not found (404), read as {missing_status.value}"
    )
