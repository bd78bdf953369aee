"""Cancel a list of WriteText.ai requests in one task, then wait for them deferrably.

Copy this to stop a bulk text-generation batch. Needs a ``writetext`` connection named
``writetext_default`` (password = API key).
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
    tags=["example", "airflow-provider-cancel", "writetext"],
)
def example_writetext_bulk_cancel():
    @task
    def submit() -> list[str]:
        from airflow_provider_cancel.hooks.writetext import WriteTextHook

        hook = WriteTextHook("writetext_default")
        return [
            hook.request("POST", "/text/Generate", json={"type": "Product", "recordId": n})[
                "requestId"
            ]
            for n in range(3)
        ]

    # A Jinja template renders to a string such as "['id-1', 'id-2']"; the operator reads the
    # list back, so templated ids work as well as XComArgs.
    cancel = CancelJobOperator(
        task_id="cancel_all",
        conn_id="writetext_default",
        job_id="{{ ti.xcom_pull(task_ids='submit') }}",
        max_concurrency=8,
    )

    # Deferrable: the wait runs in the triggerer and frees the worker slot. WriteText passes
    # through "Cancelling" before "Cancelled".
    wait = JobCancelledSensor(
        task_id="wait_cancelled",
        conn_id="writetext_default",
        job_id="{{ ti.xcom_pull(task_ids='submit') }}",
        deferrable=True,
        poke_interval=1,
        timeout=120,
    )

    submit() >> cancel >> wait


example_writetext_bulk_cancel()
