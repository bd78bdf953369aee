"""E2E (CeleryExecutor) only: one deferred JobCancelledSensor per job id given in the run's conf.

``tests/e2e/run_e2e_celery.py`` triggers it with ``{"job_ids": [...]}`` (WriteText requests it
created in the emulator and holds in ``Cancelling``), for ``triggers-spread`` (500 ids) and
``triggerer-killed`` (a few dozen). Each mapped sensor checks once on a Celery worker, then defers
to a triggerer; the driver flips the requests to ``Cancelled`` through the emulator's control
endpoint and every sensor must succeed. Nothing in this DAG cancels anything.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor

POLL_INTERVAL = 10  # seconds; triggers-spread's bar is "every sensor fires within this + 10 s"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=64,
    tags=["e2e", "airflow-provider-cancel", "celery"],
)
def e2e_celery_deferred():
    @task
    def job_ids(**context) -> list[str]:
        return list(context["dag_run"].conf["job_ids"])

    JobCancelledSensor.partial(
        task_id="wait_cancelled",
        conn_id="writetext_default",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=3600,
        retries=0,
    ).expand(job_id=job_ids())


e2e_celery_deferred()
