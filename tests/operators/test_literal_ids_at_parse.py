"""A ``job_id`` written literally that can only be a mistake fails the DAG file's import.

Each case is a real DAG file loaded by Airflow's own ``DagBag`` (what the DAG processor
runs), so the UI would show the import error before any run. Templated values (Jinja,
``XComArg``) are not known at parse time: those DAGs load, and are checked when the task runs
(tests/reliability/test_bad_input.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cancel._compat import AIRFLOW_V_3_0_PLUS

CLASSES = {
    "operator": "airflow_provider_cancel.operators.cancel.CancelJobOperator",
    "sensor": "airflow_provider_cancel.sensors.cancelled.JobCancelledSensor",
}
DAG_FILE = """
import pendulum
{dag_import}
from {module} import {name}

with DAG("{dag_id}", start_date=pendulum.datetime(2025, 1, 1), schedule=None):
    submit = PythonOperator(task_id="submit", python_callable=lambda: ["job-1", "job-2"])
    {name}(task_id="{task_id}", conn_id="useapi_default", job_id={job_id})
"""
DAG_IMPORT = (
    "from airflow.sdk import DAG\n"
    "from airflow.providers.standard.operators.python import PythonOperator"
    if AIRFLOW_V_3_0_PLUS
    else "from airflow import DAG\nfrom airflow.operators.python import PythonOperator"
)


def load(folder: Path, kind: str, job_id_source: str) -> Any:
    from airflow.models import DagBag

    module, _, name = CLASSES[kind].rpartition(".")
    (folder / f"dag_{kind}.py").write_text(
        DAG_FILE.format(
            dag_import=DAG_IMPORT,
            module=module,
            name=name,
            dag_id=f"literal_{kind}",
            task_id=f"cancel_by_{kind}",
            job_id=job_id_source,
        )
    )
    extra = {} if AIRFLOW_V_3_0_PLUS else {"include_examples": False}
    return DagBag(dag_folder=str(folder), **extra)


@pytest.mark.parametrize("kind", sorted(CLASSES))
@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("None", "None"),
        ('""', "''"),
        ("[]", "[]"),
        ('"   "', "'   '"),
        ('["job-1", None]', "['job-1', None]"),
        ('"None"', "'None'"),
    ],
)
def test_a_literal_bad_id_is_a_dag_import_error(
    tmp_path: Path, kind: str, source: str, shown: str
) -> None:
    bag = load(tmp_path, kind, source)

    assert f"literal_{kind}" not in bag.dag_ids
    (error,) = bag.import_errors.values()
    assert f"Task 'cancel_by_{kind}': invalid job_id {shown}:" in error


@pytest.mark.parametrize("kind", sorted(CLASSES))
@pytest.mark.parametrize(
    "source",
    [
        "\"{{ ti.xcom_pull(task_ids='submit') }}\"",
        "submit.output",
        '["job-0", "{{ ti.xcom_pull(task_ids=\'submit\') }}"]',
        '["job-1", "job-2", "job-1"]',
        '"job:20241218021941022-user:1308-channel:1316-bot:midjourney"',
    ],
)
def test_templated_and_good_ids_load(tmp_path: Path, kind: str, source: str) -> None:
    bag = load(tmp_path, kind, source)

    assert bag.import_errors == {}
    assert f"literal_{kind}" in bag.dag_ids
