"""Cancel what upstream tasks started when a task, or the whole run, fails.

``cancel_on_failure`` returns an ``on_failure_callback``. It is best effort: it logs and never
raises, so the failure you see stays the original one. This DAG fails on purpose.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_provider_cancel.callbacks import cancel_on_failure


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "airflow-provider-cancel"],
    # DAG level: when the run fails, cancel the WriteText requests that submit_texts started.
    on_failure_callback=cancel_on_failure("writetext_default", xcom_task_ids="submit_texts"),
)
def example_cancel_on_failure():
    @task
    def submit_images() -> list[str]:
        from airflow_provider_cancel.hooks.useapi import UseApiHook

        hook = UseApiHook("useapi_default")
        return [
            hook.request("POST", "/v2/jobs/imagine", json={"prompt": p})["jobid"]
            for p in ("a red fox", "a blue whale")
        ]

    @task
    def submit_texts() -> str:
        from airflow_provider_cancel.hooks.writetext import WriteTextHook

        hook = WriteTextHook("writetext_default")
        return hook.request("POST", "/text/Generate", json={"type": "Product"})["requestId"]

    # Task level: if this task fails, cancel the jobs submit_images pushed to XCom.
    @task(
        on_failure_callback=cancel_on_failure("useapi_default", xcom_task_ids="submit_images"),
    )
    def publish(images: list[str], text: str) -> None:
        raise RuntimeError("the downstream system rejected the batch")

    publish(submit_images(), submit_texts())


example_cancel_on_failure()
