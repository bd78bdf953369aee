"""E2E only: a deferred JobCancelledSensor that must survive a triggerer restart.

``tests/e2e/run_e2e.py`` runs this DAG on a real Airflow deployment. ``submit`` starts one
WriteText request and ``cancel`` cancels it (the emulator's ``cancel_calls`` becomes 1); the
driver has set the emulator's cancel delay to an hour, so the request stays ``Cancelling`` and
``wait_cancelled`` defers. The driver then stops the triggerer, starts a new one, waits until
the new triggerer owns the trigger and flips the request to Cancelling and then Cancelled
through the emulator's control endpoint. The sensor must succeed and nothing may cancel the
request a second time.
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
    tags=["e2e", "airflow-provider-cancel"],
)
def e2e_triggerer_restart():
    @task
    def submit() -> str:
        from airflow_provider_cancel.hooks.writetext import WriteTextHook

        hook = WriteTextHook("writetext_default")
        return hook.request("POST", "/text/Generate", json={"name": "e2e triggerer restart"})[
            "requestId"
        ]

    job_id = submit()
    cancel = CancelJobOperator(task_id="cancel", conn_id="writetext_default", job_id=job_id)
    wait = JobCancelledSensor(
        task_id="wait_cancelled",
        conn_id="writetext_default",
        job_id=job_id,
        deferrable=True,
        poke_interval=1,
        timeout=600,
        retries=0,
    )
    cancel >> wait


e2e_triggerer_restart()
