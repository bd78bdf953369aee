"""Which typed error an error answer becomes: the refusal codes every API shares, as data.
API modules add their own meanings (a 404 from WriteText's token endpoint is a connection
error, never a missing job) before falling back on this table."""

from __future__ import annotations

from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    CancelApiError,
    JobNotFoundError,
    ModerationPendingError,
    PaymentRequiredError,
    RateLimitedError,
    ServerError,
)

REFUSED = (AuthenticationError, "was refused: check the {secret} of connection {conn}")
GONE = (JobNotFoundError, "found no such job")
"""404 and 410 are not retried (see ``Transport``): asking again cannot bring a job back."""

BY_CODE: dict[int, tuple[type[CancelApiError], str]] = {
    401: REFUSED,
    403: (
        AuthenticationError,
        "was refused (403 Forbidden): the job belongs to another account, or the {secret} of "
        "connection {conn} may not act on it",
    ),
    402: (PaymentRequiredError, "was refused: no active subscription"),
    404: GONE,
    410: (JobNotFoundError, "found the job expired (410 Gone: the API keeps jobs for a while)"),
    429: (RateLimitedError, "was rate limited after {retries}"),
    596: (ModerationPendingError, "is blocked by a pending moderation message"),
}
"""Status code -> (error, what the call did); ``{secret}``, ``{conn}`` (the connection id,
quoted) and ``{retries}`` are filled in."""
SERVER_ERROR = (ServerError, "failed with a server error after {retries}")
ANY_OTHER = (CancelApiError, "failed")


def error_kind(status_code: int) -> tuple[type[CancelApiError], str]:
    """The error class and the wording for an error answer's status code."""
    if status_code in BY_CODE:
        return BY_CODE[status_code]
    return SERVER_ERROR if status_code >= 500 else ANY_OTHER
