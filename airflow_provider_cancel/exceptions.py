"""The errors this provider raises. Messages lead with the cause, then carry the status, the
server's short message and the job id (last, once), never a token or key."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException


class CancelApiError(AirflowException):
    """An API call failed: HTTP status (or None for transport errors), job id, server message."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        job_id: str | None = None,
        server_message: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.job_id = job_id
        self.server_message = server_message
        if status_code is not None and f"HTTP {status_code}" not in message:
            message = f"{message} (HTTP {status_code})"
        if server_message:
            message = f"{message} — server said: {server_message}"
        self.reason = message
        """The message without the job id: for a line that already names the job."""
        super().__init__(message if job_id is None else f"{message} — job {job_id!r}")


class InvalidJobIdError(CancelApiError, ValueError):
    """A job id (or list of ids) is unusable; raised before any request is sent."""


class ConnectionConfigError(CancelApiError):
    """The Airflow connection is missing something the API needs (e.g. its token)."""


class AuthenticationError(CancelApiError):
    """401/403: the token, API key or access token was refused."""


class PaymentRequiredError(CancelApiError):
    """402: the account has no (or an expired) subscription."""


class JobNotFoundError(CancelApiError):
    """404/410: the API does not know the job, or forgot it."""


class RateLimitedError(CancelApiError):
    """429 still answered after every retry."""


class ServerError(CancelApiError):
    """5xx still answered after every retry."""


class ModerationPendingError(CancelApiError):
    """useapi 596: a human must clear a moderation message on the Discord account."""


class InvalidResponseError(CancelApiError):
    """The API answered something that is not the JSON it documents (HTML, truncated, empty)."""


class TransportError(CancelApiError):
    """No answer: connection refused or reset, DNS failure, or timeout, after every retry."""


NOT_SENT = "not sent: the time given to cancel ran out"
"""What a request refused by :class:`NotSentError` says."""


class NotSentError(TransportError):
    """Refused before sending: the time a stopped task gives its cancels has run out (see
    ``JobApiHook.stop_sending_at``)."""


def missing_job_message(error: JobNotFoundError) -> str:
    """What a sensor says when a job it waits for disappears."""
    return (
        f"job {error.job_id!r} disappeared while waiting (not found: {error.server_message}); "
        "set missing_job_status to read a missing job as a status (some APIs drop finished "
        "jobs)"
    )
