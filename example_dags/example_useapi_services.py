"""Cancel jobs of three useapi.net services, one of each family, through one connection.

One API token drives every useapi.net service, so one ``useapi`` connection (``useapi_default``)
serves them all: each task names its service with ``hook_params={"service": ...}``. What a cancel
stops depends on the service's family (docs/useapi-services.md):

* InsightFaceSwap (``faceswap``, Discord era): the job is cancelled;
* FlowMusic (jobs family): the job is cancelled; it then reads ``failed`` with the error code
  ``user_cancelled``, which the provider reads as ``cancelled``;
* Kling (scheduler family): useapi.net only stops *tracking* the task, Kling keeps generating
  (and billing). The outcome is ``untracked``: the task does not fail, its log and report say
  the job may still run, and there is nothing to wait for.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_provider_cancel.operators.cancel import CancelJobOperator
from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor

SERVICES = ("faceswap", "flowmusic", "kling")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "airflow-provider-cancel", "useapi"],
)
def example_useapi_services():
    @task
    def submit(service: str) -> str:
        # A real DAG starts the job with the service's own call (Kling: POST
        # /v1/kling/videos/text2video, ...); the emulator hands out a running job of any service.
        from airflow_provider_cancel.hooks.useapi import UseApiHook

        job = UseApiHook("useapi_default", service=service).request(
            "POST", "/_emulator/jobs", json={"api": service}
        )
        return job["id"]

    jobs = {service: submit.override(task_id=f"submit_{service}")(service) for service in SERVICES}
    cancels = {
        service: CancelJobOperator(
            task_id=f"cancel_{service}",
            conn_id="useapi_default",
            job_id=job_id,
            hook_params={"service": service},  # the one connection, this service
        )
        for service, job_id in jobs.items()
    }

    # FlowMusic's cancel is confirmed by reading the job; wait for it like any other API.
    wait = JobCancelledSensor(
        task_id="wait_flowmusic_cancelled",
        conn_id="useapi_default",
        job_id=jobs["flowmusic"],
        hook_params={"service": "flowmusic"},
        poke_interval=1,
        timeout=120,
    )
    cancels["flowmusic"] >> wait


example_useapi_services()
