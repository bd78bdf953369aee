"""E2E (CeleryExecutor) only: one CancelJobOperator cancels every job id given in the run's conf.

``tests/e2e/run_e2e_celery.py`` (``worker-killed``) triggers it with 500 running useapi.net jobs,
slows the emulator down so the bulk cancel takes tens of seconds, and ``kill -9``s the Celery
worker that runs ``cancel_all`` half-way. Airflow must notice the missing heartbeat, fail the try
and retry it (``retries=1``) on the other worker; the retry's report must read ``cancelled`` or
``already_finished`` for every id.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from airflow_provider_cancel.operators.cancel import CancelJobOperator


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["e2e", "airflow-provider-cancel", "celery"],
)
def e2e_celery_bulk_cancel():
    @task
    def job_ids(**context) -> list[str]:
        return list(context["dag_run"].conf["job_ids"])

    CancelJobOperator(
        task_id="cancel_all",
        conn_id="useapi_default",
        job_id=job_ids(),
        max_concurrency=4,
        retries=1,
        retry_delay=timedelta(seconds=2),
    )


e2e_celery_bulk_cancel()
