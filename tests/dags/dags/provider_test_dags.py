"""DAGs the DAG-level tests run with ``airflow dags test`` (besides the example DAGs).

They cover what the examples do not: a sensor in ``reschedule`` mode, an int id arriving
through an ``XComArg``, a cancel task that fails on a missing job (its report still in XCom),
and a deferred sensor whose trigger reports a job that completed (with ``soft_fail``, so the
task ends skipped), ``cancel_on_failure`` at task and DAG level on mapped upstreams of
three, and ids from an upstream that pushed nothing. The tests point the ``useapi_default`` and
``writetext_default`` connections at an in-process emulator; tasks reach the emulator's
control endpoints through the connection's host.
"""

from __future__ import annotations

import json
import urllib.request

import pendulum
from airflow.sdk import dag, task

from airflow_provider_cancel.callbacks import cancel_on_failure
from airflow_provider_cancel.operators.cancel import CancelJobOperator
from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
NUMERIC_JOB_ID = 424242


def _emulator_url() -> str:
    from airflow.providers.common.compat.sdk import BaseHook

    return str(BaseHook.get_connection("useapi_default").host).rstrip("/")


@dag(schedule=None, start_date=START, catchup=False, tags=["test"])
def provider_test_reschedule():
    @task
    def submit_numeric() -> int:
        """Create a useapi v2 job whose id is all digits and return it as an int."""
        request = urllib.request.Request(
            f"{_emulator_url()}/_emulator/jobs",
            data=json.dumps({"api": "useapi_v2", "job_id": str(NUMERIC_JOB_ID)}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["id"] == str(NUMERIC_JOB_ID)
        return NUMERIC_JOB_ID

    @task
    def submit_texts() -> list[str]:
        from airflow_provider_cancel.hooks.writetext import WriteTextHook

        hook = WriteTextHook("writetext_default")
        return [hook.request("POST", "/text/Generate", json={})["requestId"] for _ in range(2)]

    numeric = submit_numeric()
    # An XComArg carrying an int: the operator converts it to the string id.
    cancel_numeric = CancelJobOperator(
        task_id="cancel_numeric", conn_id="useapi_default", job_id=numeric
    )
    wait_numeric = JobCancelledSensor(
        task_id="wait_numeric",
        conn_id="useapi_default",
        job_id=numeric,
        poke_interval=0.2,
        timeout=60,
        deferrable=False,
    )
    cancel_texts = CancelJobOperator(
        task_id="cancel_texts",
        conn_id="writetext_default",
        job_id="{{ ti.xcom_pull(task_ids='submit_texts') }}",
    )
    # The emulator keeps these requests "Cancelling" for a few seconds, so the first poke
    # cannot succeed and the sensor must give its slot back at least once.
    wait_texts = JobCancelledSensor(
        task_id="wait_texts",
        conn_id="writetext_default",
        job_id="{{ ti.xcom_pull(task_ids='submit_texts') }}",
        mode="reschedule",
        poke_interval=1,
        timeout=300,
        deferrable=False,
        # Airflow >= 3.3: records its jobs in the task state store at each reschedule.
        cancel_on_kill=True,
    )
    cancel_numeric >> wait_numeric
    submit_texts() >> cancel_texts >> wait_texts


@dag(schedule=None, start_date=START, catchup=False, tags=["test"])
def provider_test_failures():
    @task
    def submit_other() -> str:
        from airflow_provider_cancel.hooks.useapi import UseApiHook

        return UseApiHook("useapi_default").request(
            "POST", "/v2/jobs/imagine", json={"prompt": "cancelled at once"}
        )["jobid"]

    # One job is cancelled, one does not exist: the task fails naming only the missing one,
    # and its report is still in XCom.
    cancel_mixed = CancelJobOperator(
        task_id="cancel_mixed",
        conn_id="useapi_default",
        job_id=["{{ ti.xcom_pull(task_ids='submit_other') }}", "job:does-not-exist"],
    )

    @task(trigger_rule="all_done")
    def submit() -> str:
        from airflow_provider_cancel.hooks.useapi import UseApiHook

        return UseApiHook("useapi_default").request(
            "POST", "/v2/jobs/imagine", json={"prompt": "left running"}
        )["jobid"]

    # Nobody cancels this job: it completes while the trigger polls, the trigger reports
    # "failed", and soft_fail turns that into a skip.
    submitted = submit()
    wait = JobCancelledSensor(
        task_id="wait_cancelled",
        conn_id="useapi_default",
        job_id=submitted,
        deferrable=True,
        soft_fail=True,
        poke_interval=0.5,
        timeout=120,
    )
    submit_other() >> cancel_mixed >> submitted >> wait


@dag(
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["test"],
    # DAG level: every map index's request, in the process `airflow dags test` runs it in.
    on_failure_callback=cancel_on_failure("writetext_default", xcom_task_ids="submit_text"),
)
def provider_test_mapped_failure():
    @task
    def submit_text(n: int) -> str:
        from airflow_provider_cancel.hooks.writetext import WriteTextHook

        return WriteTextHook("writetext_default").request("POST", "/text/Generate", json={})[
            "requestId"
        ]

    @task
    def submit_images(n: int) -> list[str]:
        from airflow_provider_cancel.hooks.useapi import UseApiHook

        hook = UseApiHook("useapi_default")
        return [hook.request("POST", "/v2/jobs/imagine", json={"prompt": f"{n}"})["jobid"]]

    # Task level: each of the three map indexes pushed a list of ids.
    @task(on_failure_callback=cancel_on_failure("useapi_default", xcom_task_ids="submit_images"))
    def publish(images: list[list[str]], texts: list[str]) -> None:
        raise RuntimeError("publishing failed on purpose")

    publish(submit_images.expand(n=[1, 2, 3]), submit_text.expand(n=[1, 2, 3]))


@dag(schedule=None, start_date=START, catchup=False, tags=["test"])
def provider_test_missing_xcom():
    @task
    def submit_nothing() -> None:
        """An upstream that pushes no id (it returns None)."""

    nothing = submit_nothing()
    # Both fail, naming the upstream task: an XComArg, and a Jinja xcom_pull.
    nothing >> [
        CancelJobOperator(task_id="cancel_xcomarg", conn_id="useapi_default", job_id=nothing),
        JobCancelledSensor(
            task_id="wait_jinja",
            conn_id="useapi_default",
            job_id="{{ ti.xcom_pull(task_ids='submit_nothing') }}",
            timeout=30,
        ),
    ]


provider_test_reschedule()
provider_test_failures()
provider_test_mapped_failure()
provider_test_missing_xcom()
