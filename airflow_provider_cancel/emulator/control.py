"""The control API, ``/_emulator/...``: drive and inspect an emulator that runs in another process.

Every endpoint is one row of :data:`ENDPOINTS` and calls the same :class:`~.facade.Emulator`
method a test would call in-process. Bodies are JSON objects; a bad value answers 400, an unknown
job 404.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .api import ID, Response, json_response
from .routes import split_target

if TYPE_CHECKING:
    from .facade import Emulator

Action = Callable[["Emulator", str | None, dict[str, Any]], Any]

OK = {"ok": True}


def _health(emulator: Emulator, job_id: str | None, payload: dict[str, Any]) -> Any:
    return {"ok": True, "url": emulator.url, "region": emulator.region}


def _create_job(emulator: Emulator, job_id: str | None, payload: dict[str, Any]) -> Any:
    api = payload.get("api")
    if not isinstance(api, str):
        raise ValueError("api is required")
    job = emulator.state.create_job(
        api, payload.get("job_id"), payload.get("status"), error=payload.get("error")
    )
    return emulator.job(job.id)


def _job(emulator: Emulator, job_id: str | None, payload: dict[str, Any]) -> Any:
    return emulator.job(job_id or "")


def _pin_status(emulator: Emulator, job_id: str | None, payload: dict[str, Any]) -> Any:
    status = payload.get("status")
    if not isinstance(status, str):
        raise ValueError("status is required")
    emulator.set_status(job_id or "", status, payload.get("error"))
    return emulator.job(job_id or "")


def _inject(emulator: Emulator, job_id: str | None, payload: dict[str, Any]) -> Any:
    emulator.inject(**payload)
    return OK


def _configure(emulator: Emulator, job_id: str | None, payload: dict[str, Any]) -> Any:
    emulator.configure(**payload)
    return OK


def _then_ok(method: Callable[[Emulator], None]) -> Action:
    def action(emulator: Emulator, job_id: str | None, payload: dict[str, Any]) -> Any:
        method(emulator)
        return OK

    return action


#: ``(method, path below /_emulator/) -> action``; the action's result is the JSON answer.
ENDPOINTS: dict[tuple[str, tuple[str, ...]], Action] = {
    ("GET", ("health",)): _health,
    ("GET", ("counters",)): lambda emulator, _, __: emulator.counters,
    ("GET", ("requests",)): lambda emulator, _, __: emulator.requests_log,
    ("GET", ("jobs",)): lambda emulator, _, __: emulator.jobs(),
    ("POST", ("jobs",)): _create_job,
    ("GET", ("jobs", ID)): _job,
    ("POST", ("jobs", ID, "status")): _pin_status,
    ("POST", ("faults",)): _inject,
    ("DELETE", ("faults",)): _then_ok(lambda emulator: emulator.clear_faults()),
    ("POST", ("reset",)): _then_ok(lambda emulator: emulator.reset()),
    ("POST", ("expire_tokens",)): _then_ok(lambda emulator: emulator.expire_tokens()),
    ("POST", ("config",)): _configure,
    ("GET", ("config",)): lambda emulator, _, __: emulator.config,
}


def _find(method: str, rest: list[str]) -> tuple[Action, str | None] | None:
    for (verb, path), action in ENDPOINTS.items():
        if verb != method or len(path) != len(rest):
            continue
        job_id = None
        for pattern, segment in zip(path, rest, strict=True):
            if pattern == ID:
                job_id = segment
            elif pattern != segment:
                break
        else:
            return action, job_id
    return None


def control(emulator: Emulator, method: str, raw_path: str, body: bytes) -> Response:
    """The answer to a request for ``/_emulator/...``."""
    segments, _ = split_target(raw_path)
    rest = segments[1:]
    if rest and rest[-1] == "" and len(rest) > 1:
        rest = rest[:-1]
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        return json_response(400, {"error": "Body is not JSON"})
    if not isinstance(payload, dict):
        return json_response(400, {"error": "Body must be a JSON object"})
    found = _find(method, rest)
    if found is None:
        return json_response(404, {"error": "Unknown control endpoint"})
    action, job_id = found
    try:
        return json_response(200, action(emulator, job_id, payload))
    except KeyError as exc:
        return json_response(404, {"error": f"Unknown job {exc.args[0]!r}"})
    except (ValueError, TypeError) as exc:
        return json_response(400, {"error": str(exc)})
