"""What every emulated useapi.net API shares: credentials, job timeline, statuses, and how a
service's endpoints follow from its description in ``catalog.py``.

A Midjourney job is ``created``, ``started`` after ``start_delay``, in ``progress`` after twice
that and ``completed`` after ``job_duration``; a cancel takes effect at once. One API token
(``Authorization: Bearer ...``) serves every version and service. The Midjourney versions
(``useapi_v2.py``, ``useapi_v3.py``) and the service families (``useapi_discord.py``,
``useapi_jobs.py``, ``useapi_scheduler.py``) describe only what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .api import ID, Api, CancelRule, Endpoint, Handler, Request, Response, json_body, json_response
from .catalog import DISCORD_STATUSES
from .model import Job, iso

if TYPE_CHECKING:
    from .state import EmulatorState

FAMILY = "useapi"

#: Raw statuses in which a job can still be cancelled (and which the list endpoints show).
RUNNING = frozenset({"created", "started", "progress"})

#: The raw statuses a job passes through before it completes (multiples of ``start_delay``).
STEPS = ((0, "created"), (1, "started"), (2, "progress"))

NORMALIZED = DISCORD_STATUSES  # Midjourney v2's statuses, as the docs give them

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


def running(table: Mapping[str, str]) -> frozenset[str]:
    """The raw statuses of a status table in which a job still runs (or waits to)."""
    return frozenset(raw for raw, status in table.items() if status in ("queued", "running"))


def endpoints(
    call: tuple[str, str] | None, name: str, kind: str, handler: Handler
) -> tuple[Endpoint, ...]:
    """The endpoints serving one call of a service (``(method, path template)`` from its
    description in ``catalog.py``) below the service's ``/{v}/{svc}`` prefix: a
    ``{id}`` segment takes the job id, ``?jobid={qid}`` the query; a path ending in ``/`` is also
    served without it. ``kind`` is what fault filters and counters see."""
    if call is None:
        return ()
    method, template = call
    path, _, query = template.partition("?")
    below = tuple(ID if segment == "{id}" else segment for segment in path.split("/")[3:])
    id_query = query.partition("=")[0] or None
    paths = [below, below[:-1]] if below and below[-1] == "" else [below]
    only = method != "GET"  # a DELETE or POST shares its path with a GET
    return tuple(Endpoint(p, name, kind, handler, (method,), only, id_query) for p in paths)
