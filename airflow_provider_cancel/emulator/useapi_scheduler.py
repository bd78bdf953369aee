"""useapi.net's "scheduler" services (Kling, MiniMax, TemPolor, PixVerse v2): a cancel only stops
useapi's tracking.

``DELETE /{v}/{svc}/scheduler/{id}`` answers 204 for a job still running and tracked, and 404
``Unable to locate running <id>`` for any other; the job itself goes on and completes after
``job_duration``, as the provider keeps generating (``Emulator.job(id)["tracked"]`` turns
false). ``GET /{v}/{svc}/scheduler/`` lists the tracked running ids. MiniMax also reads a video
(``GET /v1/minimax/videos/{id}``: numbered statuses, ``11`` queued, ``1`` processing, ``2``
completed) and has ``POST /v1/minimax/videos/cancel {"videoId"}``, an attempt to stop the
generation itself: 200, the video still reads ``1`` for ``cancel_delay`` seconds, then ``3``
(failed); a video that ended is refused with 400. Paths and statuses come from the hook's
description of each service in ``catalog.py``, transcribed from the docs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import handlers, useapi
from .api import Api, CancelRule, Endpoint, Request, Response, json_body, json_response
from .catalog import Service, model_key
from .model import Job, JobModel, iso

if TYPE_CHECKING:
    from .state import EmulatorState

#: Services without a per-job read: their jobs are queued, processing, then completed.
GENERIC = {
    "queued": "queued",
    "processing": "running",
    "completed": "completed",
    "failed": "failed",
}

#: Id shapes from the catalog (Kling's task ids are numbers).
ID_SHAPES: dict[str, str] = {
    "kling": "{n}",
    "minimax": "user:1-minimax:emulator-video:{n}",
    "tempolor": "user:1-tempolor:emulator-job:{n:012x}",
    "pixverse": "user:1-pixverse:emulator@example.com-video:{n}",
}


def new_id(service: str) -> Callable[[Callable[[], int]], str]:
    """New ids shaped like the service's (:data:`ID_SHAPES`)."""
    shape = ID_SHAPES[service]
    return lambda number: shape.format(n=100_000_000 + number())


def untrack(state: EmulatorState, request: Request) -> Response:
    """``DELETE .../scheduler/{id}``: stop tracking a running job; the job goes on."""
    api = request.api
    found = api.find(state, request.route.job_id)
    if isinstance(found, Response):
        return found
    with state.lock:
        found.cancel_calls += 1
        if found.untracked or state.status_of(found)[0].lower() not in api.listed:
            return api.error(404, api.missing_text.format(id=found.id))
        found.untracked = True
    return Response(204)


def tracked(state: EmulatorState, request: Request) -> Response:
    """``GET .../scheduler/``: the ids of the running jobs still tracked."""
    jobs = handlers.listed_jobs(state, request.api)
    return json_response(200, [job.id for job in jobs if not job.untracked])


def video(state: EmulatorState, job: Job) -> dict[str, Any]:
    """``GET /v1/minimax/videos/{id}``: the status as a number, with its label."""
    raw, since = state.status_of(job)
    label = state.models[job.api].normalize(raw)
    return {
        "videoId": job.id,
        "status": int(raw),
        "statusLabel": label,
        "statusFinal": label in ("completed", "failed", "cancelled"),
        "created": iso(job.created_wall),
        "updated": iso(job.wall(since)),
    }


def stop_video(state: EmulatorState, request: Request) -> Response:
    """``POST /v1/minimax/videos/cancel {"videoId": id}``: the API's cancel rule, on the id
    the body names."""
    payload = json_body(request.body)
    video_id = payload.get("videoId") if isinstance(payload, dict) else None
    if not isinstance(video_id, str) or not video_id:
        return request.api.error(400, "videoId is required")
    route = dataclasses.replace(request.route, job_id=video_id)
    return handlers.cancel_job(state, dataclasses.replace(request, route=route))


def stopping(job: Job) -> Response:
    """The answer to an attempt to stop a video: 200, nothing said about the outcome."""
    return json_response(200, {"videoId": job.id})


def api(service: Service) -> Api:
    """The emulated API of one scheduler service."""
    table = service.statuses or GENERIC
    numbered = "1" in table  # MiniMax: a read and a cancel of the video itself
    model = JobModel(
        key=model_key(service),
        steps=((0, "11"), (1, "1")) if numbered else ((0, "queued"), (1, "processing")),
        completed="2" if numbered else "completed",
        cancelling="1" if numbered else None,
        cancelled="3" if numbered else "failed",
        normalized=table,
        new_id=new_id(service.name),
    )
    stop: tuple[Endpoint, ...] = ()
    if service.video_cancel is not None:
        stop = useapi.endpoints(("POST", service.video_cancel), "stop", "cancel", stop_video)
    return Api(
        route_prefix=model.key,
        endpoints=(
            *useapi.endpoints(service.cancel, "cancel", "cancel", untrack),
            Endpoint(("scheduler",), "list", "list", tracked),
            Endpoint(("scheduler", ""), "list", "list", tracked),
            *stop,
            *useapi.endpoints(service.status, "job", "status", handlers.read_job),
        ),
        model=model,
        job_body=video if numbered else None,
        cancel=CancelRule(
            useapi.running(table), stopping, "Video {id} is {status} and can not be cancelled"
        ),
        missing_text="Unable to locate running {id}",
        error_code=True,
        **{**useapi.COMMON, "listed": useapi.running(table)},
    )
