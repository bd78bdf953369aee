"""The cancel and status flows every API shares, and what each API must say for them.

A flow is a generator that yields :class:`~airflow_provider_cancel.hooks.transport.ApiRequest`
objects and receives :class:`~airflow_provider_cancel.hooks.transport.ApiResponse` objects, with
no I/O of its own: :class:`~airflow_provider_cancel.hooks.base.JobApiHook` runs it synchronously
or asynchronously. An API module says which requests cancel and read a job
(``cancel_request``, ``status_request``), what a cancel's status codes mean (``cancel_codes``)
and how a job body reads (``state_from_body``); :class:`JobFlows` turns answers into results
with the pure rules of :mod:`airflow_provider_cancel.answers`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode

from airflow_provider_cancel.answers import (
    CancelCodes,
    decide_after_read,
    says_yes,
    settled_by_status,
)
from airflow_provider_cancel.exceptions import (
    CancelApiError,
    InvalidResponseError,
    JobNotFoundError,
)
from airflow_provider_cancel.hooks.errors import error_kind
from airflow_provider_cancel.hooks.scrub import STATUS_LIMIT, TEXT_LIMIT
from airflow_provider_cancel.hooks.transport import ApiRequest, ApiResponse, Flow
from airflow_provider_cancel.messages import plural
from airflow_provider_cancel.status import CancelOutcome, CancelResult, JobState, JobStatus

if TYPE_CHECKING:
    from airflow_provider_cancel.hooks.settings import HookSettings

Params = Mapping[str, Any] | None
"""Query parameters of :meth:`JobApiHook.request`."""


class JobFlows(abc.ABC):
    """The shared flows of :class:`~airflow_provider_cancel.hooks.base.JobApiHook` (its base).

    Example, what a flow runner does with one::

        flow = hook.cancel_flow("job-1")
        request = next(flow)  # the cancel call
        flow.send(answer)  # StopIteration(value=CancelResult(...)) once it has decided
    """

    hook_name: ClassVar[str]
    secret_label: ClassVar[str] = "token"
    """How the connection's password is called in messages (never its value)."""
    confirm: bool

    if TYPE_CHECKING:

        @property
        def settings(self) -> HookSettings:
            """Timeouts and retries (the hook's)."""

        def server_said(self, response: ApiResponse, limit: int = 200) -> str:
            """The server's message, scrubbed and shortened (the hook's)."""

        def scrub(self, text: object, limit: int = TEXT_LIMIT) -> str:
            """Outside text cleaned: secrets, control characters, length (the hook's)."""

    # ------------------------------------------------------------------ what each API says
    cancel_codes: ClassVar[CancelCodes] = CancelCodes()
    """What a cancel's status codes mean for this API."""

    def answer_codes(self, job_id: str) -> CancelCodes:
        """What the codes of ``job_id``'s cancel answer mean (``cancel_codes`` by default)."""
        return self.cancel_codes

    @abc.abstractmethod
    def cancel_request(self, job_id: str) -> ApiRequest:
        """The request that cancels ``job_id``."""

    @abc.abstractmethod
    def status_request(self, job_id: str) -> ApiRequest:
        """The request that reads ``job_id``."""

    @abc.abstractmethod
    def state_from_body(self, job_id: str, body: Any) -> JobState:
        """A job's state from its JSON body (what the status call returns)."""

    # ------------------------------------------------------------------ flows
    def cancel_flow(self, job_id: str) -> Flow[CancelResult]:
        """Cancel ``job_id``, and what the answer (and, where it is unclear, a read) means."""
        response = yield self.cancel_request(job_id)
        code, codes = response.status_code, self.answer_codes(job_id)
        if code in codes.untracked and says_yes(response):
            return CancelResult(
                job_id,
                CancelOutcome.UNTRACKED,
                message="the API stopped tracking the job; the provider may still run (and "
                "bill) it",
            )
        if code in codes.untracked:  # an HTML page or a cut body is not the API's yes
            return CancelResult(
                job_id,
                CancelOutcome.ERROR,
                message=f"HTTP {code} that is not the API's answer ({self.server_said(response)}"
                "): the job may still be tracked and running",
            )
        if code in codes.cancelled:
            return CancelResult(
                job_id, CancelOutcome.CANCELLED, JobStatus.CANCELLED, None, "cancelled"
            )
        if 200 <= code < 300:
            return (yield from self.cancel_answered_2xx_flow(job_id, response))
        if code in codes.missing:
            message = self.server_said(response) or "not found"
            return CancelResult(job_id, CancelOutcome.NOT_FOUND, message=message)
        if code in codes.unclear_refusals:
            return (yield from self.read_after_cancel_flow(job_id, response, accepted=False))
        raise self.error_for(response, call="cancel", job_id=job_id)

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

    def read_after_cancel_flow(
        self, job_id: str, response: ApiResponse, *, accepted: bool
    ) -> Flow[CancelResult]:
        """The job read once after a cancel answer that does not say what happened, and what
        the two together mean (see :func:`~airflow_provider_cancel.answers.decide_after_read`).
        ``accepted``: the answer was a yes (an empty or JSON 2xx)."""
        answer = f"HTTP {response.status_code}"
        if not accepted:
            answer += f": {self.server_said(response)}"
        try:
            state = yield from self.status_flow(job_id)
        except JobNotFoundError as missing:
            if accepted:  # WriteText forgets requests soon after they end
                return CancelResult(
                    job_id, CancelOutcome.CANCELLING, message="cancel accepted; job now unknown"
                )
            return CancelResult(
                job_id, CancelOutcome.NOT_FOUND, message=missing.server_message or "not found"
            )
        except CancelApiError as unread:
            if not accepted:
                raise
            return CancelResult(
                job_id,
                CancelOutcome.CANCELLING,
                message=f"cancel accepted; reading the job failed: {unread}",
            )
        return decide_after_read(state, cancel_accepted=accepted, cancel_answer=answer)

    def cancel_answered_2xx_flow(self, job_id: str, response: ApiResponse) -> Flow[CancelResult]:
        """A 2xx to a cancel. A status in its JSON body settles it; an answer that says nothing
        (empty, HTML, JSON without a status) is confirmed by reading the job once, unless
        ``confirm=False`` (then it is ``cancelling``, unread)."""
        accepted = says_yes(response)
        body = response.json() if accepted else None
        if isinstance(body, dict) and isinstance(body.get("status"), str):
            state = self.read_state(job_id, body)
            settled = settled_by_status(state, cancel_accepted=True)
            if settled is not None:
                return settled
            if state.status is JobStatus.CANCELLING:
                return CancelResult.from_state(state, CancelOutcome.CANCELLING, "cancel accepted")
        if not self.confirm:
            return CancelResult(
                job_id, CancelOutcome.CANCELLING, JobStatus.CANCELLING, None, "cancel accepted"
            )
        return (yield from self.read_after_cancel_flow(job_id, response, accepted=accepted))

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
