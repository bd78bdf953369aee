"""The cancel and status flows every API shares.

A flow is a generator that yields :class:`~airflow_provider_cancel.hooks.transport.ApiRequest`
objects and receives :class:`~airflow_provider_cancel.hooks.transport.ApiResponse` objects, with
no I/O of its own: :class:`~airflow_provider_cancel.hooks.base.JobApiHook` runs it synchronously
or asynchronously. What an API says for them (its requests, codes, bodies) is the
:class:`~airflow_provider_cancel.hooks.contract.JobApi` interface; what a cancel's answer means
is decided by :func:`airflow_provider_cancel.answers.decide_cancel`, a pure function: the
cancel flow only sends the cancel, and the one read the decision asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow_provider_cancel.answers import (
    CancelAnswer,
    FollowUpRead,
    Next,
    decide_cancel,
    says_yes,
)
from airflow_provider_cancel.exceptions import (
    CancelApiError,
    InvalidResponseError,
    JobNotFoundError,
)
from airflow_provider_cancel.hooks.contract import JobApi
from airflow_provider_cancel.hooks.errors import error_kind
from airflow_provider_cancel.hooks.scrub import STATUS_LIMIT, TEXT_LIMIT
from airflow_provider_cancel.hooks.transport import ApiRequest, ApiResponse, Flow
from airflow_provider_cancel.messages import plural
from airflow_provider_cancel.status import CancelResult, JobState

if TYPE_CHECKING:
    from airflow_provider_cancel.hooks.settings import HookSettings

Params = Mapping[str, Any] | None
"""Query parameters of :meth:`JobApiHook.request`."""


class JobFlows(JobApi):
    """The shared flows of :class:`~airflow_provider_cancel.hooks.base.JobApiHook` (its base).

    Example, what a flow runner does with one::

        flow = hook.cancel_flow("job-1")
        request = next(flow)  # the cancel call
        flow.send(answer)  # StopIteration(value=CancelResult(...)) once it has decided
    """

    confirm: bool

    if TYPE_CHECKING:

        @property
        def settings(self) -> HookSettings:
            """Timeouts and retries (the hook's)."""

        def server_said(self, response: ApiResponse, limit: int = 200) -> str:
            """The server's message, scrubbed and shortened (the hook's)."""

        def scrub(self, text: object, limit: int = TEXT_LIMIT) -> str:
            """Outside text cleaned: secrets, control characters, length (the hook's)."""

    # ------------------------------------------------------------------ flows
    def cancel_flow(self, job_id: str) -> Flow[CancelResult]:
        """Cancel ``job_id`` (validated already); read it once if the decision asks."""
        response = yield self.cancel_request(job_id)
        answer = self.cancel_answer(job_id, response)
        codes = self.answer_codes(job_id)
        decided = decide_cancel(job_id, answer, codes, confirm=self.confirm)
        unread: CancelApiError | None = None
        if decided is Next.READ:
            read, unread = yield from self._follow_up_read(job_id)
            decided = decide_cancel(job_id, answer, codes, confirm=self.confirm, read=read)
        if isinstance(decided, CancelResult):
            return decided
        if decided is Next.READ_FAILED and unread is not None:
            raise unread
        raise self.error_for(response, call="cancel", job_id=job_id)

    def cancel_answer(self, job_id: str, response: ApiResponse) -> CancelAnswer:
        """What :func:`~airflow_provider_cancel.answers.decide_cancel` needs of an answer: its
        code, whether the API could have sent it, the job state its JSON body reports (a body
        with a ``status``) and, when it is not the API's yes, the server's message."""
        yes = says_yes(response)
        body = response.json() if yes else None
        state = None
        if isinstance(body, dict) and isinstance(body.get("status"), str):
            state = self.read_state(job_id, body)
        said = "" if yes else self.server_said(response)
        return CancelAnswer(response.status_code, yes, state, said)

    def _follow_up_read(self, job_id: str) -> Flow[tuple[FollowUpRead, CancelApiError | None]]:
        try:
            state = yield from self.status_flow(job_id)
        except JobNotFoundError as missing:
            return FollowUpRead(missing=missing.server_message or "not found"), missing
        except CancelApiError as unread:
            return FollowUpRead(failure=str(unread)), unread
        return FollowUpRead(state=state), None

    def status_flow(self, job_id: str) -> Flow[JobState]:
        """Read ``job_id``; raises :class:`JobNotFoundError` when the API does not know it."""
        response = yield self.status_request(job_id)
        if response.status_code != 200:
            raise self.error_for(response, call="status", job_id=job_id)
        body = self.parse_job_body(response, call="status", job_id=job_id)
        return self.read_state(job_id, body)

    def read_state(self, job_id: str, body: Any) -> JobState:
        """:meth:`state_from_body`, with the texts the server wrote (the raw status, the error)
        cleaned where they enter: nothing downstream (log lines, XCom, trigger events) can
        show them raw. The status is normalised from the raw text before it is cleaned."""
        state = self.state_from_body(job_id, body)
        raw = state.raw_status
        return replace(
            state,
            raw_status=None if raw is None else self.scrub(raw, STATUS_LIMIT),
            message=self.scrub(state.message) if state.message else state.message,
        )

    def _request_flow(self, method: str, path: str, body: Any, params: Params) -> Flow[Any]:
        if not path.startswith("/"):
            path = f"/{path}"
        if params:
            path = f"{path}?{urlencode(params, doseq=True, quote_via=quote)}"
        response = yield ApiRequest(
            method.upper(), path, call=f"{method.upper()} {path}", json=body
        )
        if not 200 <= response.status_code < 300:
            raise self.error_for(response, call=f"{method.upper()} {path}")
        return self.parse_json(response, call=f"{method.upper()} {path}")

    def parse_json(self, response: ApiResponse, *, call: str, job_id: str | None = None) -> Any:
        """The answer's JSON body, or :class:`InvalidResponseError` (scrubbed server text)."""
        try:
            return response.json()
        except ValueError:
            raise InvalidResponseError(
                f"{self.hook_name} {call}: answer is not JSON",
                status_code=response.status_code,
                job_id=job_id,
                server_message=self.server_said(response),
            ) from None

    def parse_job_body(self, response: ApiResponse, *, call: str, job_id: str) -> dict[str, Any]:
        """A job's JSON object; anything else (empty, HTML, a list) is not a job."""
        body = self.parse_json(response, call=call, job_id=job_id)
        if not isinstance(body, dict):
            raise InvalidResponseError(
                f"{self.hook_name} {call}: answer is not a job object",
                status_code=response.status_code,
                job_id=job_id,
                server_message=self.server_said(response),
            )
        return body

    def error_for(
        self, response: ApiResponse, *, call: str, job_id: str | None = None
    ) -> CancelApiError:
        """The typed error for an error answer (see :mod:`~.errors`)."""
        kind, what = error_kind(response.status_code)
        retries = plural(self.settings.retry_limit, "retry", "retries")
        what = what.format(secret=self.secret_label, retries=retries)
        return kind(
            f"{self.hook_name} {call} {what}",
            status_code=response.status_code,
            job_id=job_id,
            server_message=self.server_said(response),
        )
