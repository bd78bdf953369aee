"""What an API's answer means, whatever the API: pure rules over a response or a job's state,
used by every API module. No I/O.

:func:`decide_cancel` is the one place a cancel's outcome is decided; what is API-specific
comes in as data (the API's :class:`CancelCodes`, the body read by the API's
``state_from_body``, the message found by its ``error_text``)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_cancel.status import CancelOutcome, CancelResult, JobState, JobStatus

if TYPE_CHECKING:
    from airflow_provider_cancel.hooks.transport import ApiResponse


@dataclass(frozen=True)
class CancelCodes:
    """What the status code of a cancel's answer means, for one API (2xx aside: see
    :func:`decide_cancel`); any other code is an error."""

    cancelled: frozenset[int] = frozenset()
    """The job is cancelled now (useapi v3's documented 204)."""
    missing: frozenset[int] = frozenset()
    """The API does not know the job: ``not_found``, no read (WriteText forgets requests)."""
    unclear_refusals: frozenset[int] = frozenset({400, 409, 422})
    """A refusal that may mean "it had ended already": the job is read to find out."""
    untracked: frozenset[int] = frozenset()
    """The API stopped tracking the job, and says the work itself may go on (useapi.net's
    "scheduler" services): outcome ``untracked``, never ``cancelled``."""


def server_message(response: ApiResponse, error_text: Callable[[Any], str | None]) -> str:
    """The human message of an error answer (not yet scrubbed or shortened: see
    ``JobApiHook.server_said``): what the API's ``error_text`` finds in a JSON body, else the
    body itself; a non-JSON body is described, not quoted."""
    try:
        body = response.json()
    except ValueError:
        content_type = response.headers.get("content-type", "unknown content type")
        return f"non-JSON body ({content_type.split(';')[0]}, {len(response.text)} bytes)"
    return error_text(body) or response.text.strip()


def generic_error_text(body: Any) -> str | None:
    """The first non-empty top-level ``error``, ``message``, ``title`` or ``detail`` string (in
    either capitalisation) of a JSON error body; None for any other shape."""
    if isinstance(body, dict):
        for key in ("error", "Error", "message", "Message", "title", "detail"):
            text = body.get(key)
            if isinstance(text, str) and text:
                return text
    return None


def says_yes(response: ApiResponse) -> bool:
    """A 2xx the API itself could have sent: empty, or JSON. An HTML page (a login wall, a
    proxy's page) or a truncated body is not the API saying yes, whatever its status."""
    if not 200 <= response.status_code < 300:
        return False
    try:
        response.json()
    except ValueError:
        return False
    return True


class Next(enum.Enum):
    """What :func:`decide_cancel` needs done before there is an outcome."""

    READ = "read the job once, then decide again with what the read said"
    ERROR = "the answer is an error: raise its typed error"
    READ_FAILED = "the read after a refusal failed: raise the read's error"


@dataclass(frozen=True)
class CancelAnswer:
    """A cancel's answer, as far as the decision needs it."""

    status_code: int
    is_api_answer: bool
    """A 2xx the API itself could have sent (see :func:`says_yes`)."""
    state: JobState | None = None
    """The job as a JSON 2xx body reports it (a body with a ``status``), else None."""
    server_text: str = ""
    """The server's message, scrubbed and shortened (for refusals and answers not the API's)."""


@dataclass(frozen=True)
class FollowUpRead:
    """What the one read of the job after an unclear cancel answer gave: a state, or that the
    API does not know the job, or why the read failed."""

    state: JobState | None = None
    missing: str | None = None
    """The API does not know the job (404): its message."""
    failure: str | None = None
    """The read itself failed: why."""


def decide_cancel(
    job_id: str,
    answer: CancelAnswer,
    codes: CancelCodes,
    *,
    confirm: bool,
    read: FollowUpRead | None = None,
) -> CancelResult | Next:
    """What a cancel did, from its answer, the API's codes and, when it asked for one
    (:attr:`Next.READ`), the read of the job that followed. Pure: the flow sends what this asks.

    ``confirm=False``: a 2xx that does not say what happened is ``cancelling``, unread.
    """
    code = answer.status_code
    if code in codes.untracked:
        if answer.is_api_answer:
            return CancelResult(
                job_id,
                CancelOutcome.UNTRACKED,
                message="the API stopped tracking the job; the provider may still run (and "
                "bill) it",
            )
        return CancelResult(  # an HTML page or a cut body is not the API's yes
            job_id,
            CancelOutcome.ERROR,
            message=f"HTTP {code} that is not the API's answer ({answer.server_text}): the "
            "job may still be tracked and running",
        )
    if code in codes.cancelled:
        return CancelResult(job_id, CancelOutcome.CANCELLED, JobStatus.CANCELLED, None, "cancelled")
    if 200 <= code < 300:
        # A status in the body settles it; an answer that says nothing is read once.
        state = answer.state if answer.is_api_answer else None
        if state is not None:
            settled = settled_by_status(state, cancel_accepted=True)
            if settled is not None:
                return settled
            if state.status is JobStatus.CANCELLING:
                return CancelResult.from_state(state, CancelOutcome.CANCELLING, "cancel accepted")
        if not confirm:
            return CancelResult(
                job_id, CancelOutcome.CANCELLING, JobStatus.CANCELLING, None, "cancel accepted"
            )
        return _after_read(job_id, read, accepted=answer.is_api_answer, answer=f"HTTP {code}")
    if code in codes.missing:
        return CancelResult(
            job_id, CancelOutcome.NOT_FOUND, message=answer.server_text or "not found"
        )
    if code in codes.unclear_refusals:
        said = f"HTTP {code}: {answer.server_text}"
        return _after_read(job_id, read, accepted=False, answer=said)
    return Next.ERROR


def _after_read(
    job_id: str, read: FollowUpRead | None, *, accepted: bool, answer: str
) -> CancelResult | Next:
    if read is None:
        return Next.READ
    if read.missing is not None:
        if accepted:  # WriteText forgets requests soon after they end
            return CancelResult(
                job_id, CancelOutcome.CANCELLING, message="cancel accepted; job now unknown"
            )
        return CancelResult(job_id, CancelOutcome.NOT_FOUND, message=read.missing or "not found")
    if read.failure is not None or read.state is None:
        if not accepted:
            return Next.READ_FAILED
        return CancelResult(
            job_id,
            CancelOutcome.CANCELLING,
            message=f"cancel accepted; reading the job failed: {read.failure}",
        )
    return decide_after_read(read.state, cancel_accepted=accepted, cancel_answer=answer)


def failed_call(job_id: str, reason: str) -> CancelResult:
    """The outcome of a cancel whose call failed (raised): ``error``, with why."""
    return CancelResult(job_id, CancelOutcome.ERROR, message=reason)


def settled_by_status(state: JobState, *, cancel_accepted: bool) -> CancelResult | None:
    """The outcome a job's status alone settles: cancelled after a yes, or any end status
    (then it had ended before this cancel). ``None`` while the job is still on its way."""
    if state.status is JobStatus.CANCELLED and cancel_accepted:
        return CancelResult.from_state(state, CancelOutcome.CANCELLED, "cancelled")
    if state.status.is_terminal:
        return CancelResult.from_state(
            state,
            CancelOutcome.ALREADY_FINISHED,
            f"job had already ended ({state.raw_status or state.status.value})",
        )
    return None


def decide_after_read(
    state: JobState, *, cancel_accepted: bool, cancel_answer: str
) -> CancelResult:
    """What an unclear cancel answer meant, given the job as read right after it.

    ``cancel_accepted`` is whether the API said yes (see :func:`says_yes`). A job that reads as
    finished was finished before (unless it reads cancelled after a yes); a job still running
    after anything but a yes was not stopped, which is an error, never a success.
    """
    settled = settled_by_status(state, cancel_accepted=cancel_accepted)
    if settled is not None:
        return settled
    if state.status is JobStatus.CANCELLING or cancel_accepted:
        return CancelResult.from_state(
            state, CancelOutcome.CANCELLING, f"cancel accepted; job reads {state.raw_status}"
        )
    return CancelResult.from_state(
        state,
        CancelOutcome.ERROR,
        f"the API did not accept the cancel ({cancel_answer}) and the job still reads "
        f"{state.raw_status!r}",
    )
