"""What an emulated API is, as data, and the handlers every API shares.

An :class:`Api` names its endpoints (:class:`Endpoint`: path, methods, handler), how it checks
credentials, what its errors look like, how its jobs live (:class:`~.model.JobModel`) and how it
answers a cancel (:class:`CancelRule`). The generic handlers below (read a job, cancel it, list
the running ones, in ``handlers.py``) read those descriptions, so an API module holds only what
is its own: its bodies, texts and codes. ``routes.py`` mounts each :class:`Api` on a path prefix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model import Job, JobModel

if TYPE_CHECKING:
    from .state import EmulatorState

JSON_TYPE = "application/json; charset=utf-8"

#: The path segment of an :class:`Endpoint` that takes the job id.
ID = "{id}"


@dataclass
class Response:
    """An HTTP response before it is written to the socket."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> Response:
    """A JSON response (UTF-8, non-ASCII kept as is)."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Response(status, body, JSON_TYPE, list(headers or []))


def json_body(body: bytes) -> Any:
    """The request body as JSON, or ``None`` when it is empty or not JSON."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


@dataclass(frozen=True)
class Request:
    """A request resolved to its :class:`Route`; ``headers`` has lower-cased names."""

    route: Route
    method: str
    headers: Mapping[str, str]
    body: bytes
    region_host: str

    @property
    def api(self) -> Api:
        """The API the request was routed to (handlers only run for mounted routes)."""
        assert self.route.owner is not None
        return self.route.owner


Handler = Callable[["EmulatorState", Request], Response]


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of an API.

    ``path`` is matched segment by segment after the API's prefix (:data:`ID` takes the job id);
    ``name`` is appended to the API's ``route_prefix`` to give the counters' ``by_route`` key;
    ``call`` is what fault filters and counters see. An endpoint with ``only_for_methods``
    exists for its methods only (another method falls through to the next endpoint) instead of
    answering 405. ``id_query`` takes the job id from that query parameter; ``needs_query``
    matches only when the query has that parameter.
    """

    path: tuple[str, ...]
    name: str
    call: str
    handler: Handler
    methods: tuple[str, ...] = ("GET",)
    only_for_methods: bool = False
    id_query: str | None = None
    needs_query: str | None = None

    def match(
        self, method: str, segments: list[str], compared: list[str], query: Mapping[str, list[str]]
    ) -> tuple[bool, str | None]:
        """Whether this endpoint serves the request, and the job id it names."""
        if len(self.path) != len(segments):
            return False, None
        job_id: str | None = None
        for pattern, segment, seen in zip(self.path, segments, compared, strict=True):
            if pattern == ID:
                job_id = segment
            elif pattern != seen:
                return False, None
        if self.only_for_methods and method not in self.methods:
            return False, None
        if self.needs_query is not None and self.needs_query not in query:
            return False, None
        if self.id_query is not None:
            job_id = query.get(self.id_query, [None])[0]
        return True, job_id


@dataclass(frozen=True)
class Route:
    """What a request is.

    ``name`` is the counters' ``by_route`` key; ``api`` and ``call`` are what fault filters
    match; ``owner`` is the mounted API and ``endpoint`` its endpoint (``None``: not found).
    """

    name: str
    api: str
    call: str
    owner: Api | None = None
    endpoint: Endpoint | None = None
    job_id: str | None = None


@dataclass(frozen=True)
class CancelRule:
    """How an API answers a cancel.

    A job whose lower-case raw status is in ``accepts`` is cancelled and gets ``accepted``; one
    in ``pending`` (already being cancelled; or ended, where the API answers that alike, as
    useapi.net's jobs family does) gets ``accepted`` again without change. Any other
    job is refused: with ``finished_body`` the answer follows the emulator's
    ``finished_cancel_answer`` setting (200 with that body, 404 as for a missing job, or
    400/409 with ``refused_text``), without it the answer is always 400 with ``refused_text``
    (formatted with ``id`` and ``status``).
    """

    accepts: frozenset[str]
    accepted: Callable[[Job], Response]
    refused_text: str
    finished_body: Callable[[EmulatorState, Job], Any] | None = None
    pending: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Api:
    """One emulated API (or a part of one mounted on its own prefix).

    ``family`` is the API name fault filters and the request log use (``useapi``,
    ``writetext``); ``route_prefix`` starts its route names. ``authorize`` returns the refusal
    of a request without valid credentials (``None``: let it through). ``error_code`` puts the
    HTTP status into error bodies as ``code`` (useapi v2). ``missing_text`` is the 404 text of an
    unknown job (formatted with ``id``), ``id_required`` the 400 text when the request names no
    job. ``listed`` says which lower-case raw statuses the list endpoint shows.
    """

    family: str
    route_prefix: str
    endpoints: tuple[Endpoint, ...] = ()
    case_insensitive: bool = False
    authorize: Callable[[EmulatorState, Api, Mapping[str, str]], Response | None] | None = None
    error_code: bool = False
    model: JobModel | None = None
    job_body: Callable[[EmulatorState, Job], Any] | None = None
    cancel: CancelRule | None = None
    missing_text: str = "Not found"
    id_required: str | None = None
    listed: frozenset[str] = frozenset()

    def error(
        self, status: int, text: str, headers: list[tuple[str, str]] | None = None
    ) -> Response:
        """An error response in this API's shape."""
        payload: dict[str, Any] = {"error": text}
        if self.error_code:
            payload["code"] = status
        return json_response(status, payload, headers)

    def route(self, method: str, segments: list[str], query: Mapping[str, list[str]]) -> Route:
        """The route of a request whose path below this API's prefix is ``segments``."""
        compared = [s.lower() for s in segments] if self.case_insensitive else segments
        for endpoint in self.endpoints:
            matched, job_id = endpoint.match(method, segments, compared, query)
            if matched:
                name = f"{self.route_prefix}.{endpoint.name}"
                return Route(name, self.family, endpoint.call, self, endpoint, job_id)
        return Route(f"{self.route_prefix}.not_found", self.family, "other", self)

    def find(self, state: EmulatorState, job_id: str | None) -> Job | Response:
        """The job a request names, or the API's answer when there is none."""
        if self.id_required is not None and not job_id:
            return self.error(400, self.id_required)
        job = state.get(job_id or "")
        if job is None or self.model is None or job.api != self.model.key:
            return self.error(404, self.missing_text.format(id=job_id))
        return job

    def refuse_cancel(self, state: EmulatorState, rule: CancelRule, job: Job, raw: str) -> Response:
        """The answer to a cancel of a job that cannot be cancelled any more."""
        answer = state.config.finished_cancel_answer if rule.finished_body else "400"
        if answer == "200" and rule.finished_body is not None:
            return json_response(200, rule.finished_body(state, job))
        if answer == "404":
            return self.error(404, self.missing_text.format(id=job.id))
        return self.error(int(answer), rule.refused_text.format(id=job.id, status=raw))
