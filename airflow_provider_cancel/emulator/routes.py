"""Routing and behaviour of the emulated APIs, independent of sockets.

``resolve()`` turns a raw request target into a :class:`Route` (which endpoint, which job id);
``answer()`` produces the :class:`Response` the real API would give. Both are pure functions of
the request and :class:`~.state.EmulatorState`, which is what makes the HTTP layer thin.

Job ids are opaque and may contain ``/``, ``?``, ``#``, ``%``, ``..``, spaces, unicode and control
characters, so the raw target is split on ``/`` *before* percent-decoding each segment (``%2F``
stays inside the id), and literal dot segments are removed first like a real front end would do
(a client that sends ``..`` unencoded does not reach the job).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from .state import (
    EXPIRY_ABSOLUTE_FIELDS,
    USEAPI_RUNNING,
    USEAPI_V2,
    USEAPI_V3,
    WRITETEXT,
    WRITETEXT_ACTIVE,
    EmulatorState,
    Job,
    iso,
)

JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Response(status, body, JSON_TYPE, list(headers or []))


@dataclass
class Route:
    """What a request is.

    ``name`` is the counters' ``by_route`` key; ``api`` and ``call`` are what fault filters match.
    """

    name: str
    api: str
    call: str
    methods: tuple[str, ...] = ("GET",)
    job_id: str | None = None
    query: dict[str, list[str]] = field(default_factory=dict)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 on the still-encoded path (``%2E%2E`` is *not* a dot segment)."""
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/".join(output)


def split_target(raw_path: str) -> tuple[list[str], dict[str, list[str]]]:
    """Decoded path segments (leading ``/`` dropped, trailing ``""`` kept) and the query."""
    path, _, query = raw_path.partition("?")
    path = remove_dot_segments(path)
    segments = [unquote(segment, errors="replace") for segment in path.split("/")[1:]]
    params = parse_qs(query, keep_blank_values=True, errors="replace")
    return segments, params


def resolve(method: str, raw_path: str, region: bool) -> Route:
    """Find the endpoint for a request on the main port or the region port."""
    segments, query = split_target(raw_path)
    lower = [segment.lower() for segment in segments]
    if region:
        return _resolve_region(segments, lower, query)
    head = segments[0] if segments else ""
    if head == "v2":
        return _resolve_v2(method, segments, query)
    if head == "v3" and len(segments) > 1 and segments[1] == "midjourney":
        return _resolve_v3(method, segments, query)
    if lower == ["web", "apitoken", "accesstoken"]:
        return Route("writetext.token", "writetext", "token", query=query)
    if lower and lower[0] in ("text", "web"):
        # WriteText calls belong on the region host: a client ignoring `region` must fail.
        return Route("writetext.not_found", "writetext", "other", ("",), query=query)
    return Route("not_found", "useapi" if head == "v3" else "unknown", "other", ("",))


def _resolve_v2(method: str, segments: list[str], query: dict[str, list[str]]) -> Route:
    rest = segments[1:]
    jobid = query.get("jobid", [None])[0]
    if rest == ["account"]:
        return Route("v2.account", "useapi", "other")
    if rest == ["jobs", "imagine"]:
        return Route("v2.imagine", "useapi", "submit", ("POST",))
    if rest in (["jobs", "cancel"], ["jobs", "cancel", ""]):
        return Route("v2.cancel", "useapi", "cancel", job_id=jobid, query=query)
    if rest == ["jobs", ""] or (rest == ["jobs"] and "jobid" in query):
        return Route("v2.job", "useapi", "status", job_id=jobid, query=query)
    if rest == ["jobs"]:
        return Route("v2.list", "useapi", "list")
    return Route("v2.not_found", "useapi", "other", ("",))


def _resolve_v3(method: str, segments: list[str], query: dict[str, list[str]]) -> Route:
    rest = segments[2:]
    if rest in (["jobs"], ["jobs", ""]):
        return Route("v3.list", "useapi", "list")
    if rest == ["jobs", "imagine"] and method == "POST":
        return Route("v3.imagine", "useapi", "submit", ("POST",))
    if len(rest) == 2 and rest[0] == "jobs" and rest[1]:
        if method == "DELETE":
            return Route("v3.cancel", "useapi", "cancel", ("DELETE",), job_id=rest[1])
        return Route("v3.job", "useapi", "status", job_id=rest[1])
    return Route("v3.not_found", "useapi", "other", ("",))


def _resolve_region(segments: list[str], lower: list[str], query: dict[str, list[str]]) -> Route:
    if lower in (["text", "generate"], ["text", "generate", "v2"]):
        return Route("writetext.submit", "writetext", "submit", ("POST",))
    if lower in (["text", "generate", "bulk"], ["text", "generate", "bulk", ""]):
        return Route("writetext.list", "writetext", "list")
    if len(lower) == 4 and lower[:3] == ["text", "generate", "bulk"]:
        return Route("writetext.job", "writetext", "status", job_id=segments[3])
    if len(lower) == 5 and lower[:3] == ["text", "generate", "bulk"] and lower[4] == "cancel":
        return Route("writetext.cancel", "writetext", "cancel", ("POST",), job_id=segments[3])
    if lower == ["text", "credit"]:
        return Route("writetext.credit", "writetext", "other")
    return Route("writetext.not_found", "writetext", "other", ("",))


# ---------------------------------------------------------------------- answering


def _json_body(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def answer(
    state: EmulatorState,
    route: Route,
    method: str,
    headers: dict[str, str],
    body: bytes,
    region_host: str,
) -> Response:
    """The API's response to a request already resolved to ``route``.

    ``headers`` has lower-cased names.
    """
    v3 = route.name.startswith("v3.")
    if route.methods == ("",):
        if route.api == "useapi" and not v3:
            return json_response(404, {"error": "Not found", "code": 404})
        return json_response(404, {"error": "Not found"})
    if method not in route.methods:
        allow = [("Allow", ", ".join(route.methods))]
        if route.api == "useapi" and not v3:
            return json_response(405, {"error": "Method not allowed", "code": 405}, allow)
        return json_response(405, {"error": "Method not allowed"}, allow)
    if route.api == "useapi":
        if headers.get("authorization") != f"Bearer {state.config.useapi_token}":
            if v3:
                return json_response(401, {"error": "Unauthorized"})
            return json_response(401, {"error": "Unauthorized", "code": 401})
        return _USEAPI[route.name](state, route, body)
    if route.name == "writetext.token":
        return _token(state, headers, region_host)
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not state.token_valid(token.strip()):
        return invalid_token()
    return _WRITETEXT[route.name](state, route, body)


def invalid_token() -> Response:
    """ASP.NET's answer to a missing, invalid or expired bearer token."""
    return json_response(
        401, {"error": "invalid_token"}, [("WWW-Authenticate", 'Bearer error="invalid_token"')]
    )


# ---------------------------------------------------------------------- useapi


def _v2_body(state: EmulatorState, job: Job) -> dict[str, Any]:
    raw, since = state.status_of(job)
    body: dict[str, Any] = {
        "jobid": job.id,
        "verb": "imagine",
        "status": raw,
        "created": iso(job.created_wall),
        "updated": iso(job.wall(since)),
        "prompt": job.prompt,
        "code": 200,
    }
    error = state.error_of(job)
    if error is not None:
        body["error"] = error
    return body


def _v3_body(state: EmulatorState, job: Job) -> dict[str, Any]:
    raw, since = state.status_of(job)
    body: dict[str, Any] = {
        "jobid": job.id,
        "verb": "imagine",
        "jobType": "image",
        "status": raw,
        "created": iso(job.created_wall),
        "updated": iso(job.wall(since)),
        "request": {"prompt": job.prompt},
        "response": {"progress_percent": 100 if raw == "completed" else 0},
        "code": 200,
    }
    error = state.error_of(job)
    if error is not None:
        body["error"] = error
    return body


def _prompt(body: bytes) -> str | None:
    payload = _json_body(body)
    if isinstance(payload, dict) and isinstance(payload.get("prompt"), str):
        prompt: str = payload["prompt"]
        return prompt if prompt.strip() else None
    return None


def _v2_account(state: EmulatorState, route: Route, body: bytes) -> Response:
    return json_response(
        200,
        {"email": "emulator@example.com", "name": "emulator", "verified": True, "sub": "261231"},
    )


def _v2_imagine(state: EmulatorState, route: Route, body: bytes) -> Response:
    prompt = _prompt(body)
    if prompt is None:
        return json_response(
            400, {"error": "Required param prompt is missing or empty", "code": 400}
        )
    job = state.create_job(USEAPI_V2, prompt=prompt)
    return json_response(
        200, {"jobid": job.id, "verb": "imagine", "status": "created", "code": 200}
    )


def _v2_lookup(state: EmulatorState, route: Route) -> Job | Response:
    if not route.job_id:
        return json_response(400, {"error": "Query param jobid not provided", "code": 400})
    job = state.get(route.job_id)
    if job is None or job.api != USEAPI_V2:
        return json_response(404, {"error": f"Unable to locate job {route.job_id}", "code": 404})
    return job


def _v2_job(state: EmulatorState, route: Route, body: bytes) -> Response:
    job = _v2_lookup(state, route)
    if isinstance(job, Response):
        return job
    with state.lock:
        return json_response(200, _v2_body(state, job))


def _v2_cancel(state: EmulatorState, route: Route, body: bytes) -> Response:
    job = _v2_lookup(state, route)
    if isinstance(job, Response):
        return job
    with state.lock:
        job.cancel_calls += 1
        raw, _ = state.status_of(job)
        if raw.lower() in USEAPI_RUNNING:
            state.cancel(job)
            return json_response(200, {"jobid": job.id, "status": "cancelled", "code": 200})
        answer_code = state.config.finished_cancel_answer
    if answer_code == "200":
        return json_response(200, {"jobid": job.id, "status": raw, "code": 200})
    if answer_code == "404":
        return json_response(404, {"error": f"Unable to locate job {job.id}", "code": 404})
    code = int(answer_code)
    text = f"Job {job.id} is {raw} and can not be cancelled"
    return json_response(code, {"error": text, "code": code})


def _running(state: EmulatorState, api: str) -> list[Job]:
    with state.lock:
        return [
            job
            for job in state.jobs.values()
            if job.api == api and state.status_of(job)[0].lower() in USEAPI_RUNNING
        ]


def _v2_list(state: EmulatorState, route: Route, body: bytes) -> Response:
    return json_response(200, [job.id for job in _running(state, USEAPI_V2)])


def _v3_imagine(state: EmulatorState, route: Route, body: bytes) -> Response:
    prompt = _prompt(body)
    if prompt is None:
        return json_response(400, {"error": "Required param prompt is missing or empty"})
    job = state.create_job(USEAPI_V3, prompt=prompt)
    return json_response(200, {"jobid": job.id, "verb": "imagine", "status": "created"})


def _v3_lookup(state: EmulatorState, route: Route) -> Job | Response:
    job = state.get(route.job_id or "")
    if job is None or job.api != USEAPI_V3:
        return json_response(404, {"error": "Job not found"})
    return job


def _v3_job(state: EmulatorState, route: Route, body: bytes) -> Response:
    job = _v3_lookup(state, route)
    if isinstance(job, Response):
        return job
    with state.lock:
        return json_response(200, _v3_body(state, job))


def _v3_cancel(state: EmulatorState, route: Route, body: bytes) -> Response:
    job = _v3_lookup(state, route)
    if isinstance(job, Response):
        return job
    with state.lock:
        job.cancel_calls += 1
        raw, _ = state.status_of(job)
        if raw.lower() in USEAPI_RUNNING:
            state.cancel(job)
            return Response(204)
        answer_code = state.config.finished_cancel_answer
        job_body = _v3_body(state, job)
    if answer_code == "200":
        return json_response(200, job_body)
    if answer_code == "404":
        return json_response(404, {"error": "Job not found"})
    return json_response(
        int(answer_code), {"error": f"Job {job.id} can not be cancelled, status {raw}"}
    )


def _v3_list(state: EmulatorState, route: Route, body: bytes) -> Response:
    jobs = _running(state, USEAPI_V3)
    now_wall = time.time()
    listed = []
    for job in jobs:
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


_USEAPI = {
    "v2.account": _v2_account,
    "v2.imagine": _v2_imagine,
    "v2.job": _v2_job,
    "v2.cancel": _v2_cancel,
    "v2.list": _v2_list,
    "v3.imagine": _v3_imagine,
    "v3.job": _v3_job,
    "v3.cancel": _v3_cancel,
    "v3.list": _v3_list,
}


# ---------------------------------------------------------------------- WriteText


def _token(state: EmulatorState, headers: dict[str, str], region_host: str) -> Response:
    cfg = state.config
    if headers.get("writetextai-token") != cfg.writetext_api_key:
        return json_response(401, {"error": "Invalid API key"})
    token_field, expiry_field = cfg.token_fields
    payload: dict[str, Any] = {"region": region_host, "platform": "api"}
    payload[token_field] = state.issue_token()
    if expiry_field in EXPIRY_ABSOLUTE_FIELDS:
        payload[expiry_field] = iso(time.time() + cfg.token_ttl)
    elif expiry_field is not None:
        payload[expiry_field] = cfg.token_ttl
    return json_response(200, payload)


def _wt_body(state: EmulatorState, job: Job) -> dict[str, Any]:
    raw, since = state.status_of(job)
    finished = raw.lower() not in WRITETEXT_ACTIVE | {"cancelling"}
    record = f"{job.id}-1"
    lowered = raw.lower()
    return {
        "id": job.id,
        "userName": "emulator",
        "name": job.prompt,
        "recordType": "Product",
        "status": raw,
        "startTime": iso(job.created_wall),
        "endTime": iso(job.wall(since)) if finished else None,
        "queuedIds": [record] if lowered == "pending" else [],
        "runningIds": [record] if lowered in ("running", "cancelling") else [],
        "completedIds": [record] if lowered in ("completed", "failed", "timedout") else [],
        "failedIds": [record] if lowered in ("failed", "timedout") else [],
        "completed": 1 if lowered in ("completed", "failed", "timedout") else 0,
        "total": 1,
    }


def _wt_submit(state: EmulatorState, route: Route, body: bytes) -> Response:
    payload = _json_body(body)
    name = ""
    if isinstance(payload, dict):
        name = str(payload.get("name") or payload.get("Name") or "")
    job = state.create_job(WRITETEXT, prompt=name)
    return json_response(200, {"requestId": job.id})


def _wt_lookup(state: EmulatorState, route: Route) -> Job | Response:
    job = state.get(route.job_id or "")
    if job is None or job.api != WRITETEXT:
        return json_response(404, {"error": f"Request {route.job_id} not found"})
    return job


def _wt_job(state: EmulatorState, route: Route, body: bytes) -> Response:
    job = _wt_lookup(state, route)
    if isinstance(job, Response):
        return job
    with state.lock:
        return json_response(200, _wt_body(state, job))


def _wt_cancel(state: EmulatorState, route: Route, body: bytes) -> Response:
    job = _wt_lookup(state, route)
    if isinstance(job, Response):
        return job
    with state.lock:
        job.cancel_calls += 1
        raw, _ = state.status_of(job)
        if raw.lower() in WRITETEXT_ACTIVE:
            state.cancel(job)
            return Response(200)
        if raw.lower() == "cancelling":
            return Response(200)
    return json_response(400, {"error": f"Request {job.id} is {raw} and can not be cancelled"})


def _wt_list(state: EmulatorState, route: Route, body: bytes) -> Response:
    with state.lock:
        active = [
            _wt_body(state, job)
            for job in state.jobs.values()
            if job.api == WRITETEXT
            and state.status_of(job)[0].lower() in WRITETEXT_ACTIVE | {"cancelling"}
        ]
    return json_response(200, active)


def _wt_credit(state: EmulatorState, route: Route, body: bytes) -> Response:
    return json_response(200, {"totalCredits": 1000, "availableCredits": 1000, "isPremium": False})


_WRITETEXT = {
    "writetext.submit": _wt_submit,
    "writetext.job": _wt_job,
    "writetext.cancel": _wt_cancel,
    "writetext.list": _wt_list,
    "writetext.credit": _wt_credit,
}
