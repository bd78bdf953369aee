"""What every emulated useapi.net Midjourney version shares: credentials, job timeline, statuses.

A useapi job is ``created``, ``started`` after ``start_delay``, in ``progress`` after twice that
and ``completed`` after ``job_duration``; a cancel takes effect at once. One API token
(``Authorization: Bearer ...``) serves every version. The versions themselves
(``useapi_v2.py``, ``useapi_v3.py``) describe only what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .api import Api, CancelRule, Request, Response, json_body, json_response
from .model import Job, iso

if TYPE_CHECKING:
    from .state import EmulatorState

FAMILY = "useapi"

#: Raw statuses in which a job can still be cancelled (and which the list endpoints show).
RUNNING = frozenset({"created", "started", "progress"})

#: The raw statuses a job passes through before it completes (multiples of ``start_delay``).
STEPS = ((0, "created"), (1, "started"), (2, "progress"))

NORMALIZED = {
    "created": "queued",
    "started": "running",
    "progress": "running",
    "cancelled": "cancelled",
    "completed": "completed",
    "failed": "failed",
    "moderated": "failed",
}

PROMPT_MISSING = "Required param prompt is missing or empty"


def authorize(state: EmulatorState, api: Api, headers: Mapping[str, str]) -> Response | None:
    """401 unless the request carries the configured API token."""
    if headers.get("authorization") != f"Bearer {state.config.useapi_token}":
        return api.error(401, "Unauthorized")
    return None


def prompt_of(body: bytes) -> str | None:
    """The non-blank ``prompt`` of a submit body, if there is one."""
    payload = json_body(body)
    if isinstance(payload, dict) and isinstance(payload.get("prompt"), str):
        prompt: str = payload["prompt"]
        return prompt if prompt.strip() else None
    return None


def submit(state: EmulatorState, request: Request, answer: Mapping[str, Any]) -> Response:
    """``POST .../imagine``: create a job; ``answer`` is added to ``{"jobid": ...}``."""
    api = request.api
    prompt = prompt_of(request.body)
    if prompt is None:
        return api.error(400, PROMPT_MISSING)
    assert api.model is not None
    job = state.create_job(api.model.key, prompt=prompt)
    return json_response(200, {"jobid": job.id, **answer})


def job_body(state: EmulatorState, job: Job, **fields: Any) -> dict[str, Any]:
    """A job as useapi shows it: the common fields, then the version's ``fields``."""
    raw, since = state.status_of(job)
    body: dict[str, Any] = {
        "jobid": job.id,
        "verb": "imagine",
        "status": raw,
        "created": iso(job.created_wall),
        "updated": iso(job.wall(since)),
        **fields,
        "code": 200,
    }
    error = state.error_of(job)
    if error is not None:
        body["error"] = error
    return body


#: The :class:`~.api.Api` fields every useapi version shares.
COMMON: dict[str, Any] = {"family": FAMILY, "authorize": authorize, "listed": RUNNING}


def cancel_rule(
    cancelled: Callable[[Job], Response],
    refused_text: str,
    finished_body: Callable[[EmulatorState, Job], Any],
) -> CancelRule:
    """Running jobs are cancelled at once (answer ``cancelled``); a cancel of a job that already
    ended answers as ``finished_cancel_answer`` says (200 with ``finished_body``)."""
    return CancelRule(RUNNING, cancelled, refused_text, finished_body)
