"""Wait for a paid job to finish, and cancel it whenever Airflow stops the wait.

Copy this when a DAG starts a job and waits for its result. ``JobStatusSensor`` cancels the job
it watches when the wait is stopped: the task marked failed or success or cleared in the UI,
the DAG run marked failed, the worker stopped (``cancel_on_kill``), or ``timeout`` /
``execution_timeout`` reached (``cancel_on_timeout``). Both default to ``True``; see
``docs/cancellation.md`` for what each Airflow version allows.

Against the emulator (``make demo``) the job runs for 5 minutes, longer than the sensor's
``timeout``: the timeout cancels the job, and ``soft_fail`` skips the task instead of failing
the run. Needs a ``useapi`` connection named ``useapi_default`` (password = API token).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_provider_cancel.sensors.status import JobStatusSensor


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "airflow-provider-cancel", "useapi"],
)
def example_cancel_on_kill():
    @task
    def submit() -> str:
        from airflow_provider_cancel.hooks.useapi import UseApiHook

        job = UseApiHook("useapi_default").request(
            "POST", "/v2/jobs/imagine", json={"prompt": "a harbour in fog, ink wash"}
        )
        return job["jobid"]

    JobStatusSensor(
        task_id="wait_done",
        conn_id="useapi_default",
        job_id=submit(),
        success_statuses=("completed",),
        # Poke mode: a kill cancels from on_kill on every Airflow version; deferrable=True
        # cancels from the triggerer on Airflow >= 3.3 (`airflow dags test` runs a trigger
        # inline and ignores its timeout, so this demo pokes).
        deferrable=False,
        poke_interval=2,
        timeout=15,  # the emulator's job takes 5 minutes: this timeout cancels it
        soft_fail=True,  # a timed-out wait skips the task instead of failing the run
        cancel_on_kill=True,
        cancel_on_timeout=True,
    )


example_cancel_on_kill()
