"""The normalised status model and the table of docs/statuses.md at the pure-function level."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cancel.answers import decide_after_read
from airflow_provider_cancel.hooks import useapi, writetext
from airflow_provider_cancel.status import (
    TERMINAL_STATUSES,
    CancelOutcome,
    CancelResult,
    JobState,
    JobStatus,
    map_raw_status,
)

Q, R, CG, CD, DONE, F, U = (
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.CANCELLING,
    JobStatus.CANCELLED,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.UNKNOWN,
)

# (raw status, error text, normalised) — every row of docs/statuses.md's table with case variants and junk.
USEAPI_COMMON = [
    ("created", None, Q),
    ("CREATED", None, Q),
    ("Created", None, Q),
    ("started", None, R),
    ("Started", None, R),
    ("progress", None, R),
    ("PROGRESS", None, R),
    ("completed", None, DONE),
    ("Completed", None, DONE),
    ("failed", None, F),
    ("FAILED", None, F),
    ("failed", "Midjourney said no", F),
    ("moderated", None, F),
    ("Moderated", None, F),
    ("completed", "Job cancelled by user", DONE),  # only `failed` + that error is cancelled
    ("cancelling", None, U),
    ("queued", None, U),
    ("running", None, U),
    ("done", None, U),
    ("", None, U),
    ("   ", None, U),
    ("created!", None, U),
]
USEAPI_V2_ROWS = [
    *USEAPI_COMMON,
    ("cancelled", None, CD),
    ("Cancelled", None, CD),
    ("CANCELLED", None, CD),
    ("failed", "Job cancelled by user", F),  # v2 has a real cancelled status
]
USEAPI_V3_ROWS = [
    *USEAPI_COMMON,
    ("failed", "Job cancelled by user", CD),
    ("failed", "job cancelled by user", CD),
    ("FAILED", "JOB CANCELLED BY USER", CD),
    ("Failed", "Job Cancelled By User", CD),
    ("cancelled", None, U),  # not a v3 status: anything else is unknown
    ("moderated", "Job cancelled by user", F),
]
WRITETEXT_ROWS = [
    ("Pending", Q),
    ("pending", Q),
    ("PENDING", Q),
    ("Running", R),
    ("running", R),
    ("RUNNING", R),
    ("Cancelling", CG),
    ("cancelling", CG),
    ("CANCELLING", CG),
    ("Cancelled", CD),
    ("cancelled", CD),
    ("CANCELLED", CD),
    ("Completed", DONE),
    ("completed", DONE),
    ("TimedOut", F),
    ("timedout", F),
    ("TIMEDOUT", F),
    ("Failed", F),
    ("failed", F),
    ("Queued", U),
    ("Paused", U),
    ("Canceled", U),
    ("", U),
    ("Done", U),
]


def test_job_status_values_and_terminal_set():
    assert [s.value for s in JobStatus] == [
        "queued",
        "running",
        "cancelling",
        "cancelled",
        "completed",
        "failed",
        "unknown",
    ]
    assert {CD, DONE, F} == TERMINAL_STATUSES
    assert [s for s in JobStatus if s.is_terminal] == [CD, DONE, F]
    assert not U.is_terminal  # unknown never counts as finished, let alone success
    assert str(CD) == "cancelled"
    assert JobStatus("cancelled") is CD
    assert CD == "cancelled"  # str enum: usable in success_statuses=("cancelled",)


def test_cancel_outcome_values():
    assert {o.value for o in CancelOutcome} == {
        "cancelled",
        "cancelling",
        "already_finished",
        "not_found",
        "error",
        "untracked",
    }
    assert str(CancelOutcome.NOT_FOUND) == "not_found"


def test_job_state_to_dict_is_json_and_drops_body():
    state = JobState("j:1", CD, "cancelled", body={"huge": "x" * 1000}, message="m")
    assert state.to_dict() == {"status": "cancelled", "raw_status": "cancelled", "message": "m"}
    json.dumps(state.to_dict())


def test_cancel_result_to_report_and_from_state():
    state = JobState("j:1", DONE, "completed", body={})
    result = CancelResult.from_state(state, CancelOutcome.ALREADY_FINISHED, "done before")
    assert result == CancelResult(
        "j:1", CancelOutcome.ALREADY_FINISHED, DONE, "completed", "done before"
    )
    report = result.to_report()
    assert report == {
        "outcome": "already_finished",
        "status": "completed",
        "raw_status": "completed",
        "message": "done before",
    }
    assert json.loads(json.dumps(report)) == report
    assert CancelResult("x", CancelOutcome.ERROR).to_report()["status"] == "unknown"


@pytest.mark.parametrize("raw", [None, 1, 1.5, True, ["created"], {"status": "created"}])
def test_map_raw_status_non_strings_are_unknown(raw):
    assert map_raw_status(raw, useapi.V2_STATUSES) is U


@pytest.mark.parametrize(("raw", "error", "expected"), USEAPI_V2_ROWS)
def test_useapi_v2_table(raw, error, expected):
    body = {"jobid": "j:1", "status": raw, **({"error": error} if error else {})}
    state = useapi.job_state("j:1", body, "v2")
    assert state.status is expected
    assert state.raw_status == raw  # the raw status is always kept beside it
    assert state.job_id == "j:1"
    assert state.body == body


@pytest.mark.parametrize(("raw", "error", "expected"), USEAPI_V3_ROWS)
def test_useapi_v3_table(raw, error, expected):
    body = {"jobid": "j:1", "status": raw, **({"error": error} if error else {})}
    state = useapi.job_state("j:1", body, "v3")
    assert state.status is expected
    assert state.raw_status == raw
    if error:
        assert state.message == error


@pytest.mark.parametrize("version", ["v2", "v3"])
@pytest.mark.parametrize(
    "body", [None, [], "completed", {}, {"status": None}, {"status": 3}, {"state": "completed"}]
)
def test_useapi_bodies_without_a_status_are_unknown(version, body):
    state = useapi.job_state("j", body, version)
    assert state.status is U
    assert state.raw_status is None


@pytest.mark.parametrize(("raw", "expected"), WRITETEXT_ROWS)
def test_writetext_table(raw, expected):
    body = {"id": "r-1", "status": raw, "total": 1}
    state = writetext.job_state("r-1", body)
    assert state.status is expected
    assert state.raw_status == raw
    assert state.body == body


@pytest.mark.parametrize("body", [None, [], "Running", {}, {"status": None}, {"Status": 1}])
def test_writetext_bodies_without_a_status_are_unknown(body):
    state = writetext.job_state("r-1", body)
    assert state.status is U
    assert state.raw_status is None


# ---------------------------------------------------------------------- decide_after_read


def _state(status: JobStatus, raw: str) -> JobState:
    return JobState("j", status, raw)


@pytest.mark.parametrize(
    ("status", "accepted", "outcome"),
    [
        (CD, True, CancelOutcome.CANCELLED),
        (CD, False, CancelOutcome.ALREADY_FINISHED),
        (DONE, True, CancelOutcome.ALREADY_FINISHED),
        (DONE, False, CancelOutcome.ALREADY_FINISHED),
        (F, False, CancelOutcome.ALREADY_FINISHED),
        (CG, False, CancelOutcome.CANCELLING),
        (CG, True, CancelOutcome.CANCELLING),
        (R, True, CancelOutcome.CANCELLING),
        (R, False, CancelOutcome.ERROR),
        (Q, False, CancelOutcome.ERROR),
        (U, False, CancelOutcome.ERROR),
    ],
)
def test_decide_after_read(status, accepted, outcome):
    result = decide_after_read(
        _state(status, status.value), cancel_accepted=accepted, cancel_answer="HTTP 400: no"
    )
    assert result.outcome is outcome
    assert result.status is status
    assert result.raw_status == status.value
    if outcome is CancelOutcome.ERROR:
        assert "HTTP 400: no" in result.message
    # never a success for a job that was not stopped
    if status in (DONE, F):
        assert result.outcome is not CancelOutcome.CANCELLED


def test_the_message_about_many_failed_jobs_names_a_few_and_the_count() -> None:
    from airflow_provider_cancel.status import JobState, JobStatus, assess

    states = {f"job-{n}": JobState(f"job-{n}", JobStatus.FAILED, "failed") for n in range(100_000)}

    message = assess(states, frozenset({JobStatus.COMPLETED})).message

    assert message.startswith("100000 job(s) will never reach a success status: 'job-0'")
    assert message.endswith("; and 99995 more")
    assert len(message) < 1000
