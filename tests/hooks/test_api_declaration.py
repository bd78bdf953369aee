"""Each API is declared once (``hooks/apis.py``) and every API says the same things
(``hooks/contract.py``): provider info, both forms and the hook class read the description; a
third API written the way ``docs/architecture.md`` ("Adding an API") says gets all of it, and
reads its own error bodies."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from airflow_provider_cancel import get_provider_info, job_ids
from airflow_provider_cancel.answers import CancelCodes
from airflow_provider_cancel.hooks.apis import APIS, ApiDescription
from airflow_provider_cancel.hooks.base import JobApiHook
from airflow_provider_cancel.hooks.transport import ApiRequest, ApiResponse, Flow
from airflow_provider_cancel.job_ids import encode_path_segment
from airflow_provider_cancel.status import CancelOutcome, JobState, JobStatus, map_raw_status
from tests.conftest import FAST

BATCHES = "https://api.batches.test"

JOBS_API = ApiDescription(
    conn_type="batchapi",
    hook_class="tests.hooks.test_api_declaration.BatchApiHook",
    hook_name="Batch API",
    secret_label="API key",
    secret_placeholder="sk-…",
    default_host=BATCHES,
    docs_url="https://batches.test/docs",
)
STATUSES = {
    "in_progress": JobStatus.RUNNING,
    "cancelling": JobStatus.CANCELLING,
    "cancelled": JobStatus.CANCELLED,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
}


class BatchApiHook(JobApiHook):
    """A batch API shaped like OpenAI's: ``POST /v1/batches/{id}/cancel``, nested errors."""

    api = JOBS_API
    cancel_codes = CancelCodes(missing=frozenset({404}))

    def cancel_request(self, job_id: str) -> ApiRequest:
        path = f"/v1/batches/{encode_path_segment(job_id)}/cancel"
        return ApiRequest("POST", path, call="cancel", job_id=job_id)

    def status_request(self, job_id: str) -> ApiRequest:
        path = f"/v1/batches/{encode_path_segment(job_id)}"
        return ApiRequest("GET", path, call="status", job_id=job_id)

    def state_from_body(self, job_id: str, body: Any) -> JobState:
        raw = body.get("status") if isinstance(body, dict) else None
        return JobState(job_id, map_raw_status(raw, STATUSES), raw, body)

    def error_text(self, body: Any) -> str | None:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        return message if isinstance(message, str) else None

    def auth(self) -> tuple[str, dict[str, str]]:
        return self.base_url, {"Authorization": f"Bearer {self.secret}"}

    def test_flow(self) -> Flow[str]:
        response = yield ApiRequest("GET", "/v1/models", call="models")
        if response.status_code != 200:
            raise self.error_for(response, call="models")
        return "Connected to Batch API"


@pytest.fixture
def batch_conn(set_connection: Any) -> str:
    return set_connection("batches", "batchapi", password="sk-secret-0123456789")


def _class(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("api", [*APIS, JOBS_API], ids=lambda api: api.conn_type)
def test_the_hook_class_reads_its_description(api: ApiDescription) -> None:
    hook_class = _class(api.hook_class)
    assert hook_class.api == api
    assert hook_class.conn_type == api.conn_type
    assert hook_class.hook_name == api.hook_name
    assert hook_class.default_conn_name == f"{api.conn_type}_default"
    assert hook_class.default_host == api.default_host
    assert hook_class.secret_label == api.secret_label


def test_provider_info_lists_every_described_api_once() -> None:
    info = get_provider_info()
    entries = {entry["connection-type"]: entry for entry in info["connection-types"]}
    assert list(entries) == [api.conn_type for api in APIS]
    assert [i["integration-name"] for i in info["integrations"]] == [a.hook_name for a in APIS]
    assert [i["external-doc-url"] for i in info["integrations"]] == [a.docs_url for a in APIS]
    for api in APIS:
        assert entries[api.conn_type]["hook-class-name"] == api.hook_class
        assert entries[api.conn_type]["hook-name"] == api.hook_name


def test_a_new_api_gets_the_airflow2_form_from_its_description() -> None:
    behaviour = BatchApiHook.get_ui_field_behaviour()
    assert behaviour == {
        "hidden_fields": ["schema", "port", "login"],
        "relabeling": {"password": "API key", "host": "Base URL (optional)"},
        "placeholders": {"host": BATCHES, "password": "sk-…"},
    }


def test_a_new_api_cancels_and_reads_its_own_error_bodies(batch_conn, fake_api) -> None:
    hook = BatchApiHook(batch_conn, **FAST)
    fake_api.add(
        "POST", f"{BATCHES}/v1/batches/b1/cancel", json={"id": "b1", "status": "cancelling"}
    )
    assert hook.cancel_job("b1").outcome is CancelOutcome.CANCELLING
    fake_api.add(
        "POST",
        f"{BATCHES}/v1/batches/b2/cancel",
        404,
        json={"error": {"message": "No batch found with id 'b2'.", "type": "invalid_request"}},
    )
    result = hook.cancel_job("b2")
    assert result.outcome is CancelOutcome.NOT_FOUND
    assert result.message == "No batch found with id 'b2'."  # not the raw JSON


def test_the_generic_error_reading_stays_for_apis_that_do_not_say() -> None:
    response = ApiResponse(400, {"content-type": "application/json"}, '{"message": "bad id"}')
    nested = ApiResponse(400, {}, '{"error": {"message": "bad id"}}')
    hook = _class(APIS[1].hook_class)("whatever")
    assert hook.server_said(response) == "bad id"
    assert hook.server_said(nested) == '{"error": {"message": "bad id"}}'


def test_ids_are_validated_once_per_job_of_a_bulk_call(batch_conn, fake_api, monkeypatch):
    seen: list[str] = []
    real = job_ids.validate_job_id

    def counting(job_id: Any, **kwargs: Any) -> str:
        seen.append(job_id)
        return real(job_id, **kwargs)

    monkeypatch.setattr("airflow_provider_cancel.hooks.base.validate_job_id", counting)
    for job in ("a", "b", "c"):
        fake_api.add(
            "POST", f"{BATCHES}/v1/batches/{job}/cancel", json={"id": job, "status": "cancelled"}
        )
        fake_api.add("GET", f"{BATCHES}/v1/batches/{job}", json={"status": "completed"})
    hook = BatchApiHook(batch_conn, **FAST)
    results = hook.cancel_jobs(["a", "b", "c"])
    assert [r.outcome for r in results] == [CancelOutcome.CANCELLED] * 3
    assert seen == ["a", "b", "c"]
    seen.clear()
    assert set(hook.get_jobs(["a", "b"])) == {"a", "b"}
    assert seen == ["a", "b"]


def test_a_sensor_asks_the_hook_whether_its_wait_means_something(batch_conn) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor

    # Another API's connection: a "service" hook parameter says nothing about useapi.net.
    sensor = JobCancelledSensor(
        task_id="wait", conn_id="batches_default", job_id="b1", hook_params={"service": "kling"}
    )

    class NeverCancels(BatchApiHook):
        def wait_refusal(self, success_statuses: frozenset[str]) -> str | None:
            if "cancelled" in success_statuses:
                return "Batch API cancels stop nothing"
            return None

    sensor.hook = NeverCancels(batch_conn, **FAST)  # the hook its connection type picks
    with pytest.raises(AirflowFailException, match="'wait': Batch API cancels stop nothing"):
        sensor.poke({})
