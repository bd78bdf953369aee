"""What an emulated job is, and how one API's jobs live: ids, clock, cancel, normalised status.

A :class:`JobModel` is data: each API module (``useapi_v2.py``, ``useapi_v3.py``,
``writetext.py``, and each useapi.net service's family module) describes its jobs with one, and the store (``state.py``) runs every model the
same way. There is no background thread: a job's status is *computed* from the time since it was
created (or cancelled) each time somebody reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


def iso(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, the shape both real APIs use."""
    text = datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z"


@dataclass
class Job:
    """One emulated job. Times ending in ``_mono`` are ``time.monotonic()`` values."""

    id: str
    api: str
    created_wall: float
    created_mono: float
    prompt: str = ""
    forced_status: str | None = None
    forced_mono: float | None = None
    error: str | None = None
    cancelled_mono: float | None = None
    cancel_calls: int = 0
    untracked: bool = False
    """A useapi scheduler service stopped tracking it; the job itself goes on."""

    def wall(self, mono: float) -> float:
        """Wall-clock time of a monotonic instant of this job (for ``created``/``updated``)."""
        return self.created_wall + (mono - self.created_mono)


class Clock(Protocol):
    """The settings a job's timeline reads (:class:`~.state.Config` has them)."""

    start_delay: float
    job_duration: float
    cancel_delay: float


@dataclass(frozen=True)
class JobModel:
    """How the jobs of one API live, as data.

    ``steps`` are the raw statuses a job passes through before it completes, each with the
    multiple of ``start_delay`` at which it is reached (the first at 0). A cancel shows
    ``cancelling`` for ``cancel_delay`` seconds when the API has that stage, then ``cancelled``
    with ``cancelled_error``. ``normalized`` maps lower-case raw statuses to the product's
    statuses (docs/statuses.md); ``failed_as_cancelled`` is the error text that turns a
    ``failed`` job into a cancelled one (useapi v3). ``pin_aliases`` lets callers pin a status by
    its familiar name (v3's ``cancelled`` is stored as ``failed`` with its error text).
    """

    key: str
    steps: tuple[tuple[int, str], ...]
    completed: str
    cancelled: str
    normalized: Mapping[str, str]
    new_id: Callable[[Callable[[], int]], str]
    cancelling: str | None = None
    cancelled_error: str | None = None
    failed_as_cancelled: str | None = None
    pin_aliases: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)

    def status_at(self, job: Job, now: float, clock: Clock) -> tuple[str, float]:
        """Raw status of ``job`` at monotonic time ``now``, and the time it was reached."""
        if job.forced_status is not None:
            return job.forced_status, job.forced_mono or job.created_mono
        if job.cancelled_mono is not None:
            if self.cancelling is None:
                return self.cancelled, job.cancelled_mono
            done = job.cancelled_mono + clock.cancel_delay
            if now >= done:
                return self.cancelled, done
            return self.cancelling, job.cancelled_mono
        elapsed = now - job.created_mono
        if elapsed >= clock.job_duration:
            return self.completed, job.created_mono + clock.job_duration
        for multiple, raw in reversed(self.steps):
            if elapsed >= multiple * clock.start_delay:
                return raw, job.created_mono + multiple * clock.start_delay
        return self.steps[0][1], job.created_mono

    def error_of(self, job: Job) -> str | None:
        """The error text the API shows on ``job`` (a pinned one, or the cancel's)."""
        if job.forced_status is not None:
            return job.error
        return self.cancelled_error if job.cancelled_mono is not None else None

    def pinned(self, raw_status: str, error: str | None) -> tuple[str, str | None]:
        """What pinning ``raw_status`` stores (see ``pin_aliases``)."""
        return self.pin_aliases.get(raw_status.lower(), (raw_status, error))

    def normalize(self, raw_status: str, error: str | None = None) -> str:
        """The normalised status of a raw one; unknown raw values are ``"unknown"``."""
        raw = raw_status.lower()
        marker = self.failed_as_cancelled
        if raw == "failed" and marker and (error or "").strip().lower() == marker.lower():
            return "cancelled"
        return self.normalized.get(raw, "unknown")
