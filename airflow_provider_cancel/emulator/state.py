"""Job store, clock, counters, tokens and fault queue of the emulator.

Everything mutable lives in one :class:`EmulatorState` guarded by one lock. The HTTP layer
(``server.py``) only reads and writes through it, so the in-process Python API (tests) and the
HTTP control endpoints (separate process: demos, benchmarks) see exactly the same state.

There is no background thread: a job's status is *computed* from the time since it was created
(or cancelled) each time somebody reads it. That keeps the emulator deterministic enough for tests
(``start_delay`` / ``job_duration`` / ``cancel_delay`` are the only knobs) and free of timers that
would outlive it.
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

USEAPI_V2 = "useapi_v2"
USEAPI_V3 = "useapi_v3"
WRITETEXT = "writetext"
APIS = (USEAPI_V2, USEAPI_V3, WRITETEXT)

#: Error text useapi v3 puts on a cancelled job (v3 has no "cancelled" status).
V3_CANCELLED_ERROR = "Job cancelled by user"

#: Raw statuses in which a job can still be cancelled, per API.
USEAPI_RUNNING = frozenset({"created", "started", "progress"})
WRITETEXT_ACTIVE = frozenset({"pending", "running"})

FAULT_KINDS = frozenset(
    {
        "429",
        "500",
        "502",
        "503",
        "504",
        "596",
        "html",
        "html200",
        "malformed",
        "empty",
        "drop",
        "hang",
        "expired_token",
    }
)
#: ``call`` filter values of :meth:`EmulatorState.inject`; "list" and "other" are extras.
FAULT_CALLS = frozenset({"token", "cancel", "status", "submit", "list", "other", "any"})
FAULT_APIS = frozenset({"useapi", "writetext"})
FINISHED_CANCEL_ANSWERS = frozenset({"200", "400", "404", "409"})
TOKEN_FIELDS = frozenset({"access_token", "accessToken", "token"})
EXPIRY_SECONDS_FIELDS = frozenset({"expires_in", "expiresIn"})
EXPIRY_ABSOLUTE_FIELDS = frozenset({"expires", "expiresAt"})

REQUEST_LOG_SIZE = 10_000

_NORMALIZED_USEAPI = {
    "created": "queued",
    "started": "running",
    "progress": "running",
    "cancelled": "cancelled",
    "completed": "completed",
    "failed": "failed",
    "moderated": "failed",
}
_NORMALIZED_WRITETEXT = {
    "pending": "queued",
    "running": "running",
    "cancelling": "cancelling",
    "cancelled": "cancelled",
    "completed": "completed",
    "timedout": "failed",
    "failed": "failed",
}


def iso(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, the shape both real APIs use."""
    text = datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z"


def normalize(api: str, raw_status: str, error: str | None = None) -> str:
    """Map a raw status to the product's normalised status (SPEC section 3).

    Mirrors the table the hooks implement, so tests can compare the emulator's view with the
    hook's view. Unknown raw values map to ``"unknown"``.
    """
    raw = raw_status.lower()
    if api == WRITETEXT:
        return _NORMALIZED_WRITETEXT.get(raw, "unknown")
    if api == USEAPI_V3:
        if raw == "failed" and (error or "").strip().lower() == V3_CANCELLED_ERROR.lower():
            return "cancelled"
        if raw == "cancelled":  # not a real v3 status
            return "unknown"
    return _NORMALIZED_USEAPI.get(raw, "unknown")


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

    def wall(self, mono: float) -> float:
        """Wall-clock time of a monotonic instant of this job (for ``created``/``updated``)."""
        return self.created_wall + (mono - self.created_mono)


@dataclass
class Fault:
    """A queued fault: served to the next ``count`` matching requests, or to a ``rate`` share."""

    kind: str
    count: int | None = None
    rate: float | None = None
    call: str | None = None
    api: str | None = None
    retry_after: float | int | None = None
    hang_seconds: float = 30.0

    def matches(self, api: str, call: str, region: bool) -> bool:
        if self.call not in (None, "any") and self.call != call:
            return False
        if self.api is not None and self.api != api:
            return False
        # An invalid_token answer only makes sense where access tokens are checked.
        return not (self.kind == "expired_token" and not region)


@dataclass
class Config:
    """Runtime-changeable knobs (see :meth:`EmulatorState.configure`)."""

    latency: float = 0.0
    job_duration: float = 300.0
    start_delay: float = 0.2
    cancel_delay: float = 1.0
    token_ttl: int = 86400
    useapi_token: str = "emulator-useapi-token"
    writetext_api_key: str = "emulator-writetext-key"
    finished_cancel_answer: str = "200"
    token_fields: tuple[str, str | None] = ("access_token", "expires_in")


def _empty_counters() -> dict[str, Any]:
    return {
        "requests": 0,
        "connections": 0,
        "token_requests": 0,
        "cancel_requests": 0,
        "status_requests": 0,
        "submit_requests": 0,
        "faults_served": 0,
        "by_route": {},
    }


def check_config(name: str, value: Any) -> Any:
    """Validate and coerce one configuration value; raise ``ValueError`` on nonsense."""
    if name in ("latency", "job_duration", "start_delay", "cancel_delay"):
        number = float(value)
        if number < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        return number
    if name == "token_ttl":
        return int(value)
    if name in ("useapi_token", "writetext_api_key"):
        return str(value)
    if name == "finished_cancel_answer":
        answer = str(value)
        if answer not in FINISHED_CANCEL_ANSWERS:
            raise ValueError(
                f"finished_cancel_answer must be one of {sorted(FINISHED_CANCEL_ANSWERS)}"
            )
        return answer
    if name == "token_fields":
        token_field, expiry_field = tuple(value)
        if token_field not in TOKEN_FIELDS:
            raise ValueError(f"token field must be one of {sorted(TOKEN_FIELDS)}")
        if expiry_field is not None and expiry_field not in (
            EXPIRY_SECONDS_FIELDS | EXPIRY_ABSOLUTE_FIELDS
        ):
            raise ValueError(f"unsupported expiry field {expiry_field!r}")
        return (token_field, expiry_field)
    raise ValueError(f"unknown emulator setting {name!r}")


@dataclass
class EmulatorState:
    """All mutable emulator state behind one lock."""

    config: Config = field(default_factory=Config)
    seed: int | None = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    jobs: dict[str, Job] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=_empty_counters)
    faults: list[Fault] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)
    requests_log: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE)
    )
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # ------------------------------------------------------------------ configuration
    def configure(self, **kwargs: Any) -> None:
        checked = {name: check_config(name, value) for name, value in kwargs.items()}
        with self.lock:
            for name, value in checked.items():
                setattr(self.config, name, value)

    def reset(self) -> None:
        """Forget jobs, counters (connections included), faults, tokens and the request log."""
        with self.lock:
            self.jobs.clear()
            self.counters = _empty_counters()
            self.faults.clear()
            self.tokens.clear()
            self.requests_log.clear()
            self.rng = random.Random(self.seed)

    # ------------------------------------------------------------------ jobs
    def new_job_id(self, api: str) -> str:
        """An id shaped like the real API's (useapi ids contain ``:``; WriteText uses UUIDs)."""
        if api == WRITETEXT:
            return str(uuid.uuid4())
        n = next(self._ids)
        now = datetime.now(tz=timezone.utc)
        if api == USEAPI_V2:
            stamp = now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}"
            return f"job:{stamp}-user:1-channel:1-bot:midjourney-{n}"
        stamp = now.strftime("%m%d%H%M%S") + f"{now.microsecond:06d}{n % 1000:03d}"
        return f"j{stamp}i-u1-c1-bot:midjourney-{n}"

    def create_job(
        self,
        api: str,
        job_id: str | None = None,
        status: str | None = None,
        prompt: str = "",
        error: str | None = None,
    ) -> Job:
        if api not in APIS:
            raise ValueError(f"api must be one of {APIS}, got {api!r}")
        with self.lock:
            if job_id is None:
                job_id = self.new_job_id(api)
            if job_id in self.jobs:
                raise ValueError(f"job {job_id!r} already exists")
            job = Job(
                id=job_id,
                api=api,
                created_wall=time.time(),
                created_mono=time.monotonic(),
                prompt=prompt,
            )
            self.jobs[job_id] = job
            if status is not None:
                self.set_status(job_id, status, error)
            return job

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def set_status(self, job_id: str, raw_status: str, error: str | None = None) -> None:
        """Pin a job's raw status (it stops following the clock).

        Convenience: ``"cancelled"`` on a v3 job is stored as v3 shows it, ``failed`` with
        the error "Job cancelled by user".
        """
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job.api == USEAPI_V3 and raw_status.lower() == "cancelled":
                raw_status, error = "failed", V3_CANCELLED_ERROR
            job.forced_status = raw_status
            job.forced_mono = time.monotonic()
            job.error = error

    def status_of(self, job: Job, now: float | None = None) -> tuple[str, float]:
        """Raw status as the API would show it now, and the monotonic time it was reached."""
        if now is None:
            now = time.monotonic()
        if job.forced_status is not None:
            return job.forced_status, job.forced_mono or job.created_mono
        cfg = self.config
        elapsed = now - job.created_mono
        if job.api == WRITETEXT:
            if job.cancelled_mono is not None:
                done = job.cancelled_mono + cfg.cancel_delay
                if now >= done:
                    return "Cancelled", done
                return "Cancelling", job.cancelled_mono
            if elapsed >= cfg.job_duration:
                return "Completed", job.created_mono + cfg.job_duration
            if elapsed >= cfg.start_delay:
                return "Running", job.created_mono + cfg.start_delay
            return "Pending", job.created_mono
        if job.cancelled_mono is not None:
            return ("cancelled" if job.api == USEAPI_V2 else "failed"), job.cancelled_mono
        if elapsed >= cfg.job_duration:
            return "completed", job.created_mono + cfg.job_duration
        if elapsed >= 2 * cfg.start_delay:
            return "progress", job.created_mono + 2 * cfg.start_delay
        if elapsed >= cfg.start_delay:
            return "started", job.created_mono + cfg.start_delay
        return "created", job.created_mono

    def error_of(self, job: Job) -> str | None:
        if job.forced_status is None and job.cancelled_mono is not None and job.api == USEAPI_V3:
            return V3_CANCELLED_ERROR
        return job.error if job.forced_status is not None else None

    def cancel(self, job: Job) -> None:
        """Record an accepted cancel: the job leaves any pinned status and follows the clock."""
        with self.lock:
            job.forced_status = None
            job.forced_mono = None
            job.error = None
            job.cancelled_mono = time.monotonic()

    def describe(self, job: Job) -> dict[str, Any]:
        """The ``Emulator.job()`` view: raw status, normalised status, cancel count."""
        with self.lock:
            raw, _ = self.status_of(job)
            return {
                "id": job.id,
                "api": job.api,
                "status": raw,
                "normalized": normalize(job.api, raw, self.error_of(job)),
                "error": self.error_of(job),
                "cancel_calls": job.cancel_calls,
                "created": job.created_wall,
            }

    # ------------------------------------------------------------------ tokens
    def issue_token(self) -> str:
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.config.token_ttl
        return token

    def token_valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.tokens.get(token)
            return expiry is not None and time.monotonic() < expiry

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # ------------------------------------------------------------------ faults
    def inject(
        self,
        kind: str,
        *,
        count: int | None = None,
        rate: float | None = None,
        call: str | None = None,
        api: str | None = None,
        retry_after: float | int | None = None,
        hang_seconds: float = 30.0,
    ) -> Fault:
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        if call is not None and call not in FAULT_CALLS:
            raise ValueError(f"call must be one of {sorted(FAULT_CALLS)}, got {call!r}")
        if api is not None and api not in FAULT_APIS:
            raise ValueError(f"api must be one of {sorted(FAULT_APIS)}, got {api!r}")
        if count is not None and rate is not None:
            raise ValueError("give count or rate, not both")
        if rate is not None and not 0.0 <= float(rate) <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if count is None and rate is None:
            count = 1
        fault = Fault(
            kind=kind,
            count=None if count is None else int(count),
            rate=None if rate is None else float(rate),
            call=call,
            api=api,
            retry_after=retry_after,
            hang_seconds=float(hang_seconds),
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, api: str, call: str, region: bool) -> Fault | None:
        """The fault to serve to this request, if any (first matching fault wins)."""
        with self.lock:
            for fault in list(self.faults):
                if not fault.matches(api, call, region):
                    continue
                if fault.count is not None:
                    if fault.count <= 0:
                        continue
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                elif fault.rate is None or self.rng.random() >= fault.rate:
                    continue
                self.counters["faults_served"] += 1
                return fault
            return None

    # ------------------------------------------------------------------ counters and log
    def count_connection(self) -> None:
        with self.lock:
            self.counters["connections"] += 1

    def record_request(self, entry: dict[str, Any], route: str, call: str) -> None:
        """Count one API request and append its log entry (status is filled in later)."""
        with self.lock:
            counters = self.counters
            counters["requests"] += 1
            key = f"{call}_requests"
            if key in counters:
                counters[key] += 1
            counters["by_route"][route] = counters["by_route"].get(route, 0) + 1
            self.requests_log.append(entry)

    def set_logged_status(self, entry: dict[str, Any], status: int | None) -> None:
        with self.lock:
            entry["status"] = status

    def snapshot_counters(self) -> dict[str, Any]:
        with self.lock:
            copy = dict(self.counters)
            copy["by_route"] = dict(self.counters["by_route"])
            return copy

    def snapshot_log(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(entry) for entry in self.requests_log]
