"""useapi.net's services beyond Midjourney as the emulator serves them, transcribed from the
useapi.net pages (``docs/useapi-services.md`` has the table; the research notes quote each page).

This table is the emulator's own: it is written from the documentation, not read from the
hooks, so a wrong path, status or code in a hook meets an emulator that answers as useapi.net
does and a test fails. Paths are templates: ``{id}`` is the job id as one path segment,
``?jobid={qid}`` the id as a query value. Statuses map useapi's raw values (lower case) to the
product's normalised statuses (``docs/statuses.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DISCORD, JOBS, SCHEDULER = "discord", "jobs", "scheduler"

#: Midjourney v2's statuses (api-v2/get-jobs-jobid): created, started, moderated, progress,
#: completed, failed, cancelled. The Discord-era services are "same as MJ v2".
DISCORD_STATUSES = {
    "created": "queued",
    "started": "running",
    "progress": "running",
    "cancelled": "cancelled",
    "completed": "completed",
    "failed": "failed",
    "moderated": "failed",
}
#: FlowMusic's statuses (api-flowmusic-v1/get-flowmusic-jobs-jobid): pending, completed,
#: failed; Gemini Notebook documents only how a job ends (completed or failed).
JOBS_STATUSES = {"pending": "running", "completed": "completed", "failed": "failed"}
#: MiniMax's video statuses (api-minimax-v1/get-minimax-videos-videoId): 0 pending,
#: 1 processing, 2 completed, 3 failed, 5/7/14 moderated, 11 queued, 12 processing.
MINIMAX_STATUSES = {
    "0": "queued",
    "11": "queued",
    "1": "running",
    "12": "running",
    "2": "completed",
    "3": "failed",
    "5": "failed",
    "7": "failed",
    "14": "failed",
}


@dataclass(frozen=True)
class Service:
    """One useapi.net service: its calls as the docs give them and what its statuses mean."""

    name: str
    version: str
    family: str
    cancel: tuple[str, str]
    """(method, path) of the cancel call."""
    status: tuple[str, str] | None
    """(method, path) of the per-job read; ``None`` where the docs give none usable."""
    statuses: Mapping[str, str]
    """Raw status -> normalised status; empty where the service has no per-job read."""
    cancelled_marker: str | None = None
    """The ``error.code`` a cancelled job of the "jobs" family reads ``failed`` with."""
    video_cancel: str | None = None
    """``POST`` path that tries to stop the generation itself (MiniMax)."""
    doc: str = ""
    """The useapi.net page the row is transcribed from."""


def _discord(name: str, doc: str) -> Service:
    """``GET /v1/{svc}/jobs/cancel/?jobid=`` and ``GET /v1/{svc}/jobs/?jobid=``."""
    prefix = f"/v1/{name}/jobs"
    return Service(
        name,
        "v1",
        DISCORD,
        ("GET", f"{prefix}/cancel/?jobid={{qid}}"),
        ("GET", f"{prefix}/?jobid={{qid}}"),
        DISCORD_STATUSES,
        doc=doc,
    )


def _jobs(name: str, marker: str, doc: str) -> Service:
    """``DELETE`` and ``GET /v1/{svc}/jobs/{jobid}``; a cancelled job reads ``failed``."""
    path = f"/v1/{name}/jobs/{{id}}"
    return Service(
        name, "v1", JOBS, ("DELETE", path), ("GET", path), JOBS_STATUSES, marker, doc=doc
    )


def _scheduler(
    name: str,
    version: str,
    doc: str,
    status: tuple[str, str] | None = None,
    video_cancel: str | None = None,
) -> Service:
    """``DELETE /{v}/{svc}/scheduler/{id}``: stops useapi's tracking only."""
    cancel = ("DELETE", f"/{version}/{name}/scheduler/{{id}}")
    statuses = MINIMAX_STATUSES if status else {}
    return Service(
        name, version, SCHEDULER, cancel, status, statuses, video_cancel=video_cancel, doc=doc
    )


#: Every emulated service beyond Midjourney (which has ``useapi_v2.py`` and ``useapi_v3.py``).
SERVICES: tuple[Service, ...] = (
    _discord("faceswap", "api-faceswap-v1/get-faceswap-jobs-cancel"),
    _discord("pixverse", "api-pixverse-v1/get-pixverse-jobs-cancel"),
    _jobs("flowmusic", "user_cancelled", "api-flowmusic-v1/delete-flowmusic-jobs-jobid"),
    _jobs(
        "gemini-notebook", "cancelled", "api-gemini-notebook-v1/delete-gemini-notebook-jobs-jobid"
    ),
    # GET /v1/kling/tasks/{task_id} needs the account's email as well: no read here.
    _scheduler("kling", "v1", "api-kling-v1/del-kling-scheduler-task_id"),
    _scheduler(
        "minimax",
        "v1",
        "api-minimax-v1/del-minimax-scheduler-videoId, post-minimax-videos-cancel",
        status=("GET", "/v1/minimax/videos/{id}"),
        video_cancel="/v1/minimax/videos/cancel",
    ),
    # Only a list of the running jobs is documented.
    _scheduler("tempolor", "v1", "api-tempolor-v1/del-tempolor-scheduler-job_id"),
    # GET /v2/pixverse/videos/{video_id} answers 404 while a video is processing.
    _scheduler("pixverse", "v2", "api-pixverse-v2/del-pixverse-scheduler-video_id"),
)

#: Midjourney's versions, served by their own modules: (name, version) -> job key.
MIDJOURNEY = {("midjourney", "v2"): "useapi_v2", ("midjourney", "v3"): "useapi_v3"}
DEFAULT_SERVICE = "midjourney"
DEFAULT_VERSION = "v2"
"""Midjourney and PixVerse have two versions; other services have one."""


def model_key(service: Service) -> str:
    """The key the emulated jobs of ``service`` carry (``Emulator.create_job(key, ...)``,
    ``POST /_emulator/jobs {"api": key}``): the service's name, with its version where it has
    two (``pixverse_v1``, ``pixverse_v2``)."""
    versions = sum(1 for other in SERVICES if other.name == service.name)
    return service.name if versions == 1 else f"{service.name}_{service.version}"


def service_names() -> list[str]:
    """Every emulated useapi.net service's name, Midjourney's included, sorted."""
    return sorted({DEFAULT_SERVICE} | {service.name for service in SERVICES})


def job_key(name: str, version: str | None) -> str:
    """The job key of service ``name`` (``version`` matters only where it has two);
    ``KeyError`` for a service the emulator does not serve."""
    version = version or DEFAULT_VERSION
    if (name, version) in MIDJOURNEY:
        return MIDJOURNEY[name, version]
    versions = {s.version: s for s in SERVICES if s.name == name}
    if not versions:
        raise KeyError(name)
    if len(versions) == 1:
        return model_key(next(iter(versions.values())))
    return model_key(versions[version])
