"""What useapi.net's Midjourney API means: endpoints, statuses and answers (v2 and v3)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow_provider_cancel.answers import CancelCodes, generic_error_text
from airflow_provider_cancel.exceptions import ConnectionConfigError
from airflow_provider_cancel.hooks.apis import USEAPI
from airflow_provider_cancel.hooks.base import JobApiHook
from airflow_provider_cancel.hooks.transport import ApiRequest, Flow
from airflow_provider_cancel.hooks.useapi_services import (
    DEFAULT_SERVICE,
    JOBS_CODES,
    MIDJOURNEY,
    MIDJOURNEY_V3,
    SERVICE_DEFAULT,
    SERVICES,
    UseApiService,
    chosen_version,
    find_service,
    service_names,
    versions_of,
    wait_refusal,
)
from airflow_provider_cancel.job_ids import encode_path_segment, encode_query_value
from airflow_provider_cancel.status import (
    JobState,
    JobStatus,
    map_raw_status,
)

V2_STATUSES = MIDJOURNEY
V3_STATUSES = MIDJOURNEY_V3
V3_CANCELLED_ERROR = "job cancelled by user"
"""v3 has no cancelled status: a cancelled job reads ``failed`` with this error."""

API_VERSIONS = ("v2", "v3")
"""Midjourney's API versions."""


def job_state(job_id: str, body: Any, service: UseApiService | str) -> JobState:
    """Normalise a useapi job body (``docs/statuses.md``); ``service`` is a description, or a
    Midjourney API version (``"v2"``, ``"v3"``)."""
    spec = service if isinstance(service, UseApiService) else find_service("midjourney", service)
    body_dict = body if isinstance(body, dict) else {}
    raw = body_dict.get(spec.status_field)
    raw_status = raw if isinstance(raw, str) else None
    numbered = any(key.isdigit() for key in spec.statuses)  # MiniMax numbers its statuses
    if numbered and isinstance(raw, int) and not isinstance(raw, bool):
        raw_status = str(raw)
    status = map_raw_status(raw_status, dict(spec.statuses))
    error = body_dict.get("error")
    said = _error_text(error)
    failed = (raw_status or "").strip().lower() == "failed"  # "moderated" is never a cancel
    if failed and spec.cancelled_marker is not None:
        marks = {said.strip().lower()}
        if isinstance(error, dict):
            marks.add(str(error.get("code", "")).strip().lower())
        if spec.cancelled_marker in marks:
            status = JobStatus.CANCELLED
    return JobState(job_id, status, raw_status, body, said)


def _error_text(error: Any) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or "")
    return ""


class UseApiHook(JobApiHook):
    """Cancel and read jobs of useapi.net's services: Midjourney (API v2 by default, v3 by
    extra), FlowMusic, Gemini Notebook, InsightFaceSwap, PixVerse, Kling, MiniMax, TemPolor.

    Connection: type ``useapi``; password = API token; host optional (default
    ``https://api.useapi.net``); extra ``service`` (default ``midjourney``, see
    ``docs/useapi-services.md``) and ``api_version`` (Midjourney and PixVerse). The hook
    parameters of the same names win (``hook_params={"service": "flowmusic"}``).

    Example::

        hook = UseApiHook("useapi_default")
        result = hook.cancel_job("job:20241218021941022-user:1308-channel:1316-bot:midjourney")
        print(result.outcome, result.status)
        UseApiHook("useapi_default", service="flowmusic").cancel_job(flowmusic_job_id)
    """

    api = USEAPI

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        api_version: str | None = None,
        service: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(conn_id, **kwargs)
        self._api_version_argument = api_version
        self._service_argument = service

    @cached_property
    def service(self) -> UseApiService:
        """The description of the service this hook cancels jobs on."""
        return self._service(self.connection)

    @property
    def api_version(self) -> str:
        """The service's API version (Midjourney v2 or v3, PixVerse v1 or v2, else v1)."""
        return self.service.version

    def _service(self, conn: Any) -> UseApiService:
        name = self._service_argument or self.extra_value("service", conn) or DEFAULT_SERVICE
        name = str(name).strip().lower()
        versions = versions_of(name)
        if not versions:
            raise ConnectionConfigError(
                f"Connection {self.conn_id!r}: useapi.net service {name!r} is not supported "
                f"(services: {', '.join(service_names())})"
            )
        if len(versions) == 1:  # api_version chooses only where there is a choice
            return SERVICES[(name, versions[0])]
        version = chosen_version(
            self._api_version_argument or self.extra_value("api_version", conn)
        )
        if version not in versions:
            raise ConnectionConfigError(
                f"Connection {self.conn_id!r}: api_version {version!r} is not one of "
                f"{', '.join(versions)} (or {SERVICE_DEFAULT!r}) for service {name!r}"
            )
        return SERVICES[(name, version)]

    def check_extras(self, conn: Any) -> None:
        """``service`` and ``api_version`` (hook parameters or extras) name a known service."""
        self._service(conn)

    def wait_refusal(self, success_statuses: frozenset[str]) -> str | None:
        """A cancel on a "scheduler" service stops only useapi's tracking: nothing to wait for."""
        return wait_refusal(self.service, success_statuses)

    def error_text(self, body: Any) -> str | None:
        """The message of useapi's flat ``{"error": "...", "errorDetails": "..."}`` body."""
        text = generic_error_text(body)
        details = body.get("errorDetails") if isinstance(body, dict) else None
        if text and isinstance(details, str) and details:
            return f"{text} ({details})"
        return text

    def auth(self) -> tuple[str, dict[str, str]]:
        """The base URL and the API token as a bearer token."""
        return self.base_url, {
            "Authorization": f"Bearer {self.secret}",
            "Accept": "application/json",
        }

    def _path(self, template: str, job_id: str) -> str:
        return template.format(id=encode_path_segment(job_id), qid=encode_query_value(job_id))

    def _stops_video(self, job_id: str) -> bool:
        video = self.service.video_cancel
        return video is not None and video[0] in job_id

    def status_request(self, job_id: str) -> ApiRequest:
        """The service's read of one job; a service without one says so."""
        if self.service.status is None:
            raise ConnectionConfigError(
                f"useapi.net service {self.service.name!r} has no documented way to read one "
                "job: its jobs can be cancelled (untracked), not watched"
            )
        method, template = self.service.status
        return ApiRequest(method, self._path(template, job_id), call="status", job_id=job_id)

    def cancel_request(self, job_id: str) -> ApiRequest:
        """The service's cancel (MiniMax videos: the call that tries to stop the generation)."""
        if self._stops_video(job_id):  # MiniMax: try to stop the generation itself
            path = (self.service.video_cancel or ("", ""))[1]
            return ApiRequest("POST", path, call="cancel", job_id=job_id, json={"videoId": job_id})
        method, template = self.service.cancel
        return ApiRequest(method, self._path(template, job_id), call="cancel", job_id=job_id)

    def answer_codes(self, job_id: str) -> CancelCodes:
        """The service's cancel codes (a MiniMax video cancel reads like a jobs-family one)."""
        return JOBS_CODES if self._stops_video(job_id) else self.service.codes

    def state_from_body(self, job_id: str, body: Any) -> JobState:
        """The job as the service's status table and cancelled marker read it."""
        return job_state(job_id, body, self.service)

    def test_flow(self) -> Flow[str]:
        """``GET /v2/account``: one token covers every service."""
        response = yield ApiRequest("GET", "/v2/account", call="account")
        if response.status_code != 200:
            raise self.error_for(response, call="account")
        service = self.service
        which = "" if service.name == DEFAULT_SERVICE else f", service {service.name}"
        return f"Connected to useapi.net ({self.base_url}, API {service.version}{which})"
