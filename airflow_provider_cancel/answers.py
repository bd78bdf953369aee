"""What an API's answer means, whatever the API: pure rules over a response or a job's state,
used by every API module. No I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_cancel.status import CancelOutcome, CancelResult, JobState, JobStatus

if TYPE_CHECKING:
    from airflow_provider_cancel.hooks.transport import ApiResponse


def server_message(response: ApiResponse) -> str:
    """The human message in an error body, whatever shape the API chose (not yet scrubbed or
    shortened: see ``JobApiHook.server_said``)."""
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
                return text
    return response.text.strip()


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


def settled_by_status(state: JobState, *, cancel_accepted: bool) -> CancelResult | None:
    """The outcome a job's status alone settles: cancelled after a yes, or any end status
    (then it had ended before this cancel). ``None`` while the job is still on its way."""
    if state.status is JobStatus.CANCELLED and cancel_accepted:
        return CancelResult.from_state(state, CancelOutcome.CANCELLED, "cancelled")
    if state.status.is_terminal:
        return CancelResult.from_state(
            state, CancelOutcome.ALREADY_FINISHED, f"job had already ended ({state.raw_status})"
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
