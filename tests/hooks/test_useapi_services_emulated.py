"""Every useapi.net service against the emulator, over real HTTP, on the sync and the async path:
cancel a running job, cancel a finished one, read a job, an unknown job (404), another account's
job (403), an expired job (410) and a 429 whose JSON body says when to retry.

``tests/hooks/test_useapi_services.py`` checks the hook against answers scripted from the docs;
here the same calls meet the emulator's model of each family, and the expected values are
written out below, never computed by the code under test.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import pytest

from airflow_provider_cancel.emulator.catalog import SERVICES as EMULATED
from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    ConnectionConfigError,
    JobNotFoundError,
)
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.useapi_services import SERVICES
from airflow_provider_cancel.status import CancelOutcome, JobStatus
from tests.conftest import FAST


class Case(NamedTuple):
    service: str
    version: str
    family: str
    """Its family, or ``minimax`` (a scheduler service whose video ids are stopped)."""
    done: str
    """The raw status of a finished job in the emulator."""


CASES = [
    Case("faceswap", "v1", "discord", "completed"),
    Case("pixverse", "v1", "discord", "completed"),
    Case("flowmusic", "v1", "jobs", "completed"),
    Case("gemini-notebook", "v1", "jobs", "completed"),
    Case("kling", "v1", "scheduler", "completed"),
    Case("minimax", "v1", "minimax", "2"),
    Case("tempolor", "v1", "scheduler", "completed"),
    Case("pixverse", "v2", "scheduler", "completed"),
]
MARKERS = {"flowmusic": "user_cancelled", "gemini-notebook": "cancelled"}
NO_READ = {("kling", "v1"), ("tempolor", "v1"), ("pixverse", "v2")}


def cases(*families: str, readable: bool = False) -> list[Any]:
    return [
        pytest.param(case, id=f"{case.service}-{case.version}")
        for case in CASES
        if (not families or case.family in families)
        and not (readable and (case.service, case.version) in NO_READ)
    ]


@pytest.fixture
def hook(useapi_conn: str) -> Any:
    """``hook(case)``: a hook on one ``useapi_default`` connection to the emulator,
    the service chosen by hook parameter (as ``hook_params`` does)."""

    def make(case: Case) -> UseApiHook:
        return UseApiHook(service=case.service, api_version=case.version, **FAST)

    return make


def calls(emulator: Any) -> list[tuple[str, str]]:
    return [(entry["method"], entry["call"]) for entry in emulator.requests_log]


# ---------------------------------------------------------------------- cancel a running job


@pytest.mark.parametrize("case", cases("discord"))
def test_discord_cancel_of_a_running_job(emulator, hook, run_hook, case) -> None:
    job = emulator.submit_useapi(service=case.service, version=case.version)
    result = run_hook(hook(case), "cancel_job", job)
    assert (result.outcome, result.status) == (CancelOutcome.CANCELLED, JobStatus.CANCELLED)
    assert emulator.job(job)["status"] == "cancelled"
    assert calls(emulator) == [("GET", "cancel")]
    path = emulator.requests_log[0]["raw_path"]
    assert path.startswith(f"/{case.version}/{case.service}/jobs/cancel/?jobid=job%3A")


@pytest.mark.parametrize("case", cases("jobs"))
def test_jobs_cancel_of_a_running_job_reads_the_marker(emulator, hook, run_hook, case) -> None:
    job = emulator.submit_useapi(service=case.service)
    result = run_hook(hook(case), "cancel_job", job)
    assert (result.outcome, result.status) == (CancelOutcome.CANCELLED, JobStatus.CANCELLED)
    seen = emulator.job(job)
    assert (seen["status"], seen["error"]) == ("failed", MARKERS[case.service])
    assert calls(emulator) == [("DELETE", "cancel"), ("GET", "status")]  # 204, then a read
    path = emulator.requests_log[0]["raw_path"]
    assert path.startswith(f"/v1/{case.service}/jobs/job%3A")  # the id is percent-encoded
    assert "%40example.com" in path


@pytest.mark.parametrize("case", cases("scheduler"))
def test_scheduler_cancel_only_stops_the_tracking(emulator, hook, run_hook, case) -> None:
    job = emulator.submit_useapi(service=case.service, version=case.version)
    result = run_hook(hook(case), "cancel_job", job)
    assert result.outcome is CancelOutcome.UNTRACKED
    assert "may still run" in result.message
    seen = emulator.job(job)
    assert seen["tracked"] is False
    assert seen["normalized"] in ("queued", "running")  # the provider keeps generating ...
    emulator.configure(job_duration=0)
    assert emulator.job(job)["status"] == "completed"  # ... and finishes the job
    assert calls(emulator) == [("DELETE", "cancel")]
    assert emulator.requests_log[0]["raw_path"].startswith(
        f"/{case.version}/{case.service}/scheduler/"
    )


def test_the_scheduler_list_drops_an_untracked_job(emulator, hook, run_hook) -> None:
    kept, dropped = (emulator.submit_useapi(service="kling") for _ in range(2))
    assert run_hook(hook(CASES[4]), "cancel_job", dropped).outcome is CancelOutcome.UNTRACKED
    assert run_hook(hook(CASES[4]), "request", "GET", "/v1/kling/scheduler/") == [kept]


def test_minimax_video_cancel_tries_to_stop_the_generation(emulator, hook, run_hook) -> None:
    video = emulator.submit_useapi(service="minimax")
    assert "-video:" in video
    result = run_hook(hook(CASES[5]), "cancel_job", video)
    assert result.outcome is CancelOutcome.CANCELLING
    assert calls(emulator) == [("POST", "cancel"), ("GET", "status")]
    assert emulator.requests_log[0]["raw_path"] == "/v1/minimax/videos/cancel"
    time.sleep(0.3)  # cancel_delay is 0.2 s: the generation stopped, the video reads 3 (failed)
    state = run_hook(hook(CASES[5]), "get_job", video)
    assert (state.status, state.raw_status) == (JobStatus.FAILED, "3")


def test_minimax_scheduler_ids_are_untracked(emulator, hook, run_hook) -> None:
    task = "user:1-minimax:acct-task:42"
    emulator.create_job("minimax", task, "1")
    assert run_hook(hook(CASES[5]), "cancel_job", task).outcome is CancelOutcome.UNTRACKED
    assert emulator.requests_log[0]["raw_path"].startswith("/v1/minimax/scheduler/")
    assert emulator.job(task)["status"] == "1"  # still processing


# ---------------------------------------------------------------------- cancel a finished job

FINISHED = {  # family: (outcome, status, HTTP status of the cancel)
    "discord": (CancelOutcome.ALREADY_FINISHED, JobStatus.COMPLETED, 200),  # with its status
    "jobs": (CancelOutcome.ALREADY_FINISHED, JobStatus.COMPLETED, 204),  # then a read
    "scheduler": (CancelOutcome.NOT_FOUND, JobStatus.UNKNOWN, 404),  # "Unable to locate running"
    "minimax": (CancelOutcome.ALREADY_FINISHED, JobStatus.COMPLETED, 400),  # then a read
}


@pytest.mark.parametrize("case", cases())
def test_cancel_of_a_finished_job_is_never_cancelled(emulator, hook, run_hook, case) -> None:
    job = emulator.submit_useapi(service=case.service, version=case.version)
    emulator.set_status(job, case.done)
    result = run_hook(hook(case), "cancel_job", job)
    assert (result.outcome, result.status, emulator.requests_log[0]["status"]) == FINISHED[
        case.family
    ]
    assert emulator.job(job)["status"] == case.done  # a finished job stays as it was


# ---------------------------------------------------------------------- read a job

RUNNING_RAW = {"discord": "progress", "jobs": "pending", "minimax": "1"}


@pytest.mark.parametrize("case", cases(readable=True))
def test_read_a_job(emulator, hook, run_hook, case) -> None:
    job = emulator.submit_useapi(service=case.service, version=case.version)
    emulator.set_status(job, RUNNING_RAW[case.family])
    state = run_hook(hook(case), "get_job", job)
    assert (state.status, state.raw_status) == (JobStatus.RUNNING, RUNNING_RAW[case.family])
    emulator.set_status(job, case.done)
    assert run_hook(hook(case), "get_job", job).status is JobStatus.COMPLETED
    with pytest.raises(JobNotFoundError):
        run_hook(hook(case), "get_job", f"{job}-unknown")


@pytest.mark.parametrize("case", [c for c in cases() if c.values[0][:2] in NO_READ])
def test_services_without_a_read_say_so(emulator, hook, run_hook, case) -> None:
    with pytest.raises(ConnectionConfigError, match="no documented way to read one job"):
        run_hook(hook(case), "get_job", "100000001")
    assert emulator.counters["requests"] == 0


# ---------------------------------------------------------------------- codes


@pytest.mark.parametrize("case", cases())
def test_cancel_of_an_unknown_job_is_not_found(emulator, hook, run_hook, case) -> None:
    result = run_hook(hook(case), "cancel_job", "job:no-such-job@example.com")
    assert result.outcome is CancelOutcome.NOT_FOUND
    assert emulator.counters["cancel_requests"] == 1


@pytest.mark.parametrize(
    ("code", "error", "says"),
    [
        ("403", AuthenticationError, "belongs to another account"),
        ("410", JobNotFoundError, "expired"),
    ],
)
@pytest.mark.parametrize("case", cases())
def test_403_and_410_are_not_retried(emulator, hook, run_hook, case, code, error, says) -> None:
    job = emulator.submit_useapi(service=case.service, version=case.version)
    emulator.inject(code, call="cancel", count=5)
    with pytest.raises(error, match=says):
        run_hook(hook(case), "cancel_job", job)
    assert emulator.counters["cancel_requests"] == 1
    assert emulator.job(job)["normalized"] in ("queued", "running")


@pytest.mark.parametrize("case", cases(readable=True))
def test_an_expired_read_410(emulator, hook, run_hook, case) -> None:
    job = emulator.submit_useapi(service=case.service, version=case.version)
    emulator.inject("410", call="status", count=5)
    with pytest.raises(JobNotFoundError, match="expired"):
        run_hook(hook(case), "get_job", job)
    assert emulator.counters["status_requests"] == 1


AFTER_429 = {
    "discord": CancelOutcome.CANCELLED,
    "jobs": CancelOutcome.CANCELLED,
    "scheduler": CancelOutcome.UNTRACKED,
    "minimax": CancelOutcome.CANCELLING,
}


@pytest.mark.parametrize("case", cases())
def test_429_with_retry_after_in_the_body_is_honoured(emulator, hook, run_hook, case) -> None:
    job = emulator.submit_useapi(service=case.service, version=case.version)
    emulator.inject("429", call="cancel", retry_after_json=0.4)
    started = time.monotonic()
    result = run_hook(hook(case), "cancel_job", job)
    assert time.monotonic() - started >= 0.4
    assert result.outcome is AFTER_429[case.family]
    assert emulator.counters["cancel_requests"] == 2
    assert emulator.counters["faults_served"] == 1


# ---------------------------------------------------------------------- the hook and the docs


def test_the_hook_knows_every_emulated_service_with_the_documented_calls() -> None:
    """The emulator's catalog is transcribed from useapi.net's pages, not read from the hook:
    each of its services must be one the hook describes with the same calls."""
    assert {(s.name, s.version) for s in EMULATED} == {
        key for key in SERVICES if key[0] != "midjourney"
    }
    for documented in EMULATED:
        described = SERVICES[documented.name, documented.version]
        assert described.family == documented.family, documented.name
        assert described.cancel == documented.cancel, documented.name
        assert described.status == documented.status, documented.name
        assert described.cancelled_marker == documented.cancelled_marker, documented.name
        video = described.video_cancel[1] if described.video_cancel else None
        assert video == documented.video_cancel, documented.name


@pytest.mark.parametrize(
    ("service", "version", "raw", "expected"),
    [(s.name, s.version, raw, expected) for s in EMULATED for raw, expected in s.statuses.items()],
)
def test_every_documented_status_reads_as_the_docs_say(
    emulator, hook, run_hook, service, version, raw, expected
) -> None:
    case = next(c for c in CASES if (c.service, c.version) == (service, version))
    job = emulator.submit_useapi(service=service, version=version)
    emulator.set_status(job, raw)
    state = run_hook(hook(case), "get_job", job)
    assert state.status is JobStatus(expected)
    assert state.raw_status == raw
