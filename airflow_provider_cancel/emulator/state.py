"""Job store, settings, counters, tokens and fault queue of the emulator.

Everything mutable lives in one :class:`EmulatorState` guarded by one lock. The HTTP layer
(``server.py``, ``control.py``) only reads and writes through it, so the in-process Python API
(tests) and the HTTP control endpoints (separate process: demos, benchmarks) see exactly the same
state. The store knows no API: each job follows the :class:`~.model.JobModel` of its API, handed
in by the routing table (``routes.py``).
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .model import Job, JobModel

FAULT_KINDS = frozenset(
    {
        "403",
        "410",
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
#: ``call`` filter values of a :class:`Fault`; "list" and "other" are extras.
FAULT_CALLS = frozenset({"token", "cancel", "status", "submit", "list", "other", "any"})
FAULT_APIS = frozenset({"useapi", "writetext"})
FINISHED_CANCEL_ANSWERS = ("200", "400", "404", "409")
TOKEN_FIELDS = frozenset({"access_token", "accessToken", "token"})
EXPIRY_SECONDS_FIELDS = frozenset({"expires_in", "expiresIn"})
EXPIRY_ABSOLUTE_FIELDS = frozenset({"expires", "expiresAt"})

REQUEST_LOG_SIZE = 10_000

_CHECK = "check"


def _seconds(name: str, value: Any) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def _integer(name: str, value: Any) -> int:
    return int(value)


def _text(name: str, value: Any) -> str:
    return str(value)


def _finished_cancel_answer(name: str, value: Any) -> str:
    answer = str(value)
    if answer not in FINISHED_CANCEL_ANSWERS:
        raise ValueError(f"{name} must be one of {sorted(FINISHED_CANCEL_ANSWERS)}")
    return answer


def _token_fields(name: str, value: Any) -> tuple[str, str | None]:
    token_field, expiry_field = tuple(value)
    if token_field not in TOKEN_FIELDS:
        raise ValueError(f"token field must be one of {sorted(TOKEN_FIELDS)}")
    if expiry_field is not None and expiry_field not in (
        EXPIRY_SECONDS_FIELDS | EXPIRY_ABSOLUTE_FIELDS
    ):
        raise ValueError(f"unsupported expiry field {expiry_field!r}")
    return (token_field, expiry_field)


def _setting(default: Any, check: Callable[[str, Any], Any]) -> Any:
    return field(default=default, metadata={_CHECK: check})


@dataclass
class Config:
    """The emulator's settings, each with its default and its check.

    The one list of settings: ``Emulator(**settings)``, :meth:`Emulator.configure`, the
    ``/_emulator/config`` endpoint and the command line's defaults are all derived from it.
    """

    latency: float = _setting(0.0, _seconds)
    job_duration: float = _setting(300.0, _seconds)
    start_delay: float = _setting(0.2, _seconds)
    cancel_delay: float = _setting(1.0, _seconds)
    token_ttl: int = _setting(86400, _integer)
    useapi_token: str = _setting("emulator-useapi-token", _text)
    writetext_api_key: str = _setting("emulator-writetext-key", _text)
    finished_cancel_answer: str = _setting("200", _finished_cancel_answer)
    token_fields: tuple[str, str | None] = _setting(("access_token", "expires_in"), _token_fields)

    @classmethod
    def names(cls) -> list[str]:
        """Every setting's name, sorted."""
        return sorted(spec.name for spec in fields(cls))

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Validated, coerced copies of ``settings``; ``ValueError`` names what is wrong."""
        known = {spec.name: spec for spec in fields(cls)}
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise ValueError(f"unknown emulator setting(s): {unknown}")
        return {name: known[name].metadata[_CHECK](name, value) for name, value in settings.items()}

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name, sorted."""
        return {name: getattr(self, name) for name in self.names()}


@dataclass
class Fault:
    """A queued fault: served to the next ``count`` matching requests, or to a ``rate`` share.

    Checked on creation; without ``count`` or ``rate`` it is served once.
    """

    kind: str
    count: int | None = None
    rate: float | None = None
    call: str | None = None
    api: str | None = None
    retry_after: float | int | None = None
    retry_after_json: float | int | None = None
    """Seconds a 429 names as ``retryAfter`` in its JSON body (useapi.net's services)."""
    hang_seconds: float = 30.0

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {self.kind!r}")
        if self.call is not None and self.call not in FAULT_CALLS:
            raise ValueError(f"call must be one of {sorted(FAULT_CALLS)}, got {self.call!r}")
        if self.api is not None and self.api not in FAULT_APIS:
            raise ValueError(f"api must be one of {sorted(FAULT_APIS)}, got {self.api!r}")
        if self.count is not None and self.rate is not None:
            raise ValueError("give count or rate, not both")
        if self.rate is not None and not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if self.count is None and self.rate is None:
            self.count = 1
        self.count = None if self.count is None else int(self.count)
        self.rate = None if self.rate is None else float(self.rate)
        self.hang_seconds = float(self.hang_seconds)

    def matches(self, api: str, call: str, region: bool) -> bool:
        """Whether this fault applies to a request of ``api`` and ``call``."""
        if self.call not in (None, "any") and self.call != call:
            return False
        if self.api is not None and self.api != api:
            return False
        # An invalid_token answer only makes sense where access tokens are checked.
        return not (self.kind == "expired_token" and not region)


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


@dataclass
class EmulatorState:
    """All mutable emulator state behind one lock; ``models`` are the APIs' jobs by key."""

    models: Mapping[str, JobModel]
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
    def configure(self, **settings: Any) -> None:
        """Change settings (checked first: nothing changes when one is wrong)."""
        checked = Config.check(settings)
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
    def _next_number(self) -> int:
        return next(self._ids)

    def create_job(
        self,
        api: str,
        job_id: str | None = None,
        status: str | None = None,
        prompt: str = "",
        error: str | None = None,
    ) -> Job:
        """Store a new job of ``api`` (an id shaped like the real API's unless given)."""
        model = self.models.get(api)
        if model is None:
            raise ValueError(f"api must be one of {tuple(self.models)}, got {api!r}")
        with self.lock:
            if job_id is None:
                job_id = model.new_id(self._next_number)
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
        """The job with this id, if any."""
        with self.lock:
            return self.jobs.get(job_id)

    def set_status(self, job_id: str, raw_status: str, error: str | None = None) -> None:
        """Pin a job's raw status (it stops following the clock); KeyError if unknown."""
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            job.forced_status, job.error = self.models[job.api].pinned(raw_status, error)
            job.forced_mono = time.monotonic()

    def status_of(self, job: Job) -> tuple[str, float]:
        """Raw status as the API would show it now, and the monotonic time it was reached."""
        return self.models[job.api].status_at(job, time.monotonic(), self.config)

    def error_of(self, job: Job) -> str | None:
        """The error text the API shows on ``job``."""
        return self.models[job.api].error_of(job)

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
            error = self.error_of(job)
            return {
                "id": job.id,
                "api": job.api,
                "status": raw,
                "normalized": self.models[job.api].normalize(raw, error),
                "error": error,
                "cancel_calls": job.cancel_calls,
                "tracked": not job.untracked,
                "created": job.created_wall,
            }

    # ------------------------------------------------------------------ tokens
    def issue_token(self) -> str:
        """A new WriteText access token, valid for ``token_ttl`` seconds."""
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.config.token_ttl
        return token

    def token_valid(self, token: str) -> bool:
        """Whether ``token`` was issued and has not expired."""
        with self.lock:
            expiry = self.tokens.get(token)
            return expiry is not None and time.monotonic() < expiry

    def expire_tokens(self) -> None:
        """Invalidate every issued access token."""
        with self.lock:
            self.tokens.clear()

    # ------------------------------------------------------------------ faults
    def add_fault(self, fault: Fault) -> None:
        """Queue a fault (after the ones already queued)."""
        with self.lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
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
        """Count one accepted TCP connection."""
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
        """Fill in the HTTP status of a logged request."""
        with self.lock:
            entry["status"] = status

    def snapshot_counters(self) -> dict[str, Any]:
        """A copy of the counters."""
        with self.lock:
            copy = dict(self.counters)
            copy["by_route"] = dict(self.counters["by_route"])
            return copy

    def snapshot_log(self) -> list[dict[str, Any]]:
        """Copies of the logged requests, oldest first."""
        with self.lock:
            return [dict(entry) for entry in self.requests_log]
