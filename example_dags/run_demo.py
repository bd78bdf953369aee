"""Run every example DAG against the bundled emulator on an embedded SQLite Airflow.

``make demo`` runs this. It starts the emulator, points the ``useapi_default`` and
``writetext_default`` connections at it, runs each DAG with ``airflow dags test`` in an Airflow
home inside the repo (``.airflow/``, git-ignored), prints per DAG the jobs it started with their
final emulator status and what it ended as, and the task states, and stops the emulator, also
on failure (``airflow_provider_cancel.emulator.dag_runs`` does the running and reading; the tests
use it too). Exit status 0 only if every job ended as its DAG intends (cancelled, unless
:data:`EXPECTED_JOB_END` says otherwise) and every run ended as the example intends.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_provider_cancel.emulator import Emulator
from airflow_provider_cancel.emulator.dag_runs import migrate, run_dag

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "example_dags"
HOME = REPO / ".airflow"

EXPECTED_RUN_STATE = {
    "example_useapi_cancel": "success",
    "example_writetext_bulk_cancel": "success",
    "example_cancel_on_failure": "failed",  # fails on purpose; its callbacks cancel the jobs
    "example_cleanup_on_failure": "success",
    # Its sensor's timeout cancels the job; soft_fail skips the task, so the run succeeds.
    "example_cancel_on_kill": "success",
    "example_useapi_services": "success",
}

SERVICES = ("faceswap", "flowmusic", "kling")
"""The useapi.net services ``example_useapi_services`` cancels jobs of."""

# Final state of every task, per DAG.
EXPECTED_DEMO_TASKS: dict[str, dict[str, str]] = {
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
}

# What a DAG's jobs must end as, by the emulator's job key (its ``api``); any other job: cancelled.
EXPECTED_JOB_END: dict[str, dict[str, str]] = {
    # Kling's cancel only stops useapi's tracking: the job goes on upstream.
    "example_useapi_services": {"kling": "untracked"},
}


def job_end(job: Mapping[str, Any]) -> str:
    """What an emulator job ended as: ``untracked`` where a useapi.net scheduler service stopped
    tracking it (the provider may still be generating it), else its normalised status."""
    return "untracked" if job.get("tracked") is False else str(job["normalized"])


def expected_end(dag_id: str, job: Mapping[str, Any]) -> str:
    """What ``dag_id`` means ``job`` to end as."""
    return EXPECTED_JOB_END.get(dag_id, {}).get(str(job["api"]), "cancelled")


# Shown by ``make e2e`` only: what they react to needs a real deployment.
NOT_IN_DEMO = {
    "example_deadline_cancel": "deadlines are checked by the scheduler, which "
    "`airflow dags test` does not run",
}


def main() -> int:
    shutil.rmtree(HOME, ignore_errors=True)
    failures: list[str] = []
    with Emulator(start_delay=0.2, cancel_delay=1.0) as emulator:
        print(f"Emulator at {emulator.url}; Airflow home {HOME}")
        migrate(HOME)
        for dag_id, expected in EXPECTED_RUN_STATE.items():
            run = run_dag(dag_id, HOME, DAGS, emulator)
            log = (HOME / f"{dag_id}.log").relative_to(REPO)
            print(f"\n== {dag_id}: run {run.run_state} (expected {expected}); log {log}")
            print("   tasks: " + ", ".join(f"{t}={s}" for t, s in sorted(run.task_states.items())))
            print(f"   {'job id':<84} {'api':<11} {'final status':<24} ended as (expected)")
            for job_id, job in run.jobs.items():
                final = f"{job['status']} ({job['normalized']})"
                ended, wanted = job_end(job), expected_end(dag_id, job)
                print(f"   {job_id:<84} {job['api']:<11} {final:<24} {ended} ({wanted})")
                if ended != wanted:
                    failures.append(f"{dag_id}: job {job_id} ended {ended}, expected {wanted}")
            if not run.jobs:
                failures.append(f"{dag_id}: started no job")
            if run.run_state != expected:
                failures.append(f"{dag_id}: run ended {run.run_state}, expected {expected}")
            if run.task_states != EXPECTED_DEMO_TASKS[dag_id]:
                failures.append(
                    f"{dag_id}: tasks {run.task_states}, expected {EXPECTED_DEMO_TASKS[dag_id]}"
                )
            if run.returncode != (0 if expected == "success" else 1):  # -1: it timed out
                failures.append(f"{dag_id}: `airflow dags test` exited {run.returncode}")
    for dag_id, why in NOT_IN_DEMO.items():
        print(f"\n== {dag_id}: not run here ({why}); `make e2e` runs it")
    if failures:
        print("\nDEMO FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(
        "\nEvery job ended as its example DAG intends: cancelled, or untracked where useapi.net "
        "only stops tracking (the job may still run upstream)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
