"""The routing table: which API serves which path prefix on which port.

Adding an API is one module that describes it as an :class:`~.api.Api` and one :class:`Mount`
below (or, for an API that is no part of the emulator, such as a test's, a :class:`Mount`
handed to ``Emulator(mounts=...)``); a useapi.net service is mounted from its description in ``catalog.py`` (transcribed from
useapi.net's docs, never read from the hooks) by the module of its family (:data:`FAMILIES`).

``resolve()`` is a pure function from a raw request target to a :class:`~.api.Route`;
``answer()`` runs the route's handler, which reads and changes :class:`~.state.EmulatorState`.

Job ids are opaque and may contain ``/``, ``?``, ``#``, ``%``, ``..``, spaces, unicode and control
characters, so the raw target is split on ``/`` *before* percent-decoding each segment (``%2F``
stays inside the id), and literal dot segments are removed first like a real front end would do
(a client that sends ``..`` unencoded does not reach the job).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from . import useapi_discord, useapi_jobs, useapi_scheduler, useapi_v2, useapi_v3, writetext
from .api import Api, Request, Response, Route
from .catalog import DISCORD, JOBS, SCHEDULER, SERVICES, Service
from .model import JobModel
from .state import EmulatorState


@dataclass(frozen=True)
class Mount:
    """``api`` serves the paths below ``prefix`` on the main port or the region port."""

    prefix: tuple[str, ...]
    api: Api
    region: bool = False

    def holds(self, segments: list[str], region: bool) -> bool:
        """Whether a request for ``segments`` on this port belongs to the mounted API."""
        if region != self.region or len(segments) < len(self.prefix):
            return False
        head = segments[: len(self.prefix)]
        if self.api.case_insensitive:
            head = [segment.lower() for segment in head]
        return tuple(head) == self.prefix


#: How each useapi.net family's services are emulated (Midjourney has its own modules).
FAMILIES: Mapping[str, Callable[[Service], Api]] = {
    DISCORD: useapi_discord.api,
    JOBS: useapi_jobs.api,
    SCHEDULER: useapi_scheduler.api,
}

#: Longest prefix first.
MOUNTS: tuple[Mount, ...] = (
    Mount(("web", "apitoken", "accesstoken"), writetext.TOKEN),
    Mount(("v3", "midjourney"), useapi_v3.API),
    *(
        Mount((service.version, service.name), FAMILIES[service.family](service))
        for service in SERVICES
    ),
    Mount(("v2",), useapi_v2.API),
    Mount(("text",), writetext.ELSEWHERE),
    Mount(("web",), writetext.ELSEWHERE),
    Mount((), writetext.API, region=True),
)


def job_models(mounts: Sequence[Mount]) -> dict[str, JobModel]:
    """The job model of every mounted API, by the key its jobs carry."""
    return {mount.api.model.key: mount.api.model for mount in mounts if mount.api.model}


#: The job model of every API, by the key jobs carry (``Emulator.create_job(api, ...)``).
JOB_MODELS: Mapping[str, JobModel] = job_models(MOUNTS)


def normalize(api: str, raw_status: str, error: str | None = None) -> str:
    """Map a raw status to the product's normalised status (docs/statuses.md).

    Written from the APIs' docs, not from the hooks, so tests can compare the emulator's view
    with the hook's view. Unknown raw values map to ``"unknown"``; an unknown ``api`` reads as useapi v2.
    """
    return JOB_MODELS.get(api, useapi_v2.MODEL).normalize(raw_status, error)


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


def resolve(method: str, raw_path: str, region: bool, mounts: Sequence[Mount] = MOUNTS) -> Route:
    """Find the endpoint for a request on the main port or the region port (the first of
    ``mounts`` that holds it)."""
    segments, query = split_target(raw_path)
    for mount in mounts:
        if mount.holds(segments, region):
            return mount.api.route(method, segments[len(mount.prefix) :], query)
    # useapi's front end answers every other /v3/... path in v2's error shape.
    family = "useapi" if segments and segments[0] == "v3" else "unknown"
    return Route("not_found", family, "other")


def answer(
    state: EmulatorState,
    route: Route,
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    region_host: str,
) -> Response:
    """The API's response to a request already resolved to ``route``.

    ``headers`` has lower-cased names.
    """
    api = route.owner
    if api is None:
        fallback = useapi_v2.API if route.api == "useapi" else writetext.ELSEWHERE
        return fallback.error(404, "Not found")
    endpoint = route.endpoint
    if endpoint is None:
        return api.error(404, "Not found")
    if method not in endpoint.methods:
        return api.error(405, "Method not allowed", [("Allow", ", ".join(endpoint.methods))])
    if api.authorize is not None:
        refusal = api.authorize(state, api, headers)
        if refusal is not None:
            return refusal
    return endpoint.handler(state, Request(route, method, headers, body, region_host))
