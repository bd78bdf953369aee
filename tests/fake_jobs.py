"""A third job API that exists only in the tests: a minimal hook and its emulated server.

It proves that an API the package has never heard of gets the whole hook contract and fault
matrix from one module (this one) plus its description in ``tests/apis.py``: nothing in the
package names it. Its contract, made up here and kept unlike the real APIs':

* ``X-Api-Key: <key>`` on every call; ``GET /fake/v1/me`` checks the key;
* ``GET /fake/v1/jobs/{id}``: ``{"id", "state"}`` with state ``waiting``, ``working``,
  ``done``, ``broken`` or ``stopped``;
* ``POST /fake/v1/jobs/{id}/stop``: 202 ``{"id", "state": "stopped"}`` for a job still waiting
  or working; 400 ``{"error": "job <id> is <state>"}`` for one that ended; 404 for an unknown
  job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_cancel.answers import CancelCodes
from airflow_provider_cancel.emulator.api import (
    ID,
    Api,
    CancelRule,
    Endpoint,
    Response,
    json_response,
)
from airflow_provider_cancel.emulator.handlers import cancel_job, read_job
from airflow_provider_cancel.emulator.model import Job, JobModel
from airflow_provider_cancel.emulator.routes import Mount
from airflow_provider_cancel.hooks.base import JobApiHook
from airflow_provider_cancel.hooks.transport import ApiRequest, Flow
from airflow_provider_cancel.job_ids import encode_path_segment
from airflow_provider_cancel.status import JobState, JobStatus, map_raw_status

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_cancel.emulator.state import EmulatorState

KEY = "fakejobs"
"""The connection type, and the emulator's job key and family of it."""
STATES = {
    "waiting": JobStatus.QUEUED,
    "working": JobStatus.RUNNING,
    "done": JobStatus.COMPLETED,
    "broken": JobStatus.FAILED,
    "stopped": JobStatus.CANCELLED,
}

# ---------------------------------------------------------------------- the hook


class FakeJobsHook(JobApiHook):
    """Cancel and read jobs of the fake job API (tests only)."""

    conn_type = KEY
    default_conn_name = "fakejobs_default"
    hook_name = "Fake jobs"
    default_host = "https://api.fake-jobs.example"
    secret_label = "API key"
    cancel_codes = CancelCodes(missing=frozenset({404}), unclear_refusals=frozenset({400}))

    def auth(self) -> tuple[str, dict[str, str]]:
        """The base URL and the key header."""
        return self.base_url, {"X-Api-Key": self.secret}

    def test_flow(self) -> Flow[str]:
        """``GET /fake/v1/me``."""
        response = yield ApiRequest("GET", "/fake/v1/me", call="account")
        if response.status_code != 200:
            raise self.error_for(response, call="account")
        return f"Connected to fake jobs ({self.base_url})"

    def cancel_request(self, job_id: str) -> ApiRequest:
        """``POST /fake/v1/jobs/{id}/stop``."""
        path = f"/fake/v1/jobs/{encode_path_segment(job_id)}/stop"
        return ApiRequest("POST", path, call="cancel", job_id=job_id)

    def status_request(self, job_id: str) -> ApiRequest:
        """``GET /fake/v1/jobs/{id}``."""
        path = f"/fake/v1/jobs/{encode_path_segment(job_id)}"
        return ApiRequest("GET", path, call="status", job_id=job_id)

    def state_from_body(self, job_id: str, body: Any) -> JobState:
        """The job's ``state`` field."""
        raw = body.get("state") if isinstance(body, dict) else None
        raw_status = raw if isinstance(raw, str) else None
        return JobState(job_id, map_raw_status(raw_status, STATES), raw_status, body)


# ---------------------------------------------------------------------- the emulated API


def _authorize(state: EmulatorState, api: Api, headers: Mapping[str, str]) -> Response | None:
    # The emulator has one setting per secret; this API takes useapi_token's value as its key.
    if headers.get("x-api-key") != state.config.useapi_token:
        return api.error(401, "bad key")
    return None


def _body(state: EmulatorState, job: Job) -> dict[str, Any]:
    return {"id": job.id, "state": state.status_of(job)[0]}


def _stopped(job: Job) -> Response:
    return json_response(202, {"id": job.id, "state": "stopped"})


def _me(state: EmulatorState, request: Any) -> Response:
    return json_response(200, {"name": "emulator"})


MODEL = JobModel(
    key=KEY,
    steps=((0, "waiting"), (1, "working")),
    completed="done",
    cancelled="stopped",
    normalized={raw: status.value for raw, status in STATES.items()},
    new_id=lambda number: f"fj-{number()}",
)
API = Api(
    family=KEY,
    route_prefix=KEY,
    endpoints=(
        Endpoint(("me",), "me", "other", _me),
        Endpoint(("jobs", ID), "job", "status", read_job),
        Endpoint(("jobs", ID, "stop"), "stop", "cancel", cancel_job, ("POST",)),
    ),
    authorize=_authorize,
    model=MODEL,
    job_body=_body,
    cancel=CancelRule(frozenset({"waiting", "working"}), _stopped, "job {id} is {status}"),
    missing_text="no job {id}",
)
MOUNT = Mount(("fake", "v1"), API)
