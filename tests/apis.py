"""The job APIs the shared tests run over, one description each: the hook contract
(``tests/hooks/test_hook_contract.py``) and the fault matrix (``tests/reliability/fault_matrix.py``)
read only what is here, so an API added to :data:`APIS` gets both.

A description says what the tests need and nothing the code under test computes: how to reach
the API (hook, connection, the emulator's secret setting), its calls as the API's docs give
them, how to make a running, a finished and a missing job in the emulator, and the answers to
expect (the cancel outcomes, what each raw status reads as). Answers are written out here, never
taken from the hook.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_cancel.hooks.base import JobApiHook
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.writetext import WriteTextHook
from airflow_provider_cancel.job_ids import encode_path_segment, encode_query_value
from tests import fake_jobs

Status = tuple[str, str | None, str]
"""(raw status, error text, the normalised status it reads as)."""


@dataclass(frozen=True)
class Token:
    """An access-token exchange the API's job calls need first."""

    url: str
    """The token endpoint on the API's real host (scripted tests)."""
    job_host_extra: str
    """The connection extra that names the job calls' host instead (broken-host faults)."""
    script: Callable[[Any], None]
    """Script a good token answer on a ``tests.hooks.conftest.FakeApi``."""


@dataclass(frozen=True)
class JobApi:
    """One job API as the shared tests see it."""

    name: str
    """The emulator's job key (``Emulator.create_job(name, ...)``); also the test id."""
    label: str
    """Short name of its columns in the printed fault matrix."""
    hook_class: Callable[..., JobApiHook]
    conn_type: str
    extra: Mapping[str, str]
    """The connection extra that chooses this API among its hook's."""
    secret_setting: str
    """The emulator setting holding the secret it accepts (``useapi_token``...)."""
    fault_family: str | None
    """The emulator's family name of it, as fault filters (``inject(api=...)``) see it;
    ``None``: faults are injected unfiltered (the emulator filters only its own families)."""
    host: str
    """The real host of its job calls (scripted tests; for a token API, the host its scripted
    token answer names)."""
    cancel: tuple[str, str]
    """(method, path) of the cancel call, as the API's docs give it: ``{id}`` is the id as a
    path segment, ``{qid}`` as a query value."""
    status: tuple[str, str] | None
    """(method, path) of the job read; ``None``: the API has none."""
    cancel_ok: int
    """The HTTP status of an accepted cancel."""
    running: tuple[str, ...]
    """Raw statuses of a job still running; the first is the one the fault matrix pins."""
    completed: str
    """The raw status of a completed job."""
    status_field: str
    """The field of a job body that holds its raw status."""
    cancel_running: str
    """The outcome of a cancel of a running job."""
    cancel_finished: str
    """The outcome of a cancel of a finished job."""
    submit: Callable[[Any], str]
    """Create a running job in the emulator; returns its id."""
    connection_says: Callable[[Any], str]
    """What an ok ``test_connection`` message names, given the emulator."""
    finished: tuple[tuple[str, str], ...] = ()
    """(raw status, normalised) of finished jobs, each cancelled in the contract."""
    statuses: tuple[Status, ...] = ()
    """Raw statuses and what they read as (read through the emulator)."""
    agreement: tuple[str, ...] = ()
    """Raw statuses the sync and the async path must read and cancel alike."""
    finished_cancel_answers: tuple[str, ...] = ("200",)
    """The emulator's ``finished_cancel_answer`` settings that matter to it."""
    cancelled_at_once: bool = True
    """A cancelled running job reads ``cancelled`` at once (else ``cancelling`` first)."""
    stops_the_job: bool = True
    """False where a cancel only stops the API's tracking: the job goes on."""
    odd_ids: tuple[str, ...] = ()
    own_faults: frozenset[str] = frozenset()
    """Emulator fault kinds that are codes of this API only (``403``, ``410``)."""
    token: Token | None = None
    emulated: Any = None
    """The emulator ``Mount`` serving it, for an API the emulator does not bring itself."""

    def __str__(self) -> str:
        return self.name

    @property
    def reads(self) -> bool:
        """Whether the API can read one job."""
        return self.status is not None

    def url(self, call: tuple[str, str], job_id: str) -> tuple[str, str]:
        """(method, URL) of ``call`` for ``job_id`` on the API's real host."""
        method, path = call
        path = path.format(id=encode_path_segment(job_id), qid=encode_query_value(job_id))
        return method, f"{self.host}{path}"

    def status_call(self, job_id: str) -> tuple[str, str]:
        """(method, URL) of the job read, as sent to the API's real host."""
        assert self.status is not None, f"{self} has no job read"
        return self.url(self.status, job_id)

    def cancel_call(self, job_id: str) -> tuple[str, str]:
        """(method, URL) of the cancel call, as sent to the API's real host."""
        return self.url(self.cancel, job_id)


def apis(*, reads: bool) -> list[JobApi]:
    """The APIs that can (or cannot) read one job."""
    return [api for api in APIS if api.reads is reads]


# ---------------------------------------------------------------------- useapi.net

USEAPI = "https://api.useapi.net"
WRITETEXT = "https://api.writetext.ai"
WRITETEXT_REGION = "https://api-eu.writetext.ai"

COMMON_ODD_IDS = ("1/2?x=y#frag", "100%", "%2E%2E", "with space", "a/../b", "..", ".")
USEAPI_ODD_IDS = (*COMMON_ODD_IDS, "%2F", "a+b&c=d;e", "ジョブ ü", "../../v2/account")
USEAPI_CODES = frozenset({"403", "410"})
USEAPI_FINISHED = (("completed", "completed"), ("failed", "failed"), ("moderated", "failed"))
REFUSALS = ("200", "400", "409", "404")
"""A cancel of a finished job: useapi.net does not document the answer (research notes)."""

MIDJOURNEY_V2_STATUSES: tuple[Status, ...] = (
    ("created", None, "queued"),
    ("Created", None, "queued"),
    ("started", None, "running"),
    ("STARTED", None, "running"),
    ("progress", None, "running"),
    ("cancelled", None, "cancelled"),
    ("Cancelled", None, "cancelled"),
    ("completed", None, "completed"),
    ("COMPLETED", None, "completed"),
    ("failed", None, "failed"),
    ("failed", "Job cancelled by user", "failed"),
    ("moderated", None, "failed"),
    ("Moderated", None, "failed"),
    ("paused", None, "unknown"),
    ("queued", None, "unknown"),
    ("", None, "unknown"),
)
MIDJOURNEY_V3_STATUSES: tuple[Status, ...] = (
    ("created", None, "queued"),
    ("CREATED", None, "queued"),
    ("started", None, "running"),
    ("progress", None, "running"),
    ("Progress", None, "running"),
    ("failed", "Job cancelled by user", "cancelled"),
    ("failed", "job cancelled by user", "cancelled"),
    ("Failed", "JOB CANCELLED BY USER", "cancelled"),
    ("completed", None, "completed"),
    ("Completed", None, "completed"),
    ("failed", None, "failed"),
    ("failed", "Discord error", "failed"),
    ("moderated", None, "failed"),
    ("MODERATED", None, "failed"),
    ("paused", None, "unknown"),
    ("", None, "unknown"),
)
FLOWMUSIC_STATUSES: tuple[Status, ...] = (
    ("pending", None, "running"),
    ("Pending", None, "running"),
    ("completed", None, "completed"),
    ("failed", None, "failed"),
    ("failed", "user_cancelled", "cancelled"),
    ("failed", "some_other_error", "failed"),
    ("", None, "unknown"),
)
MIDJOURNEY_AGREEMENT = ("created", "progress", "completed", "failed", "cancelled", "odd")


def _useapi(
    name: str,
    label: str,
    extra: Mapping[str, str],
    cancel: tuple[str, str],
    status: tuple[str, str] | None,
    **more: Any,
) -> JobApi:
    """A useapi.net API: one token (``Authorization: Bearer``), faults of family ``useapi``."""
    service, version = extra.get("service", "midjourney"), extra.get("api_version", "v2")
    defaults: dict[str, Any] = {
        "secret_setting": "useapi_token",
        "fault_family": "useapi",
        "host": USEAPI,
        "completed": "completed",
        "status_field": "status",
        "own_faults": USEAPI_CODES,
        "odd_ids": USEAPI_ODD_IDS,
        "submit": lambda emulator: str(emulator.submit_useapi(service=service, version=version)),
        "connection_says": lambda emulator: (
            f"service {service}" if "service" in extra else f"API {version}"
        ),
    }
    return JobApi(
        name, label, UseApiHook, "useapi", extra, cancel=cancel, status=status, **defaults | more
    )


USEAPI_APIS = (
    _useapi(
        "useapi_v2",
        "v2",
        {},
        ("GET", "/v2/jobs/cancel/?jobid={qid}"),
        ("GET", "/v2/jobs/?jobid={qid}"),
        cancel_ok=200,
        running=("started", "created", "progress"),
        cancel_running="cancelled",
        cancel_finished="already_finished",
        finished=USEAPI_FINISHED,
        statuses=MIDJOURNEY_V2_STATUSES,
        agreement=MIDJOURNEY_AGREEMENT,
        finished_cancel_answers=REFUSALS,
    ),
    _useapi(
        "useapi_v3",
        "v3",
        {"api_version": "v3"},
        ("DELETE", "/v3/midjourney/jobs/{id}"),
        ("GET", "/v3/midjourney/jobs/{id}"),
        cancel_ok=204,
        running=("started", "created", "progress"),
        cancel_running="cancelled",
        cancel_finished="already_finished",
        finished=USEAPI_FINISHED,
        statuses=MIDJOURNEY_V3_STATUSES,
        agreement=MIDJOURNEY_AGREEMENT,
        finished_cancel_answers=REFUSALS,
    ),
    # One service of each useapi.net family beside Midjourney (docs/useapi-services.md).
    _useapi(
        "faceswap",
        "FS",
        {"service": "faceswap"},
        ("GET", "/v1/faceswap/jobs/cancel/?jobid={qid}"),
        ("GET", "/v1/faceswap/jobs/?jobid={qid}"),
        cancel_ok=200,
        running=("started", "created", "progress"),
        cancel_running="cancelled",
        cancel_finished="already_finished",
        finished=USEAPI_FINISHED,
        statuses=MIDJOURNEY_V2_STATUSES,
        agreement=MIDJOURNEY_AGREEMENT,
        finished_cancel_answers=REFUSALS,
    ),
    _useapi(
        "flowmusic",
        "FM",
        {"service": "flowmusic"},
        ("DELETE", "/v1/flowmusic/jobs/{id}"),
        ("GET", "/v1/flowmusic/jobs/{id}"),
        cancel_ok=204,  # whether or not the job still ran: the job is read
        running=("pending",),
        cancel_running="cancelled",
        cancel_finished="already_finished",
        finished=(("completed", "completed"), ("failed", "failed")),
        statuses=FLOWMUSIC_STATUSES,
        agreement=("pending", "completed", "failed"),
    ),
    _useapi(
        "kling",
        "KL",
        {"service": "kling"},
        ("DELETE", "/v1/kling/scheduler/{id}"),
        None,  # the task read needs the account's email
        cancel_ok=204,
        running=("processing", "queued"),
        cancel_running="untracked",
        # "Unable to locate running task_id": it runs no more, or never did.
        cancel_finished="not_found",
        stops_the_job=False,
    ),
)

# ---------------------------------------------------------------------- WriteText.ai


def _writetext_token(fake_api: Any) -> None:
    fake_api.token()


WRITETEXT_API = JobApi(
    "writetext",
    "WT",
    WriteTextHook,
    "writetext",
    {},
    secret_setting="writetext_api_key",
    fault_family="writetext",
    host=WRITETEXT_REGION,
    cancel=("POST", "/text/Generate/Bulk/{id}/cancel"),
    status=("GET", "/text/Generate/Bulk/{id}"),
    cancel_ok=200,
    running=("Running", "Pending"),
    completed="Completed",
    status_field="status",
    cancel_running="cancelling",
    cancel_finished="already_finished",
    submit=lambda emulator: str(emulator.submit_writetext()),
    connection_says=lambda emulator: str(emulator.region),
    finished=(("Completed", "completed"), ("Failed", "failed"), ("TimedOut", "failed")),
    statuses=(
        ("Pending", None, "queued"),
        ("pending", None, "queued"),
        ("Running", None, "running"),
        ("RUNNING", None, "running"),
        ("Cancelling", None, "cancelling"),
        ("cancelling", None, "cancelling"),
        ("Cancelled", None, "cancelled"),
        ("CANCELLED", None, "cancelled"),
        ("Completed", None, "completed"),
        ("completed", None, "completed"),
        ("TimedOut", None, "failed"),
        ("timedout", None, "failed"),
        ("Failed", None, "failed"),
        ("FAILED", None, "failed"),
        ("Queued", None, "unknown"),
        ("Paused", None, "unknown"),
        ("", None, "unknown"),
    ),
    agreement=("Pending", "Running", "Cancelling", "Completed", "TimedOut"),
    cancelled_at_once=False,
    odd_ids=(*COMMON_ODD_IDS, "a+b&c=d", "リクエスト ü", "../../web/apitoken/accesstoken"),
    token=Token(f"{WRITETEXT}/web/apitoken/accesstoken", "region", _writetext_token),
)

# ---------------------------------------------------------------------- a test-only API


def _fake_job(emulator: Any) -> str:
    job_id = f"fj-{uuid.uuid4().hex[:12]}"
    emulator.create_job(fake_jobs.KEY, job_id)
    return job_id


FAKE_JOBS_API = JobApi(
    fake_jobs.KEY,
    "FJ",
    fake_jobs.FakeJobsHook,
    fake_jobs.KEY,
    {},
    secret_setting="useapi_token",  # the emulated fake API takes this setting's value as key
    fault_family=None,
    host=fake_jobs.FakeJobsHook.default_host,
    cancel=("POST", "/fake/v1/jobs/{id}/stop"),
    status=("GET", "/fake/v1/jobs/{id}"),
    cancel_ok=202,
    running=("working", "waiting"),
    completed="done",
    status_field="state",
    cancel_running="cancelled",
    cancel_finished="already_finished",
    submit=_fake_job,
    connection_says=lambda emulator: "Connected to fake jobs",
    finished=(("done", "completed"), ("broken", "failed")),
    statuses=(
        ("waiting", None, "queued"),
        ("working", None, "running"),
        ("Working", None, "running"),
        ("done", None, "completed"),
        ("broken", None, "failed"),
        ("stopped", None, "cancelled"),
        ("paused", None, "unknown"),
        ("", None, "unknown"),
    ),
    agreement=("waiting", "working", "done", "broken", "stopped"),
    odd_ids=(*COMMON_ODD_IDS, "a+b&c=d", "../../me", "ジョブ"),
    emulated=fake_jobs.MOUNT,
)

APIS: list[JobApi] = [*USEAPI_APIS, WRITETEXT_API, FAKE_JOBS_API]
"""Every API the shared tests run over."""
BY_NAME = {api.name: api for api in APIS}
MOUNTS = tuple(api.emulated for api in APIS if api.emulated is not None)
"""What the tests' emulators serve beyond their own APIs (``Emulator(mounts=MOUNTS)``)."""
