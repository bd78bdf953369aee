"""useapi.net's services beyond Midjourney, one family at a time (discord, jobs, scheduler):
cancel a running job, cancel a finished one, read a job, the catalog's error codes and a 429
whose body says when to retry, on the sync and the async path. The answers are scripted as the
useapi.net pages describe them (``docs/useapi-services.md``)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    ConnectionConfigError,
    JobNotFoundError,
)
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.useapi_services import SCHEDULER, SERVICES
from airflow_provider_cancel.job_ids import encode_path_segment, encode_query_value
from airflow_provider_cancel.status import CancelOutcome, JobStatus
from tests.conftest import FAST

from .conftest import USEAPI

TOKEN = "user:1308-services-token"
JOB = "job:56ef7890-ab12-user:1308-jo@example.com-bot:svc"

DISCORD = [("faceswap", "v1", "/v1/faceswap"), ("pixverse", "v1", "/v1/pixverse")]
JOBS = [("flowmusic", "user_cancelled"), ("gemini-notebook", "cancelled")]
SCHEDULERS = [("kling", "v1"), ("minimax", "v1"), ("tempolor", "v1"), ("pixverse", "v2")]


@pytest.fixture
def useapi(set_connection: Any) -> Any:
    """``useapi(service, version=None)`` -> a hook on a connection for that service."""

    def make(service: str, version: str | None = None, **kwargs: Any) -> UseApiHook:
        extra = {"service": service, **({"api_version": version} if version else {})}
        set_connection("svc", "useapi", password=TOKEN, extra=extra)
        return UseApiHook("svc", **{**FAST, **kwargs})

    return make


def url(path: str) -> str:
    return f"{USEAPI}{path}"


# ---------------------------------------------------------------------- discord family


@pytest.mark.parametrize(("service", "version", "prefix"), DISCORD)
def test_discord_family(useapi, fake_api, run_hook, service, version, prefix) -> None:
    cancel = url(f"{prefix}/jobs/cancel/?jobid={encode_query_value(JOB)}")
    status = url(f"{prefix}/jobs/?jobid={encode_query_value(JOB)}")
    fake_api.add("GET", cancel, json={"jobid": JOB, "status": "cancelled"})
    fake_api.add("GET", cancel, 400, json={"error": "Job is completed"})
    fake_api.add("GET", status, json={"jobid": JOB, "status": "completed"})
    hook = useapi(service, version)
    assert run_hook(hook, "cancel_job", JOB).outcome is CancelOutcome.CANCELLED
    finished = run_hook(useapi(service, version), "cancel_job", JOB)
    assert (finished.outcome, finished.status) == (
        CancelOutcome.ALREADY_FINISHED,
        JobStatus.COMPLETED,
    )
    assert run_hook(useapi(service, version), "get_job", JOB).status is JobStatus.COMPLETED


# ---------------------------------------------------------------------- jobs family


@pytest.mark.parametrize(("service", "marker"), JOBS)
def test_jobs_family_cancel_of_a_running_job_reads_cancelled(
    useapi, fake_api, run_hook, service, marker
) -> None:
    path = url(f"/v1/{service}/jobs/{encode_path_segment(JOB)}")
    fake_api.add("DELETE", path, 204)
    fake_api.add("GET", path, json={"jobid": JOB, "status": "failed", "error": {"code": marker}})
    result = run_hook(useapi(service), "cancel_job", JOB)
    assert (result.outcome, result.status) == (CancelOutcome.CANCELLED, JobStatus.CANCELLED)
    assert [c.method for c in fake_api.calls] == ["DELETE", "GET"]  # the 204 alone says nothing


@pytest.mark.parametrize(("service", "marker"), JOBS)
def test_jobs_family_cancel_of_a_finished_job_is_never_cancelled(
    useapi, fake_api, run_hook, service, marker
) -> None:
    path = url(f"/v1/{service}/jobs/{encode_path_segment(JOB)}")
    fake_api.add("DELETE", path, 204)  # the API answers 204 for a finished job too
    fake_api.add("GET", path, json={"jobid": JOB, "status": "completed"})
    result = run_hook(useapi(service), "cancel_job", JOB)
    assert (result.outcome, result.status) == (
        CancelOutcome.ALREADY_FINISHED,
        JobStatus.COMPLETED,
    )
    fake_api.scripts.clear()
    fake_api.add("GET", path, json={"jobid": JOB, "status": "failed", "error": "out of credits"})
    failed = run_hook(useapi(service), "get_job", JOB)
    assert failed.status is JobStatus.FAILED  # failed without the marker: not a cancel


@pytest.mark.parametrize(("service", "marker"), JOBS)
def test_jobs_family_reads_and_codes(useapi, fake_api, run_hook, service, marker) -> None:
    path = url(f"/v1/{service}/jobs/{encode_path_segment(JOB)}")
    fake_api.add("GET", path, json={"jobid": JOB, "status": "pending"})
    assert run_hook(useapi(service), "get_job", JOB).status is JobStatus.RUNNING
    fake_api.scripts.clear()
    fake_api.add("DELETE", path, 404, json={"error": "no such job", "code": 404})
    assert run_hook(useapi(service), "cancel_job", JOB).outcome is CancelOutcome.NOT_FOUND
    fake_api.scripts.clear()
    fake_api.add("DELETE", path, 403, json={"error": "not your job", "code": 403})
    with pytest.raises(AuthenticationError, match="another account"):
        run_hook(useapi(service), "cancel_job", JOB)
    fake_api.scripts.clear()
    fake_api.add("GET", path, 410, json={"error": "expired", "code": 410})
    with pytest.raises(JobNotFoundError, match="expired"):
        run_hook(useapi(service), "get_job", JOB)
    assert fake_api.count(path, "GET") == 2  # 410 is not retried


def test_429_with_retry_after_in_the_body(useapi, fake_api, run_hook) -> None:
    path = url(f"/v1/flowmusic/jobs/{encode_path_segment(JOB)}")
    fake_api.add("GET", path, 429, json={"error": "busy", "retryAfter": 0.4})
    fake_api.add("GET", path, json={"jobid": JOB, "status": "completed"})
    started = time.monotonic()
    assert run_hook(useapi("flowmusic"), "get_job", JOB).status is JobStatus.COMPLETED
    assert time.monotonic() - started >= 0.4


# ---------------------------------------------------------------------- scheduler family


@pytest.mark.parametrize(("service", "version"), SCHEDULERS)
def test_scheduler_family_reports_untracked(useapi, fake_api, run_hook, service, version) -> None:
    spec = SERVICES[(service, version)]
    path = url(spec.cancel[1].format(id=encode_path_segment("12345")))
    fake_api.add("DELETE", path, 204)
    fake_api.add("DELETE", path, 404, json={"error": "Unable to locate running 12345"})
    result = run_hook(useapi(service, version), "cancel_job", "12345")
    assert result.outcome is CancelOutcome.UNTRACKED
    assert "may still run" in result.message
    assert result.status is not JobStatus.CANCELLED
    finished = run_hook(useapi(service, version), "cancel_job", "12345")
    assert finished.outcome is CancelOutcome.NOT_FOUND
    assert spec.family == SCHEDULER
    assert not spec.stops_the_work


@pytest.mark.parametrize(("service", "version"), [("kling", "v1"), ("tempolor", "v1")])
def test_scheduler_services_without_a_read_say_so(useapi, fake_api, run_hook, service, version):
    with pytest.raises(ConnectionConfigError, match="no documented way to read one job"):
        run_hook(useapi(service, version), "get_job", "12345")
    assert fake_api.calls == []


def test_minimax_video_ids_try_to_stop_the_generation(useapi, fake_api, run_hook) -> None:
    video = "user:1308-minimax:acct-video:998877"
    fake_api.add("POST", url("/v1/minimax/videos/cancel"), 200, json={})
    fake_api.add("GET", url(f"/v1/minimax/videos/{encode_path_segment(video)}"), json={"status": 1})
    result = run_hook(useapi("minimax"), "cancel_job", video)
    assert result.outcome is CancelOutcome.CANCELLING
    assert fake_api.calls[0].body == b'{"videoId": "user:1308-minimax:acct-video:998877"}'
    state = run_hook(useapi("minimax"), "get_job", video)
    assert (state.status, state.raw_status) == (JobStatus.RUNNING, "1")


# ---------------------------------------------------------------------- choosing a service


def test_an_unknown_service_is_refused_before_any_request(useapi, fake_api, run_hook) -> None:
    with pytest.raises(ConnectionConfigError, match="'suno' is not supported") as caught:
        run_hook(useapi("suno"), "cancel_job", JOB)
    assert "flowmusic" in str(caught.value)
    assert "midjourney" in str(caught.value)
    assert fake_api.calls == []


def test_the_hook_parameter_wins_over_the_extra(set_connection, fake_api, run_hook) -> None:
    set_connection("svc", "useapi", password=TOKEN, extra={"service": "kling"})
    path = url(f"/v1/flowmusic/jobs/{encode_path_segment(JOB)}")
    fake_api.add("GET", path, json={"jobid": JOB, "status": "completed"})
    hook = UseApiHook("svc", service="flowmusic", **FAST)
    assert run_hook(hook, "get_job", JOB).status is JobStatus.COMPLETED
    assert UseApiHook("svc").service.name == "kling"


def test_api_version_only_matters_where_a_service_has_two(useapi) -> None:
    # the UI form stores api_version "v2"; a one-version service ignores it
    assert useapi("flowmusic", "v2").service.version == "v1"
    assert useapi("pixverse", "v1").service.family == "discord"
    assert useapi("pixverse", "v2").service.family == "scheduler"
    assert useapi("midjourney").service.version == "v2"


# ---------------------------------------------------------------------- sensors per service


@pytest.mark.parametrize(("service", "version"), SCHEDULERS)
def test_waiting_for_cancelled_on_a_scheduler_service_is_refused_at_parse(service, version):
    from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor

    with pytest.raises(ValueError, match="nothing to wait for"):
        JobCancelledSensor(
            task_id="wait",
            conn_id="useapi_default",
            job_id="12345",
            hook_params={"service": service, "api_version": version},
        )


def test_a_sensor_on_a_jobs_service_waits_normally(useapi, fake_api) -> None:
    from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor
    from airflow_provider_cancel.sensors.status import JobStatusSensor

    JobStatusSensor(  # waiting for completion on a scheduler service is fine
        task_id="done", conn_id="svc", job_id="1", hook_params={"service": "minimax"}
    )
    useapi("flowmusic")
    path = url(f"/v1/flowmusic/jobs/{encode_path_segment(JOB)}")
    fake_api.add(
        "GET", path, json={"jobid": JOB, "status": "failed", "error": {"code": "user_cancelled"}}
    )
    sensor = JobCancelledSensor(
        task_id="wait", conn_id="svc", job_id=JOB, hook_params={"service": "flowmusic", **FAST}
    )
    assert sensor.poke({}) is True


def test_a_scheduler_service_from_the_connection_fails_the_wait_at_run_time(useapi) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor

    useapi("kling")  # the service comes from the connection's extra: known only at run time
    sensor = JobCancelledSensor(task_id="wait", conn_id="svc", job_id="12345")
    with pytest.raises(AirflowFailException, match="nothing to wait for"):
        sensor.poke({})


# ---------------------------------------------------------------------- the catalog, by hand

# Every service's cancel and read as docs/useapi-services.md (the useapi.net pages) writes them,
# typed here by hand: the emulator builds its services from the hook's descriptions, so only a
# table like this one catches a wrong path in a description.
CATALOG: dict[tuple[str, str], tuple[str, str | None]] = {
    ("midjourney", "v2"): ("GET /v2/jobs/cancel/?jobid=12345", "GET /v2/jobs/?jobid=12345"),
    ("midjourney", "v3"): ("DELETE /v3/midjourney/jobs/12345", "GET /v3/midjourney/jobs/12345"),
    ("faceswap", "v1"): (
        "GET /v1/faceswap/jobs/cancel/?jobid=12345",
        "GET /v1/faceswap/jobs/?jobid=12345",
    ),
    ("pixverse", "v1"): (
        "GET /v1/pixverse/jobs/cancel/?jobid=12345",
        "GET /v1/pixverse/jobs/?jobid=12345",
    ),
    ("flowmusic", "v1"): ("DELETE /v1/flowmusic/jobs/12345", "GET /v1/flowmusic/jobs/12345"),
    ("gemini-notebook", "v1"): (
        "DELETE /v1/gemini-notebook/jobs/12345",
        "GET /v1/gemini-notebook/jobs/12345",
    ),
    ("kling", "v1"): ("DELETE /v1/kling/scheduler/12345", None),
    ("minimax", "v1"): ("DELETE /v1/minimax/scheduler/12345", "GET /v1/minimax/videos/12345"),
    ("tempolor", "v1"): ("DELETE /v1/tempolor/scheduler/12345", None),
    # PixVerse v2's video read answers 404 while the video is processing: no read to watch with.
    ("pixverse", "v2"): ("DELETE /v2/pixverse/scheduler/12345", None),
}


def test_the_catalog_table_covers_every_service() -> None:
    assert set(CATALOG) == set(SERVICES)


@pytest.mark.parametrize(("service", "version"), list(CATALOG))
def test_each_service_sends_the_documented_requests(useapi, service, version) -> None:
    cancel, read = CATALOG[(service, version)]
    hook = useapi(service, version)
    sent = hook.cancel_request("12345")
    assert f"{sent.method} {sent.path}" == cancel
    if read is None:
        with pytest.raises(ConnectionConfigError, match="no documented way to read one job"):
            hook.status_request("12345")
    else:
        sent = hook.status_request("12345")
        assert f"{sent.method} {sent.path}" == read
