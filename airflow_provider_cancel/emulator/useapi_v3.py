"""useapi.net Midjourney v3 (``/v3/midjourney/...``): ids in the path, no ``cancelled`` status.

Endpoints: ``POST /v3/midjourney/jobs/imagine``, ``GET /v3/midjourney/jobs/{id}``,
``DELETE /v3/midjourney/jobs/{id}`` (204), ``GET /v3/midjourney/jobs`` (running jobs per
channel). A cancelled job reads ``failed`` with the error "Job cancelled by user"; a cancel of a
finished job answers as ``finished_cancel_answer`` says.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import handlers, useapi
from .api import ID, Api, Endpoint, Request, Response, json_response
from .model import Job, JobModel, iso

if TYPE_CHECKING:
    from collections.abc import Callable

    from .state import EmulatorState

KEY = "useapi_v3"

#: Error text useapi v3 puts on a cancelled job (v3 has no "cancelled" status).
CANCELLED_ERROR = "Job cancelled by user"


def new_id(number: Callable[[], int]) -> str:
    """``j<stamp>i-u1-c1-bot:midjourney-<n>``."""
    n = number()
    now = datetime.now(tz=UTC)
    stamp = now.strftime("%m%d%H%M%S") + f"{now.microsecond:06d}{n % 1000:03d}"
    return f"j{stamp}i-u1-c1-bot:midjourney-{n}"


def body(state: EmulatorState, job: Job) -> dict[str, Any]:
    """``GET /v3/midjourney/jobs/{id}`` (also the 200 answer to a finished job's cancel)."""
    raw, _ = state.status_of(job)
    return useapi.job_body(
        state,
        job,
        jobType="image",
        request={"prompt": job.prompt},
        response={"progress_percent": 100 if raw == "completed" else 0},
    )


def cancelled(job: Job) -> Response:
    """The answer to an accepted cancel: 204, no body."""
    return Response(204)


def imagine(state: EmulatorState, request: Request) -> Response:
    """``POST /v3/midjourney/jobs/imagine``."""
    return useapi.submit(state, request, {"verb": "imagine", "status": "created"})


def running(state: EmulatorState, request: Request) -> Response:
    """``GET /v3/midjourney/jobs``: the running jobs, all on channel 1."""
    now_wall = time.time()
    listed = []
    for job in handlers.listed_jobs(state, request.api):
        elapsed = int(max(0.0, now_wall - job.created_wall))
        listed.append(
            {
                "jobId": job.id,
                "channel": "1",
                "jobType": "image",
                "created": iso(job.created_wall),
                "elapsed": f"{elapsed // 60:02d}:{elapsed % 60:02d}",
            }
        )
    n = len(listed)
    channel = {"total": n, "images": n, "videos": 0, "maxJobs": 15, "jobs": listed}
    return json_response(200, {"total": n, "images": n, "videos": 0, "channels": {"1": channel}})


MODEL = JobModel(
    key=KEY,
    steps=useapi.STEPS,
    completed="completed",
    cancelled="failed",
    cancelled_error=CANCELLED_ERROR,
    normalized={raw: n for raw, n in useapi.NORMALIZED.items() if raw != "cancelled"},
    failed_as_cancelled=CANCELLED_ERROR,
    pin_aliases={"cancelled": ("failed", CANCELLED_ERROR)},
    new_id=new_id,
)

API = Api(
    route_prefix="v3",
    endpoints=(
        Endpoint(("jobs",), "list", "list", running),
        Endpoint(("jobs", ""), "list", "list", running),
        Endpoint(("jobs", "imagine"), "imagine", "submit", imagine, ("POST",), True),
        Endpoint(("jobs", ID), "cancel", "cancel", handlers.cancel_job, ("DELETE",), True),
        Endpoint(("jobs", ID), "job", "status", handlers.read_job),
    ),
    model=MODEL,
    job_body=body,
    cancel=useapi.cancel_rule(cancelled, "Job {id} can not be cancelled, status {status}", body),
    missing_text="Job not found",
    **useapi.COMMON,
)
