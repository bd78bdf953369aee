"""A bulk cancel where some jobs fail permanently: the task cancels every other job, fails
naming exactly the ids that were not cancelled and why, and a second run cancels what is left.

The emulator's faults apply to every request of a call, not to one job, so the per-id failures
are served by ``responses`` in front of the emulator: requests for the failing ids get the
fault, every other request passes through to the emulator.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
import responses
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_cancel.operators.cancel import CancelJobOperator

from .conftest import CONNS, FAST
from .test_bad_input import context

RUNNING = {"useapi_v2": "started", "useapi_v3": "started", "writetext": "Running"}
DONE = {"useapi_v2": "completed", "useapi_v3": "completed", "writetext": "Completed"}
CANCEL = {
    "useapi_v2": ("GET", r"/v2/jobs/cancel/\?jobid={}$"),
    "useapi_v3": ("DELETE", r"/v3/midjourney/jobs/{}$"),
    "writetext": ("POST", r"/text/Generate/Bulk/{}/cancel$"),
}
# A permanent refusal that is not retried, and a 500 that outlasts every retry.
REFUSAL = {"useapi_v2": 596, "useapi_v3": 596, "writetext": 402}
REFUSAL_SAYS = {596: "pending moderation", 402: "no active subscription"}

GOOD = ["ok:1", "ok:2", "ok:3", "ok:4"]
REFUSED, BROKEN, GONE, DONE_ID = "refused:1", "broken:1", "gone:1", "done:1"


def run(api: str, ids: list[str]) -> tuple[dict[str, Any] | None, str | None, dict[str, Any]]:
    """Execute the operator; (report, failure message, pushed XCom)."""
    ctx = context("cancel_batch")
    operator = CancelJobOperator(
        task_id="cancel_batch", conn_id=CONNS[api], job_id=ids, max_concurrency=4, hook_params=FAST
    )
    try:
        return operator.execute(ctx), None, ctx["ti"].pushed
    except AirflowException as error:
        return None, str(error), ctx["ti"].pushed


@pytest.mark.parametrize("api", ["useapi_v2", "useapi_v3", "writetext"])
def test_partial_failure_names_the_failed_ids_and_a_rerun_cancels_what_is_left(
    api: str, fresh_emu: Any
) -> None:
    for job_id in [*GOOD, REFUSED, BROKEN]:
        fresh_emu.create_job(api, job_id, RUNNING[api])
    fresh_emu.create_job(api, DONE_ID, DONE[api])
    ids = [*GOOD[:2], REFUSED, GONE, BROKEN, DONE_ID, *GOOD[2:]]
    method, pattern = CANCEL[api]
    refusal = REFUSAL[api]

    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add_passthru(re.compile(r"http://127\.0\.0\.1:\d+/"))
        mock.add(
            method,
            re.compile(".*" + pattern.format(re.escape(quote(REFUSED, safe="")))),
            json={"error": REFUSAL_SAYS[refusal]},
            status=refusal,
        )
        mock.add(
            method,
            re.compile(".*" + pattern.format(re.escape(quote(BROKEN, safe="")))),
            json={"error": "Internal server error"},
            status=500,
        )
        report, failure, pushed = run(api, ids)

    # The task failed, naming exactly the three ids that were not cancelled, and why.
    assert report is None
    assert failure is not None
    assert "3 of 8 job(s) were not cancelled" in failure, failure
    for job_id in (REFUSED, BROKEN, GONE):
        assert repr(job_id) in failure
    for job_id in [*GOOD, DONE_ID]:
        assert repr(job_id) not in failure
    assert f"HTTP {refusal}" in failure
    assert REFUSAL_SAYS[refusal] in failure
    assert "server error after 2 retries" in failure
    assert "HTTP 500" in failure
    assert "not_found" in failure

    # The report still went to XCom: one entry per id, outcome per job.
    first = pushed["return_value"]
    assert list(first) == ids
    assert {first[j]["outcome"] for j in GOOD} <= {"cancelled", "cancelling"}
    assert first[REFUSED]["outcome"] == "error"
    assert first[BROKEN]["outcome"] == "error"
    assert first[GONE]["outcome"] == "not_found"
    assert first[DONE_ID]["outcome"] == "already_finished"
    assert first[DONE_ID]["status"] == "completed"

    # Every other job was cancelled; the refused and broken ones were not touched.
    for job_id in GOOD:
        assert fresh_emu.job(job_id)["normalized"] in ("cancelled", "cancelling")
    for job_id in (REFUSED, BROKEN):
        assert fresh_emu.job(job_id)["normalized"] == "running"
        assert fresh_emu.job(job_id)["cancel_calls"] == 0
    assert fresh_emu.job(DONE_ID)["normalized"] == "completed"

    # Run again once the API is healthy: what was left is cancelled now; what was cancelled
    # reads already_finished (or cancelled); only the missing job still fails the task.
    cancels_before = {j: fresh_emu.job(j)["cancel_calls"] for j in [*GOOD, REFUSED, BROKEN]}
    report, failure, pushed = run(api, ids)
    assert failure is not None
    assert "1 of 8 job(s) were not cancelled" in failure
    assert repr(GONE) in failure
    second = pushed["return_value"]
    for job_id in (REFUSED, BROKEN):
        assert second[job_id]["outcome"] in ("cancelled", "cancelling")
        assert fresh_emu.job(job_id)["normalized"] in ("cancelled", "cancelling")
        assert fresh_emu.job(job_id)["cancel_calls"] == 1
    for job_id in GOOD:
        assert second[job_id]["outcome"] in ("already_finished", "cancelled", "cancelling")
        assert second[job_id]["outcome"] != "error"
        assert fresh_emu.job(job_id)["cancel_calls"] == cancels_before[job_id] + 1
    assert second[DONE_ID]["outcome"] == "already_finished"
    assert second[GONE]["outcome"] == "not_found"

    # ... and with fail_on_not_found=False the rerun succeeds.
    operator = CancelJobOperator(
        task_id="cancel_batch",
        conn_id=CONNS[api],
        job_id=ids,
        fail_on_not_found=False,
        hook_params=FAST,
    )
    third = operator.execute(context("cancel_batch"))
    assert third[GONE]["outcome"] == "not_found"
    assert {third[j]["outcome"] for j in [*GOOD, REFUSED, BROKEN, DONE_ID]} <= {
        "already_finished",
        "cancelled",
        "cancelling",
    }


@pytest.mark.parametrize("api", ["useapi_v2", "writetext"])
def test_a_job_that_completed_is_never_reported_cancelled(api: str, fresh_emu: Any) -> None:
    fresh_emu.create_job(api, DONE_ID, DONE[api])
    fresh_emu.create_job(api, "failed:1", "failed" if api != "writetext" else "Failed")
    report, failure, _ = run(api, [DONE_ID, "failed:1"])
    assert failure is None
    assert report is not None
    assert report[DONE_ID]["outcome"] == "already_finished"
    assert report[DONE_ID]["status"] == "completed"
    assert report["failed:1"]["outcome"] == "already_finished"
    assert report["failed:1"]["status"] == "failed"
