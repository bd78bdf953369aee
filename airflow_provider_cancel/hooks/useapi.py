"""What useapi.net's Midjourney API means: endpoints, statuses and answers (v2 and v3)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow_provider_cancel import connection_form
from airflow_provider_cancel.exceptions import ConnectionConfigError
from airflow_provider_cancel.hooks.base import JobApiHook
from airflow_provider_cancel.hooks.transport import ApiRequest, Flow
from airflow_provider_cancel.job_ids import encode_path_segment, encode_query_value
from airflow_provider_cancel.status import (
    CancelOutcome,
    CancelResult,
    JobState,
    JobStatus,
    map_raw_status,
)

V2_STATUSES = {
    "created": JobStatus.QUEUED,
    "started": JobStatus.RUNNING,
    "progress": JobStatus.RUNNING,
    "cancelled": JobStatus.CANCELLED,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "moderated": JobStatus.FAILED,
}
V3_STATUSES = {raw: status for raw, status in V2_STATUSES.items() if raw != "cancelled"}
V3_CANCELLED_ERROR = "job cancelled by user"
"""v3 has no cancelled status: a cancelled job reads ``failed`` with this error."""

API_VERSIONS = ("v2", "v3")

# Answers that may mean "this job cannot be cancelled because it already ended" (the API
# documentation does not say which): read the job to find out what really happened.
AMBIGUOUS_REFUSALS = frozenset({400, 404, 409, 422})


def job_state(job_id: str, body: Any, api_version: str) -> JobState:
    """Normalise a useapi job body (docs/statuses.md)."""
    body_dict = body if isinstance(body, dict) else {}
    raw = body_dict.get("status")
    raw_status = raw if isinstance(raw, str) else None
    error = body_dict.get("error")
    if api_version == "v3":
        status = map_raw_status(raw, V3_STATUSES)
        cancelled = isinstance(error, str) and error.strip().lower() == V3_CANCELLED_ERROR
        if raw_status is not None and raw_status.strip().lower() == "failed" and cancelled:
            status = JobStatus.CANCELLED
    else:
        status = map_raw_status(raw, V2_STATUSES)
    message = error if isinstance(error, str) else ""
    return JobState(job_id, status, raw_status, body, message)


class UseApiHook(JobApiHook):
    """Cancel and read Midjourney jobs on useapi.net (API v2 by default, v3 by extra).

    Connection: type ``useapi``; password = API token; host optional (default
    ``https://api.useapi.net``); extra ``{"api_version": "v3"}`` for v3.

    Example::

        hook = UseApiHook("useapi_default")
        result = hook.cancel_job("job:20241218021941022-user:1308-channel:1316-bot:midjourney")
        print(result.outcome, result.status)
    """

    conn_type = "useapi"
    default_conn_name = "useapi_default"
    hook_name = "useapi.net"
    default_host = "https://api.useapi.net"
    secret_label = "API token"
    # Airflow 2.11's connection form (Airflow 3 reads the provider info instead).
    get_ui_field_behaviour = connection_form.get_ui_field_behaviour
    get_connection_form_widgets = connection_form.get_connection_form_widgets

    def __init__(
        self, conn_id: str | None = None, *, api_version: str | None = None, **kwargs: Any
    ):
        super().__init__(conn_id, **kwargs)
        self._api_version_argument = api_version

    @cached_property
    def api_version(self) -> str:
        """``v2`` or ``v3``: the hook argument, else the connection's extra, else ``v2``."""
        return self._api_version(self.connection)

    def _api_version(self, conn: Any) -> str:
        version = self._api_version_argument or self.extra_value("api_version", conn) or "v2"
        version = str(version).strip().lower()
        if version not in API_VERSIONS:
            raise ConnectionConfigError(
                f"Connection {self.conn_id!r}: api_version {version!r} is not one of "
                f"{', '.join(API_VERSIONS)}"
            )
        return version

    def _check_extras(self, conn: Any) -> None:
        self._api_version(conn)

    def auth(self) -> tuple[str, dict[str, str]]:
        """The base URL and the bearer-token headers."""
        return self.base_url, {
            "Authorization": f"Bearer {self.secret}",
            "Accept": "application/json",
        }

    def status_request(self, job_id: str) -> ApiRequest:
        """The request that reads one job in this API version."""
        if self.api_version == "v3":
            path = f"/v3/midjourney/jobs/{encode_path_segment(job_id)}"
        else:
            path = f"/v2/jobs/?jobid={encode_query_value(job_id)}"
        return ApiRequest("GET", path, call="status", job_id=job_id)

    def cancel_request(self, job_id: str) -> ApiRequest:
        """The request that cancels one job in this API version."""
        if self.api_version == "v3":
            path = f"/v3/midjourney/jobs/{encode_path_segment(job_id)}"
            return ApiRequest("DELETE", path, call="cancel", job_id=job_id)
        path = f"/v2/jobs/cancel/?jobid={encode_query_value(job_id)}"
        return ApiRequest("GET", path, call="cancel", job_id=job_id)

    def status_flow(self, job_id: str) -> Flow[JobState]:
        """Read one job."""
        response = yield self.status_request(job_id)
        if response.status_code != 200:
            raise self.error_for(response, call="status", job_id=job_id)
        body = self.parse_job_body(response, call="status", job_id=job_id)
        return job_state(job_id, body, self.api_version)

    def cancel_flow(self, job_id: str) -> Flow[CancelResult]:
        """Cancel one job and say what became of it."""
        response = yield self.cancel_request(job_id)
        code = response.status_code
        if code == 204:  # v3's documented success: the job is cancelled
            return CancelResult(
                job_id, CancelOutcome.CANCELLED, JobStatus.CANCELLED, None, "cancelled"
            )
        if 200 <= code < 300:
            return (yield from self.cancel_answered_2xx_flow(job_id, response))
        if code not in AMBIGUOUS_REFUSALS:
            raise self.error_for(response, call="cancel", job_id=job_id)
        # A refusal that may mean "it had ended already": read the job to find out.
        return (yield from self.read_after_cancel_flow(job_id, response, accepted=False))

    def state_from_body(self, job_id: str, body: Any) -> JobState:
        """The job state a status body describes."""
        return job_state(job_id, body, self.api_version)

    def test_flow(self) -> Flow[str]:
        """Read the account: the connection test."""
        response = yield ApiRequest("GET", "/v2/account", call="account")
        if response.status_code != 200:
            raise self.error_for(response, call="account")
        return f"Connected to useapi.net ({self.base_url}, API {self.api_version})"
