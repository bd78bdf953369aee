"""What every DAG run must end as: shared by the e2e driver and the Airflow 2.11 DAG tests."""

from __future__ import annotations

from example_dags.run_demo import (  # the demo's expectations, shared
    EXPECTED_DEMO_TASKS,
    EXPECTED_RUN_STATE,
    SERVICES,
    expected_end,
    job_end,
)

RESTART_DAG = "e2e_triggerer_restart"

# Final state of every task, per DAG.
EXPECTED_TASKS: dict[str, dict[str, str]] = {
    **EXPECTED_DEMO_TASKS,
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
