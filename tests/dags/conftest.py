"""Run DAGs for real: ``airflow dags test`` on an embedded SQLite Airflow against in-process
emulators, once per session, and keep what each run left behind for the tests to check.

``airflow db migrate`` runs once; each DAG then gets a copy of that database (its own
``AIRFLOW_HOME``) and its own emulator, so the runs can go in parallel and every job and every
issued token can be attributed to one DAG. States are read from the run's SQLite database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cancel.emulator import Emulator
from airflow_provider_cancel.emulator.dag_runs import DagRun, migrate, run_dag

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
TEST_DAGS = Path(__file__).resolve().parent / "dags"

EMULATOR_DEFAULTS: dict[str, Any] = {"start_delay": 0.2, "cancel_delay": 0.5}
DAGS: dict[str, tuple[Path, dict[str, Any]]] = {
    # dag_id: (dags folder, emulator settings on top of EMULATOR_DEFAULTS)
    "example_useapi_cancel": (EXAMPLE_DAGS, {}),
    # Cancelling lasts 15 s, longer than a task start on a slow machine (which can take more
    # than 2 s), so the deferrable sensor's check before deferring cannot find the requests
    # already Cancelled: it must defer.
    "example_writetext_bulk_cancel": (EXAMPLE_DAGS, {"cancel_delay": 15.0}),
    "example_cancel_on_failure": (EXAMPLE_DAGS, {}),
    "example_cleanup_on_failure": (EXAMPLE_DAGS, {}),
    # Jobs run 5 minutes: the poking sensor's 15 s timeout cancels them.
    "example_cancel_on_kill": (EXAMPLE_DAGS, {"job_duration": 300.0}),
    # One useapi connection, three services: faceswap, flowmusic cancelled; kling untracked.
    "example_useapi_services": (EXAMPLE_DAGS, {}),
    # WriteText requests stay "Cancelling" for 30 s, longer than a task start on a loaded
    # machine (10-20 s seen): the reschedule-mode sensor must reschedule (its timeout: 300 s).
    "provider_test_reschedule": (TEST_DAGS, {"cancel_delay": 30.0}),
    # Jobs complete after 30 s: the deferred sensor's trigger sees one complete, and the cancel
    # task (two task starts later, which take seconds each on a slow machine) finds the other
    # still running.
    "provider_test_failures": (TEST_DAGS, {"job_duration": 30.0}),
    # Mapped upstreams of three: cancel_on_failure at task and DAG level cancels all six.
    "provider_test_mapped_failure": (TEST_DAGS, {}),
    # An upstream that pushed nothing: the cancel step and the sensor name it.
    "provider_test_missing_xcom": (TEST_DAGS, {}),
}


def _run_one(dag_id: str, template: Path, base: Path) -> DagRun:
    dags_folder, settings = DAGS[dag_id]
    home = base / dag_id
    migrate(home, template)
    with Emulator(**{**EMULATOR_DEFAULTS, **settings}) as emulator:
        return run_dag(dag_id, home, dags_folder, emulator)


@pytest.fixture(scope="session")
def dag_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DagRun]]:
    """Every DAG of ``DAGS`` run once with ``airflow dags test``; dag_id -> result."""
    base = tmp_path_factory.mktemp("airflow")
    template = base / "_template"
    migrate(template)
    workers = max(2, min(len(DAGS), os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        futures = {dag_id: pool.submit(_run_one, dag_id, template, base) for dag_id in DAGS}
        yield {dag_id: future.result() for dag_id, future in futures.items()}
