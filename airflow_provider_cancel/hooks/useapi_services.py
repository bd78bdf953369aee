"""useapi.net's services that can cancel a job, as descriptions: how to cancel and read one job,
what its statuses mean, how a cancelled job reads and what a cancel's codes mean. One API token
drives all of them; a connection (or ``hook_params``) picks one with ``service``.

The services fall into three families (``docs/useapi-services.md`` has the table and the doc
dates each description is built from):

* **discord**: ``GET /{v}/{svc}/jobs/cancel/?jobid=`` answers 200 with ``status: cancelled``;
* **jobs**: ``DELETE /v1/{svc}/jobs/{id}`` answers 204 whether or not the job still ran, so the
  job is read to tell ``cancelled`` (``failed`` with an error marker) from ``already_finished``;
* **scheduler**: ``DELETE /v1/{svc}/scheduler/{id}`` only stops useapi's tracking: the provider
  keeps generating (and billing), reported as outcome ``untracked``.

Adding a service is one description here, its emulator model and its tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from airflow_provider_cancel.answers import CancelCodes
from airflow_provider_cancel.status import JobStatus

DISCORD, JOBS, SCHEDULER = "discord", "jobs", "scheduler"

MIDJOURNEY = {
    "created": JobStatus.QUEUED,
    "started": JobStatus.RUNNING,
    "progress": JobStatus.RUNNING,
    "cancelled": JobStatus.CANCELLED,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "moderated": JobStatus.FAILED,
}
MIDJOURNEY_V3 = {raw: status for raw, status in MIDJOURNEY.items() if raw != "cancelled"}
JOB_STATUSES = {
    "created": JobStatus.QUEUED,
    "pending": JobStatus.RUNNING,
    "started": JobStatus.RUNNING,
    "running": JobStatus.RUNNING,
    "processing": JobStatus.RUNNING,
    "progress": JobStatus.RUNNING,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
}
MINIMAX_VIDEO = {
    "0": JobStatus.QUEUED,
    "11": JobStatus.QUEUED,
    "1": JobStatus.RUNNING,
    "12": JobStatus.RUNNING,
    "2": JobStatus.COMPLETED,
    "3": JobStatus.FAILED,
    "5": JobStatus.FAILED,  # 5, 7, 14: moderated
    "7": JobStatus.FAILED,
    "14": JobStatus.FAILED,
}

# A refusal whose meaning the docs leave open may be "it had ended already": read the job.
UNCLEAR = frozenset({400, 409, 422})
DISCORD_CODES = CancelCodes(unclear_refusals=UNCLEAR | {404})
JOBS_CODES = CancelCodes(missing=frozenset({404}), unclear_refusals=UNCLEAR)
SCHEDULER_CODES = CancelCodes(
    untracked=frozenset({200, 202, 204}),
    # "Unable to locate running ...": it runs no more, or never did.
    missing=frozenset({404}),
    unclear_refusals=frozenset(),
)


@dataclass(frozen=True)
class UseApiService:
    """How one useapi.net service cancels and reads a job. Paths are templates: ``{id}`` is
    the id percent-encoded for a path segment, ``{qid}`` for a query value."""

    name: str
    version: str
    family: str
    cancel: tuple[str, str]
    """(method, path) of the cancel call."""
    status: tuple[str, str] | None
    """(method, path) reading one job; ``None``: the service has no per-job read."""
    statuses: Mapping[str, JobStatus]
    codes: CancelCodes
    cancelled_marker: str | None = None
    """A job that reads ``failed`` with this error (or error code) was cancelled."""
    status_field: str = "status"
    video_cancel: tuple[str, str] | None = None
    """(id marker, path): for ids with the marker, ``POST path {"videoId": id}`` tries to stop
    the generation itself (MiniMax) instead of only the tracking."""
    doc: str = field(default="", compare=False)
    """The useapi.net page and date this description is built from."""

    @property
    def stops_the_work(self) -> bool:
        """False where a cancel only stops useapi's tracking (nothing to wait for)."""
        return self.family != SCHEDULER


def _discord(name: str, version: str, prefix: str, doc: str) -> UseApiService:
    return UseApiService(
        name,
        version,
        DISCORD,
        ("GET", f"{prefix}/jobs/cancel/?jobid={{qid}}"),
        ("GET", f"{prefix}/jobs/?jobid={{qid}}"),
        MIDJOURNEY,
        DISCORD_CODES,
        doc=doc,
    )


def _jobs(name: str, marker: str, doc: str) -> UseApiService:
    path = f"/v1/{name}/jobs/{{id}}"
    return UseApiService(
        name, "v1", JOBS, ("DELETE", path), ("GET", path), JOB_STATUSES, JOBS_CODES, marker, doc=doc
    )


SERVICES: dict[tuple[str, str], UseApiService] = {
    (s.name, s.version): s
    for s in (
        _discord("midjourney", "v2", "/v2", "api-v2/get-jobs-cancel, Dec 2023 (Oct 7 2024)"),
        UseApiService(
            "midjourney",
            "v3",
            JOBS,
            ("DELETE", "/v3/midjourney/jobs/{id}"),
            ("GET", "/v3/midjourney/jobs/{id}"),
            MIDJOURNEY_V3,
            # 204 is documented as "cancelled"; a finished job's cancel is refused.
            CancelCodes(cancelled=frozenset({204}), unclear_refusals=UNCLEAR | {404}),
            "job cancelled by user",
            doc="api-midjourney-v3/delete-midjourney-jobs-jobid, Oct 27 2025",
        ),
        _discord("faceswap", "v1", "/v1/faceswap", "api-faceswap-v1/get-faceswap-jobs-cancel"),
        _discord("pixverse", "v1", "/v1/pixverse", "api-pixverse-v1/get-pixverse-jobs-cancel"),
        _jobs(
            "flowmusic",
            "user_cancelled",
            "api-flowmusic-v1/delete-flowmusic-jobs-jobid, Jun 3 2026",
        ),
        _jobs(
            "gemini-notebook",
            "cancelled",
            "api-gemini-notebook-v1/delete-gemini-notebook-jobs-jobid, Sep 29 2026",
        ),
        UseApiService(
            "kling",
            "v1",
            SCHEDULER,
            ("DELETE", "/v1/kling/scheduler/{id}"),
            None,  # GET /v1/kling/tasks/{id} needs the account's email as well
            {},
            SCHEDULER_CODES,
            doc="api-kling-v1/del-kling-scheduler-task_id, Apr 18 2025",
        ),
        UseApiService(
            "minimax",
            "v1",
            SCHEDULER,
            ("DELETE", "/v1/minimax/scheduler/{id}"),
            ("GET", "/v1/minimax/videos/{id}"),
            MINIMAX_VIDEO,
            SCHEDULER_CODES,
            video_cancel=("-video:", "/v1/minimax/videos/cancel"),
            doc="api-minimax-v1/del-minimax-scheduler-videoId, Sep 25 2024 (Mar 17 2025); "
            "post-minimax-videos-cancel, Jan 9 2025",
        ),
        UseApiService(
            "tempolor",
            "v1",
            SCHEDULER,
            ("DELETE", "/v1/tempolor/scheduler/{id}"),
            None,  # only a list of running jobs is documented
            {},
            SCHEDULER_CODES,
            doc="api-tempolor-v1/del-tempolor-scheduler-job_id, May 15 2025",
        ),
        UseApiService(
            "pixverse",
            "v2",
            SCHEDULER,
            ("DELETE", "/v2/pixverse/scheduler/{id}"),
            None,  # GET /v2/pixverse/videos/{id} answers 404 while a video is processing
            {},
            SCHEDULER_CODES,
            doc="api-pixverse-v2/del-pixverse-scheduler-video_id, Dec 6 2024 (Mar 9 2026)",
        ),
    )
}
DEFAULT_SERVICE = "midjourney"
DEFAULT_VERSION = "v2"
"""Midjourney and PixVerse have two versions (``api_version``); other services have one."""
SERVICE_DEFAULT = "default"
"""The ``api_version`` that means "the service's default" (the form's preselected choice)."""


def service_names() -> list[str]:
    """The services a ``useapi`` connection can name, sorted."""
    return sorted({name for name, _ in SERVICES})


def versions_of(name: str) -> list[str]:
    """The API versions of service ``name``, sorted (none for an unknown service)."""
    return sorted(version for service, version in SERVICES if service == name)


def chosen_version(version: object) -> str:
    """An ``api_version`` as given (None, empty, ``default``: the default), normalised."""
    text = str(version or "").strip().lower()
    return DEFAULT_VERSION if text in ("", SERVICE_DEFAULT) else text


def find_service(name: str, version: str | None) -> UseApiService:
    """The description of ``name`` (``api_version`` matters only where a service has several);
    ``KeyError`` naming the supported services for an unknown one."""
    versions = {v: s for (n, v), s in SERVICES.items() if n == name}
    if not versions:
        raise KeyError(name)
    if len(versions) == 1:
        return next(iter(versions.values()))
    return versions[chosen_version(version)]


def wait_refusal(service: UseApiService, success_statuses: frozenset[str]) -> str | None:
    """Why waiting for ``success_statuses`` on ``service``'s jobs is pointless, or None."""
    if "cancelled" in success_statuses and not service.stops_the_work:
        return (
            f"useapi.net service {service.name!r} cannot be waited on for 'cancelled': its "
            "cancel only stops useapi's tracking (outcome 'untracked') while the provider "
            "keeps generating; there is nothing to wait for"
        )
    return None


def wait_refusal_at_parse(
    hook_params: Mapping[str, object], success_statuses: frozenset[str]
) -> str | None:
    """:func:`wait_refusal` for a literal ``service`` in ``hook_params`` (a template, or no
    service, is known only when the task runs; an unknown one fails then, with the list)."""
    service, version = hook_params.get("service"), hook_params.get("api_version")
    if not isinstance(service, str) or "{{" in service:
        return None
    try:
        described = find_service(service.strip().lower(), version)  # type: ignore[arg-type]
    except (KeyError, TypeError, AttributeError):
        return None
    return wait_refusal(described, success_statuses)


# The connection form's extra fields (Airflow 3 conn-fields; Airflow 2 text fields from them).
FORM_FIELDS: dict[str, object] = {
    "service": {
        "label": "Service",
        "description": "The useapi.net service whose jobs this connection cancels "
        "(docs/useapi-services.md).",
        "schema": {
            "type": "string",
            "enum": [DEFAULT_SERVICE, *(n for n in service_names() if n != DEFAULT_SERVICE)],
            "default": DEFAULT_SERVICE,
        },
    },
    "api_version": {
        "label": "API version (Midjourney, PixVerse)",
        "description": "Only Midjourney and PixVerse have API versions; other services "
        "ignore this. Service default: v2 for both. Midjourney also has v3, PixVerse v1.",
        "schema": {
            "type": "string",
            "enum": [SERVICE_DEFAULT, "v1", "v2", "v3"],
            "default": SERVICE_DEFAULT,
            "values_display": {
                SERVICE_DEFAULT: "Service default (v2)",
                "v1": "v1 (PixVerse)",
                "v2": "v2 (Midjourney, PixVerse)",
                "v3": "v3 (Midjourney)",
            },
        },
    },
}
