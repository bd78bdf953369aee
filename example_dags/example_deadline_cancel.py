"""Cancel a run's paid jobs when the run misses its deadline (Airflow >= 3.1).

Copy this when a job is only worth its price if the whole run finishes in time. The DAG's
``DeadlineAlert`` fires 30 seconds after the run was queued; its callback, made by
``cancel_on_deadline``, runs in the triggerer and cancels the jobs that ``submit`` and every
map index of the mapped ``submit_variants`` of *that run* pushed to XCom. ``JobStatusSensor``
then sees the job cancelled instead of completed and fails the run: a missed deadline is a
failure.

Deadlines are checked by the scheduler, so ``airflow dags test`` (``make demo``) cannot show
this one; ``make e2e`` runs it on a real deployment. Needs a ``useapi`` connection named
``useapi_default`` (password = API token).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from airflow_provider_cancel.callbacks import cancel_on_deadline
from airflow_provider_cancel.sensors.status import JobStatusSensor


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "airflow-provider-cancel", "useapi"],
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=30),
        callback=cancel_on_deadline("useapi_default", xcom_task_ids=["submit", "submit_variants"]),
    ),
)
def example_deadline_cancel():
    def imagine(prompt: str) -> str:
        from airflow_provider_cancel.hooks.useapi import UseApiHook

        job = UseApiHook("useapi_default").request(
            "POST", "/v2/jobs/imagine", json={"prompt": prompt}
        )
        return job["jobid"]

    @task
    def submit() -> str:
        return imagine("a night train, gouache")

    @task
    def submit_variants(style: str) -> str:  # mapped: one job per style, each index's id
        return imagine(f"a night train, {style}")

    submit_variants.expand(style=["ink", "pastel", "woodcut"])

    JobStatusSensor(
        task_id="wait_done",
        conn_id="useapi_default",
        job_id=submit(),
        deferrable=True,
        poke_interval=2,
        timeout=600,
        retries=0,
    )


example_deadline_cancel()
