"""Everything an API must provide, in one abstract class: :class:`JobApi`.

An API's hook (``hooks/<api>.py``) subclasses :class:`~airflow_provider_cancel.hooks.base.JobApiHook`,
which is a :class:`JobApi`: it gives its :class:`~airflow_provider_cancel.hooks.apis.ApiDescription`
as ``api`` and implements the abstract methods below; the rest have defaults that fit an API
with a static token and no extras of its own. The shared flows
(:class:`~airflow_provider_cancel.hooks.flows.JobFlows`) and the runners
(:class:`~airflow_provider_cancel.hooks.base.JobApiHook`) use nothing else of an API.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_cancel.answers import CancelCodes, generic_error_text

if TYPE_CHECKING:
    from airflow_provider_cancel.hooks.apis import ApiDescription
    from airflow_provider_cancel.hooks.transport import ApiRequest, Flow
    from airflow_provider_cancel.status import JobState


class JobApi(abc.ABC):
    """What one API says: its description, its requests, what its answers mean, its auth.

    Example, the smallest API (a static bearer token, a ``DELETE`` that cancels)::

        class JobsApiHook(JobApiHook):
            api = JOBS_API  # an ApiDescription, also listed in hooks/apis.py APIS
            cancel_codes = CancelCodes(missing=frozenset({404}))

            def cancel_request(self, job_id):
                return ApiRequest("DELETE", f"/jobs/{encode_path_segment(job_id)}",
                                  call="cancel", job_id=job_id)

            def status_request(self, job_id):
                return ApiRequest("GET", f"/jobs/{encode_path_segment(job_id)}",
                                  call="status", job_id=job_id)

            def state_from_body(self, job_id, body):
                raw = body.get("status")
                return JobState(job_id, map_raw_status(raw, STATUSES), raw, body)

            def auth(self):
                return self.base_url, {"Authorization": f"Bearer {self.secret}"}

            def test_flow(self):
                response = yield ApiRequest("GET", "/me", call="account")
                if response.status_code != 200:
                    raise self.error_for(response, call="account")
                return "Connected"
    """

    api: ClassVar[ApiDescription]
    """The API's description; the class attributes below are read from it."""
    conn_type: ClassVar[str]
    """``api.conn_type`` (Airflow reads it from the class)."""
    hook_name: ClassVar[str]
    """``api.hook_name``: the API's name in every message."""
    default_conn_name: ClassVar[str]
    """``api.default_conn_name``."""
    default_host: ClassVar[str]
    """``api.default_host``."""
    secret_label: ClassVar[str] = "token"
    """``api.secret_label``: how the connection's password is called (never its value)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        api = cls.__dict__.get("api")
        if api is not None:  # declared once: the class attributes follow the description
            cls.conn_type = api.conn_type
            cls.hook_name = api.hook_name
            cls.default_conn_name = api.default_conn_name
            cls.default_host = api.default_host
            cls.secret_label = api.secret_label

    # ------------------------------------------------------------------ cancelling and reading
    cancel_codes: ClassVar[CancelCodes] = CancelCodes()
    """What a cancel's status codes mean for this API."""

    def answer_codes(self, job_id: str) -> CancelCodes:
        """What the codes of ``job_id``'s cancel answer mean (``cancel_codes`` by default)."""
        return self.cancel_codes

    @abc.abstractmethod
    def cancel_request(self, job_id: str) -> ApiRequest:
        """The request that cancels ``job_id`` (already validated)."""

    @abc.abstractmethod
    def status_request(self, job_id: str) -> ApiRequest:
        """The request that reads ``job_id``; raise ``ConnectionConfigError`` where the API (or
        the connection's part of it) has no way to read one job."""

    @abc.abstractmethod
    def state_from_body(self, job_id: str, body: Any) -> JobState:
        """A job's state from its JSON body (what the status call, or a cancel, returns)."""

    def error_text(self, body: Any) -> str | None:
        """The human message in an error answer's JSON body; None when it has none (then the
        raw body is shown). The default reads a top-level ``error``, ``message``, ``title`` or
        ``detail`` string; an API with another shape says so here."""
        return generic_error_text(body)

    def wait_refusal(self, success_statuses: frozenset[str]) -> str | None:
        """Why waiting for ``success_statuses`` (normalised status values) is pointless with
        this connection, e.g. a cancel that stops only the API's tracking; None: it is not.
        A sensor fails with this reason at once."""
        return None

    # ------------------------------------------------------------------ the connection
    @abc.abstractmethod
    def test_flow(self) -> Flow[str]:
        """A cheap authenticated call; returns a short success message (the Test button)."""

    @abc.abstractmethod
    def auth(self) -> tuple[str, dict[str, str]]:
        """The API base URL and the auth headers for the next request (sync path)."""

    async def aauth(self) -> tuple[str, dict[str, str]]:
        """Async twin of :meth:`auth`; APIs with a static token need not override it."""
        return self.auth()

    def forget_auth(self, used_headers: Mapping[str, str]) -> bool:
        """Drop credentials a 401 refused; return True if fresh ones are worth one retry."""
        return False

    def check_extras(self, conn: Any) -> None:
        """Check the API's own connection extras (and hook parameters); raise
        ``ConnectionConfigError`` before any request. Nothing to check by default."""
        return None
