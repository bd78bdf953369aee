"""Cancel a useapi.net Midjourney job with the id from XCom, then wait until it is cancelled.

Copy this when a DAG starts a paid job and a later step decides to stop it. Needs a ``useapi``
connection named ``useapi_default`` (password = API token).
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
def example_useapi_cancel():
    @task
    def submit() -> str:
        # Any other endpoint of the API is one call away, with auth handled by the hook.
        from airflow_provider_cancel.hooks.useapi import UseApiHook

        job = UseApiHook("useapi_default").request(
            "POST", "/v2/jobs/imagine", json={"prompt": "a lighthouse at dusk, watercolour"}
        )
        return job["jobid"]  # pushed to XCom as return_value

    job_id = submit()

    # ``job_id`` is an XComArg: the operator receives the id submit() returned.
    cancel = CancelJobOperator(task_id="cancel", conn_id="useapi_default", job_id=job_id)

    wait = JobCancelledSensor(
        task_id="wait_cancelled",
        conn_id="useapi_default",
        job_id=job_id,
        poke_interval=1,  # real useapi refreshes job state every ~15 s: poll slower there
        timeout=120,
    )

    cancel >> wait


example_useapi_cancel()
