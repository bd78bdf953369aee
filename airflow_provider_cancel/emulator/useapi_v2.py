"""useapi.net Midjourney v2 (``/v2/...``): ids in the query, ``code`` in every body.

Endpoints: ``GET /v2/account``, ``POST /v2/jobs/imagine``, ``GET /v2/jobs/?jobid=``,
``GET /v2/jobs/cancel/?jobid=`` (200 with ``status: cancelled``), ``GET /v2/jobs`` (running ids).
A cancel of a finished job answers as ``finished_cancel_answer`` says.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import handlers, useapi
from .api import Api, Endpoint, Request, Response, json_response
from .model import Job, JobModel

if TYPE_CHECKING:
    from .state import EmulatorState

KEY = "useapi_v2"


def discord_id(bot: str) -> Callable[[Callable[[], int]], str]:
    """New ids ``job:<stamp>-user:1-channel:1-bot:<bot>-<n>`` (Discord-era ids contain ``:``)."""

    def new_id(number: Callable[[], int]) -> str:
        now = datetime.now(tz=UTC)
        stamp = now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}"
        return f"job:{stamp}-user:1-channel:1-bot:{bot}-{number()}"

    return new_id


def body(state: EmulatorState, job: Job) -> dict[str, Any]:
    """``GET /v2/jobs/?jobid=``."""
    return useapi.job_body(state, job, prompt=job.prompt)


def finished(state: EmulatorState, job: Job) -> dict[str, Any]:
    """The 200 answer to a cancel of a job that already ended: its status."""
    return {"jobid": job.id, "status": state.status_of(job)[0], "code": 200}


def cancelled(job: Job) -> Response:
    """The answer to an accepted cancel."""
    return json_response(200, {"jobid": job.id, "status": "cancelled", "code": 200})


def account(state: EmulatorState, request: Request) -> Response:
    """``GET /v2/account``."""
    return json_response(
        200,
        {"email": "emulator@example.com", "name": "emulator", "verified": True, "sub": "261231"},
    )


def imagine(state: EmulatorState, request: Request) -> Response:
    """``POST /v2/jobs/imagine``."""
    return useapi.submit(state, request, {"verb": "imagine", "status": "created", "code": 200})


def running(state: EmulatorState, request: Request) -> Response:
    """``GET /v2/jobs``: the ids of the running jobs."""
    return json_response(200, [job.id for job in handlers.listed_jobs(state, request.api)])


MODEL = JobModel(
    key=KEY,
    steps=useapi.STEPS,
    completed="completed",
    cancelled="cancelled",
    normalized=useapi.NORMALIZED,
    new_id=discord_id("midjourney"),
)

#: What the Discord-era services share with v2 (``useapi_discord.py``).
CANCEL = useapi.cancel_rule(cancelled, "Job {id} is {status} and can not be cancelled", finished)
MISSING = "Unable to locate job {id}"
ID_REQUIRED = "Query param jobid not provided"

API = Api(
    route_prefix="v2",
    endpoints=(
        Endpoint(("account",), "account", "other", account),
        Endpoint(("jobs", "imagine"), "imagine", "submit", imagine, ("POST",)),
        Endpoint(("jobs", "cancel"), "cancel", "cancel", handlers.cancel_job, id_query="jobid"),
        Endpoint(("jobs", "cancel", ""), "cancel", "cancel", handlers.cancel_job, id_query="jobid"),
        Endpoint(("jobs", ""), "job", "status", handlers.read_job, id_query="jobid"),
        Endpoint(
            ("jobs",), "job", "status", handlers.read_job, id_query="jobid", needs_query="jobid"
        ),
        Endpoint(("jobs",), "list", "list", running),
    ),
    model=MODEL,
    job_body=body,
    cancel=CANCEL,
    missing_text=MISSING,
    error_code=True,
    id_required=ID_REQUIRED,
    **useapi.COMMON,
)
