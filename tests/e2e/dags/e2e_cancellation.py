"""E2E only: DAGs whose waiting ``JobStatusSensor`` the driver stops in every way Airflow can.

``tests/e2e/run_e2e.py`` triggers each through the REST API and then, while the sensor waits on
a useapi job that runs for 5 minutes in the emulator: marks the deferred task failed, clears the
poking task, marks the DAG run failed, lets ``execution_timeout`` end a deferral, or stops and
restarts the triggerer; and, between two pokes of a ``mode="reschedule"`` sensor, marks the task
or its run failed, clears it, or lets its job complete. ``example_deadline_cancel`` (in ``example_dags``) covers deadlines.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from airflow_provider_cancel.sensors.status import JobStatusSensor


def submit_job() -> str:
    from airflow_provider_cancel.hooks.useapi import UseApiHook

    return str(
        UseApiHook("useapi_default").request("POST", "/v2/jobs/imagine", json={"prompt": "e2e"})[
            "jobid"
        ]
    )


def waiting_dag(dag_id: str, **sensor: object) -> None:
    @dag(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["e2e", "airflow-provider-cancel"],
    )
    def build() -> None:
        @task
        def submit() -> str:
            return submit_job()

        JobStatusSensor(
            task_id="wait_done",
            conn_id="useapi_default",
            job_id=submit(),
            retries=0,
            **sensor,  # type: ignore[arg-type]
        )

    build()


# A realistic poll interval for a paid job: the scenario's bound is poll interval + 5 s.
waiting_dag("e2e_kill_deferred", deferrable=True, poke_interval=5, timeout=900)
waiting_dag("e2e_clear_poking", deferrable=False, mode="poke", poke_interval=2, timeout=900)
waiting_dag("e2e_run_failed", deferrable=True, poke_interval=2, timeout=900)
waiting_dag(
    "e2e_exec_timeout",
    deferrable=True,
    poke_interval=2,
    timeout=900,
    execution_timeout=timedelta(seconds=20),
)
waiting_dag("e2e_restart_no_cancel", deferrable=True, poke_interval=2, timeout=900)
# Reschedule mode: 20 s between pokes, so the driver acts while no process of the task runs.
for dag_id in (
    "e2e_mark_failed_rescheduled",
    "e2e_run_failed_rescheduled",
    "e2e_mark_failed_resched_poking",
    "e2e_clear_rescheduled",
    "e2e_rescheduled_succeeds",
):
    waiting_dag(dag_id, deferrable=False, mode="reschedule", poke_interval=20, timeout=900)
