"""What a job's state and a cancel's outcome are, whatever the API. Pure data, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class JobStatus(enum.StrEnum):
    """A remote job's status, normalised across APIs (docs/statuses.md)."""

    QUEUED = "queued"  # accepted, not started yet
    RUNNING = "running"
    CANCELLING = "cancelling"  # asked to cancel, not stopped yet (WriteText's "Cancelling")
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"  # ended without a result: failed, moderated or timed out upstream
    UNKNOWN = "unknown"  # a raw status this provider does not know; never counts as success

    @property
    def is_terminal(self) -> bool:
        """Whether the status can no longer change."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.CANCELLED, JobStatus.COMPLETED, JobStatus.FAILED})


class CancelOutcome(enum.StrEnum):
    """What a cancel request achieved for one job."""

    CANCELLED = "cancelled"
    """The job is cancelled now."""
    CANCELLING = "cancelling"
    """The API accepted the cancel; the job is on its way to cancelled."""
    ALREADY_FINISHED = "already_finished"
    """The job had already ended (cancelled, completed or failed) before this cancel."""
    NOT_FOUND = "not_found"
    """The API does not know the job (404): a wrong id, or a finished job it forgot."""
    ERROR = "error"
    """The cancel could not be done; the message says why."""
    UNTRACKED = "untracked"
    """The API stopped tracking the job but says the work may go on upstream (and bill):
    not a failure of the task, never ``cancelled``."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class JobState:
    """A job as read from an API: the normalised status, the raw one and the raw body."""

    job_id: str
    status: JobStatus
    raw_status: str | None
    body: Any = field(default=None, repr=False, compare=False)
    message: str = ""

    def status_text(self) -> str:
        """``status completed``, with the raw status only when it says something more."""
        raw = self.raw_status
        if raw is None or raw.strip().lower() == self.status.value:
            return f"status {self.status.value}"
        return f"status {self.status.value} (raw {raw!r})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (no raw body: it can be large) for XCom and trigger events."""
        return {
            "status": self.status.value,
            "raw_status": self.raw_status,
            "message": self.message,
        }


@dataclass(frozen=True)
class CancelResult:
    """What cancelling one job did; one entry of the operator's report."""

    job_id: str
    outcome: CancelOutcome
    status: JobStatus = JobStatus.UNKNOWN
    raw_status: str | None = None
    message: str = ""

    def to_report(self) -> dict[str, Any]:
        """The JSON-serialisable entry that goes to XCom."""
        return {
            "outcome": self.outcome.value,
            "status": self.status.value,
            "raw_status": self.raw_status,
            "message": self.message,
        }

    @classmethod
    def from_state(cls, state: JobState, outcome: CancelOutcome, message: str) -> CancelResult:
        """A result carrying ``state``'s id and statuses."""
        return cls(state.job_id, outcome, state.status, state.raw_status, message)


def map_raw_status(raw: object, table: dict[str, JobStatus]) -> JobStatus:
    """Look a raw status up case-insensitively; anything unexpected is ``UNKNOWN``."""
    if not isinstance(raw, str):
        return JobStatus.UNKNOWN
    return table.get(raw.strip().lower(), JobStatus.UNKNOWN)


@dataclass(frozen=True)
class Assessment:
    """Where a set of jobs stands against the statuses a sensor waits for."""

    done: bool
    failures: dict[str, str]
    """Job id → why it can never reach a success status (fail fast)."""
    waiting: list[str]

    @property
    def message(self) -> str:
        """One line saying where the wait stands."""
        if self.failures:
            failed = list(self.failures.items())
            reasons = "; ".join(f"{job_id!r}: {why}" for job_id, why in failed[:5])
            more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
            return f"{len(failed)} job(s) will never reach a success status: {reasons}{more}"
        if self.done:
            return "every job reached a success status"
        shown = ", ".join(map(repr, self.waiting[:10]))
        more = f" and {len(self.waiting) - 10} more" if len(self.waiting) > 10 else ""
        return f"waiting for {len(self.waiting)} job(s): {shown}{more}"


def parse_statuses(statuses: Any, *, task: str = "<unknown>") -> frozenset[JobStatus]:
    """Validate ``success_statuses``: known, non-empty, and never ``unknown``."""
    if isinstance(statuses, (str, JobStatus)):
        statuses = [statuses]
    try:
        parsed = frozenset(JobStatus(str(s).strip().lower()) for s in statuses)
    except (TypeError, ValueError):
        allowed = ", ".join(s.value for s in JobStatus if s is not JobStatus.UNKNOWN)
        raise ValueError(
            f"Task {task!r}: success_statuses={statuses!r} must be among {allowed}"
        ) from None
    if not parsed or JobStatus.UNKNOWN in parsed:
        raise ValueError(
            f"Task {task!r}: success_statuses={statuses!r} must be non-empty and may not "
            "contain 'unknown' (an unrecognised status never counts as done)"
        )
    return parsed


def assess(states: dict[str, JobState], success: frozenset[JobStatus]) -> Assessment:
    """Done when every job is in ``success``; a terminal status outside it can never change."""
    failures = {
        job_id: state.status_text()
        for job_id, state in states.items()
        if state.status not in success and state.status.is_terminal
    }
    waiting = [job_id for job_id, state in states.items() if state.status not in success]
    return Assessment(done=not waiting, failures=failures, waiting=waiting)
