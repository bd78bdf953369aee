"""WriteText.ai: a token endpoint on the main host, the ``/text/...`` calls on the region host.

``GET /web/apitoken/accesstoken`` with ``WriteTextAI-Token: <key>`` answers the region host and
an access token (field names per the ``token_fields`` setting). On the region host, with
``Authorization: Bearer <token>`` and case-insensitive paths: ``POST /text/Generate`` (or
``/text/Generate/v2``), ``GET /text/Generate/Bulk`` (active requests),
``GET /text/Generate/Bulk/{id}``, ``POST /text/Generate/Bulk/{id}/cancel`` (200; the request is
``Cancelling`` for ``cancel_delay`` seconds, then ``Cancelled``) and ``GET /text/credit``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import handlers
from .api import ID, Api, CancelRule, Endpoint, Request, Response, json_body, json_response
from .model import Job, JobModel, iso
from .state import EXPIRY_ABSOLUTE_FIELDS

if TYPE_CHECKING:
    from .state import EmulatorState

KEY = "writetext"
FAMILY = "writetext"

#: Raw statuses in which a request can still be cancelled.
ACTIVE = frozenset({"pending", "running"})
CANCELLING = frozenset({"cancelling"})


def invalid_token() -> Response:
    """ASP.NET's answer to a missing, invalid or expired bearer token."""
    return json_response(
        401, {"error": "invalid_token"}, [("WWW-Authenticate", 'Bearer error="invalid_token"')]
    )


def authorize(state: EmulatorState, api: Api, headers: Mapping[str, str]) -> Response | None:
    """401 ``invalid_token`` unless the request carries a valid access token."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not state.token_valid(token.strip()):
        return invalid_token()
    return None


def new_id(number: Callable[[], int]) -> str:
    """WriteText request ids are UUIDs."""
    return str(uuid.uuid4())


def token(state: EmulatorState, request: Request) -> Response:
    """``GET /web/apitoken/accesstoken``: the region and a new access token."""
    cfg = state.config
    if request.headers.get("writetextai-token") != cfg.writetext_api_key:
        return json_response(401, {"error": "Invalid API key"})
    token_field, expiry_field = cfg.token_fields
    payload: dict[str, Any] = {"region": request.region_host, "platform": "api"}
    payload[token_field] = state.issue_token()
    if expiry_field in EXPIRY_ABSOLUTE_FIELDS:
        payload[expiry_field] = iso(time.time() + cfg.token_ttl)
    elif expiry_field is not None:
        payload[expiry_field] = cfg.token_ttl
    return json_response(200, payload)


def body(state: EmulatorState, job: Job) -> dict[str, Any]:
    """A bulk request as ``GET /text/Generate/Bulk/{id}`` shows it (one record)."""
    raw, since = state.status_of(job)
    lowered = raw.lower()
    record = f"{job.id}-1"
    ended = lowered in ("completed", "failed", "timedout")
    return {
        "id": job.id,
        "userName": "emulator",
        "name": job.prompt,
        "recordType": "Product",
        "status": raw,
        "startTime": iso(job.created_wall),
        "endTime": None if lowered in ACTIVE | CANCELLING else iso(job.wall(since)),
        "queuedIds": [record] if lowered == "pending" else [],
        "runningIds": [record] if lowered in ("running", "cancelling") else [],
        "completedIds": [record] if ended else [],
        "failedIds": [record] if lowered in ("failed", "timedout") else [],
        "completed": 1 if ended else 0,
        "total": 1,
    }


def submit(state: EmulatorState, request: Request) -> Response:
    """``POST /text/Generate``: a new request named after the body's ``name``."""
    payload = json_body(request.body)
    name = ""
    if isinstance(payload, dict):
        name = str(payload.get("name") or payload.get("Name") or "")
    job = state.create_job(KEY, prompt=name)
    return json_response(200, {"requestId": job.id})


def active(state: EmulatorState, request: Request) -> Response:
    """``GET /text/Generate/Bulk``: the requests still pending, running or cancelling."""
    with state.lock:
        return json_response(
            200, [body(state, job) for job in handlers.listed_jobs(state, request.api)]
        )


def credit(state: EmulatorState, request: Request) -> Response:
    """``GET /text/credit``."""
    return json_response(200, {"totalCredits": 1000, "availableCredits": 1000, "isPremium": False})


def cancelled(job: Job) -> Response:
    """The answer to an accepted cancel: 200, no body."""
    return Response(200)


MODEL = JobModel(
    key=KEY,
    steps=((0, "Pending"), (1, "Running")),
    completed="Completed",
    cancelling="Cancelling",
    cancelled="Cancelled",
    normalized={
        "pending": "queued",
        "running": "running",
        "cancelling": "cancelling",
        "cancelled": "cancelled",
        "completed": "completed",
        "timedout": "failed",
        "failed": "failed",
    },
    new_id=new_id,
)

#: The region host: every ``/text/...`` call.
API = Api(
    family=FAMILY,
    route_prefix="writetext",
    case_insensitive=True,
    endpoints=(
        Endpoint(("text", "generate"), "submit", "submit", submit, ("POST",)),
        Endpoint(("text", "generate", "v2"), "submit", "submit", submit, ("POST",)),
        Endpoint(("text", "generate", "bulk"), "list", "list", active),
        Endpoint(("text", "generate", "bulk", ""), "list", "list", active),
        Endpoint(("text", "generate", "bulk", ID), "job", "status", handlers.read_job),
        Endpoint(
            ("text", "generate", "bulk", ID, "cancel"),
            "cancel",
            "cancel",
            handlers.cancel_job,
            ("POST",),
        ),
        Endpoint(("text", "credit"), "credit", "other", credit),
    ),
    authorize=authorize,
    model=MODEL,
    job_body=body,
    cancel=CancelRule(
        accepts=ACTIVE,
        pending=CANCELLING,
        accepted=cancelled,
        refused_text="Request {id} is {status} and can not be cancelled",
    ),
    missing_text="Request {id} not found",
    listed=ACTIVE | CANCELLING,
)

#: The main host's token endpoint (the key is checked by the endpoint itself).
TOKEN = Api(
    family=FAMILY,
    route_prefix="writetext",
    case_insensitive=True,
    endpoints=(Endpoint((), "token", "token", token),),
)

#: ``/text/...`` and ``/web/...`` on the main host: a client ignoring ``region`` must fail.
ELSEWHERE = Api(family=FAMILY, route_prefix="writetext", case_insensitive=True)
