"""What every DAG run must end as: shared by the e2e driver and the Airflow 2.11 DAG tests."""

from __future__ import annotations

from example_dags.run_demo import (  # the demo's expectations, shared
    EXPECTED_RUN_STATE,
    expected_end,
    job_end,
)

RESTART_DAG = "e2e_triggerer_restart"
SERVICES = ("faceswap", "flowmusic", "kling")
"""The useapi.net services ``example_useapi_services`` cancels jobs of."""

# Final state of every task, per DAG.
EXPECTED_TASKS: dict[str, dict[str, str]] = {
    "example_useapi_cancel": {
        "submit": "success",
        "cancel": "success",
        "wait_cancelled": "success",
    },
    "example_writetext_bulk_cancel": {
        "submit": "success",
        "cancel_all": "success",
        "wait_cancelled": "success",
    },
    "example_cancel_on_failure": {
        "submit_images": "success",
        "submit_texts": "success",
        "publish": "failed",  # on purpose: its callbacks cancel what the submit tasks started
    },
    "example_cleanup_on_failure": {
        "submit": "success",
        "check_budget": "failed",  # on purpose: the one_failed cleanup cancels the jobs
        "cancel_submitted": "success",
        "confirm_cancelled": "success",
    },
    # on purpose: the sensor's timeout cancels the job, soft_fail skips the task
    "example_cancel_on_kill": {"submit": "success", "wait_done": "skipped"},
    "example_useapi_services": {
        **{f"{step}_{service}": "success" for step in ("submit", "cancel") for service in SERVICES},
        "wait_flowmusic_cancelled": "success",
    },
    RESTART_DAG: {"submit": "success", "cancel": "success", "wait_cancelled": "success"},
}

# The tasks whose ``return_value`` XCom holds the ids of the jobs each DAG submitted.
SUBMIT_TASKS: dict[str, list[str]] = {
    "example_useapi_cancel": ["submit"],
    "example_writetext_bulk_cancel": ["submit"],
    "example_cancel_on_failure": ["submit_images", "submit_texts"],
    "example_cleanup_on_failure": ["submit"],
    "example_cancel_on_kill": ["submit"],
    "example_useapi_services": [f"submit_{service}" for service in SERVICES],
    RESTART_DAG: ["submit"],
}

EXPECTED_RUN: dict[str, str] = {**EXPECTED_RUN_STATE, RESTART_DAG: "success"}

__all__ = [
    "EXPECTED_RUN",
    "EXPECTED_RUN_STATE",
    "EXPECTED_TASKS",
    "RESTART_DAG",
    "SUBMIT_TASKS",
    "expected_end",
    "job_end",
]
