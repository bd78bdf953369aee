"""useapi.net's "jobs" services (FlowMusic, Gemini Notebook): one path per job, the id
percent-encoded in it.

``GET /v1/{svc}/jobs/{id}`` reads a job (``pending``, then ``completed`` after
``job_duration``); ``DELETE /v1/{svc}/jobs/{id}`` answers 204 with no body whether or not the
job still ran: a running job then reads ``failed`` with ``error: {code: <marker>}`` (FlowMusic
``user_cancelled``, Gemini Notebook ``cancelled``), a finished one stays as it was. An unknown
job is 404 ``{error, code}``. Paths and markers come from the emulator's own transcription of
the docs (``catalog.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import handlers, useapi
from .api import Api, CancelRule, Response
from .catalog import Service, model_key
from .model import Job, JobModel, iso

if TYPE_CHECKING:
    from .state import EmulatorState

#: The docs name only ``pending`` before a job ends (FlowMusic; Gemini Notebook's is not given).
STEPS = ((0, "pending"),)
ENDED = frozenset({"completed", "failed"})


def job_id(service: str) -> Callable[[Callable[[], int]], str]:
    """New ids ``job:<uuid>-user:1-emulator@example.com-bot:<service>`` (with ``:`` and ``@``)."""

    def new_id(number: Callable[[], int]) -> str:
        return f"job:{uuid.uuid4()}-user:1-emulator@example.com-bot:{service}"

    return new_id


def body(state: EmulatorState, job: Job) -> dict[str, Any]:
    """``GET /v1/{svc}/jobs/{id}``; a failed job carries ``error: {code, message}``."""
    raw, since = state.status_of(job)
    shown: dict[str, Any] = {
        "jobid": job.id,
        "status": raw,
        "created": iso(job.created_wall),
        "updated": iso(job.wall(since)),
    }
    error = state.error_of(job)
    if error is not None:
        shown["error"] = {"code": error, "message": error}
    return shown


def no_content(job: Job) -> Response:
    """Every cancel answers 204, no body."""
    return Response(204)


def api(service: Service) -> Api:
    """The emulated API of one "jobs" service."""
    marker = service.cancelled_marker
    table = service.statuses
    model = JobModel(
        key=model_key(service),
        steps=STEPS,
        completed="completed",
        cancelled="failed",
        cancelled_error=marker,
        failed_as_cancelled=marker,
        pin_aliases={"cancelled": ("failed", marker)},
        normalized=table,
        new_id=job_id(service.name),
    )
    return Api(
        route_prefix=model.key,
        endpoints=(
            *useapi.endpoints(service.cancel, "cancel", "cancel", handlers.cancel_job),
            *useapi.endpoints(service.status, "job", "status", handlers.read_job),
        ),
        model=model,
        job_body=body,
        # A finished job's cancel "changes nothing and also answers 204".
        cancel=CancelRule(useapi.running(table), no_content, "", pending=ENDED),
        missing_text="Job {id} not found",
        error_code=True,
        **useapi.COMMON,
    )
