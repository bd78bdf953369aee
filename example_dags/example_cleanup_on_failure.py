"""A cleanup task that runs only when an upstream task failed, and cancels what it started.

Unlike a callback, the cleanup is a normal task: it has retries, logs and a state in the UI.
The cleanup task succeeds, so the run does too; the failed task stays visible.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_provider_cancel.operators.cancel import CancelJobOperator
from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "airflow-provider-cancel", "useapi"],
)
def example_cleanup_on_failure():
    @task
    def submit() -> list[str]:
        from airflow_provider_cancel.hooks.useapi import UseApiHook

        hook = UseApiHook("useapi_default")
        return [
            hook.request("POST", "/v2/jobs/imagine", json={"prompt": f"tile {n}"})["jobid"]
            for n in range(4)
        ]

    job_ids = submit()

    @task
    def check_budget(job_ids: list[str]) -> None:
        raise RuntimeError(f"budget exceeded after submitting {len(job_ids)} jobs")

    # trigger_rule="one_failed": runs only if an upstream task failed.
    cleanup = CancelJobOperator(
        task_id="cancel_submitted",
        conn_id="useapi_default",
        job_id=job_ids,
        trigger_rule="one_failed",
    )
    confirm = JobCancelledSensor(
        task_id="confirm_cancelled",
        conn_id="useapi_default",
        job_id=job_ids,
        poke_interval=1,
        timeout=120,
    )

    check_budget(job_ids) >> cleanup >> confirm


example_cleanup_on_failure()
