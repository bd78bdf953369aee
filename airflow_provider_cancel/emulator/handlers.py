"""The handlers every emulated API shares; they read the API's description (``api.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .api import Api, Request, Response, json_response
from .model import Job

if TYPE_CHECKING:
    from .state import EmulatorState


def read_job(state: EmulatorState, request: Request) -> Response:
    """``GET`` one job: the API's job body."""
    api = request.api
    found = api.find(state, request.route.job_id)
    if isinstance(found, Response):
        return found
    assert api.job_body is not None
    with state.lock:
        return json_response(200, api.job_body(state, found))


def cancel_job(state: EmulatorState, request: Request) -> Response:
    """Cancel one job as the API's :class:`CancelRule` says."""
    api = request.api
    rule = api.cancel
    assert rule is not None
    found = api.find(state, request.route.job_id)
    if isinstance(found, Response):
        return found
    with state.lock:
        found.cancel_calls += 1
        raw, _ = state.status_of(found)
        if raw.lower() in rule.accepts:
            state.cancel(found)
            return rule.accepted(found)
        if raw.lower() in rule.pending:
            return rule.accepted(found)
        return api.refuse_cancel(state, rule, found, raw)


def listed_jobs(state: EmulatorState, api: Api) -> list[Job]:
    """The API's jobs whose status its list endpoint shows, oldest first."""
    key = api.model.key if api.model is not None else None
    with state.lock:
        return [
            job
            for job in state.jobs.values()
            if job.api == key and state.status_of(job)[0].lower() in api.listed
        ]
