"""Run DAGs for real: ``airflow dags test`` on an embedded SQLite Airflow against in-process
emulators, once per session, and keep what each run left behind for the tests to check.

``airflow db migrate`` runs once; each DAG then gets a copy of that database (its own
``AIRFLOW_HOME``) and its own emulator, so the runs can go in parallel and every job and every
issued token can be attributed to one DAG. States are read from the run's SQLite database.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cancel.emulator import Emulator

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
TEST_DAGS = Path(__file__).resolve().parent / "dags"
BIN = Path(sys.executable).parent
USEAPI_TOKEN = "emulator-useapi-token"
WRITETEXT_KEY = "emulator-writetext-key"
RUN_TIMEOUT = 300

EMULATOR_DEFAULTS: dict[str, Any] = {"start_delay": 0.2, "cancel_delay": 0.5}
DAGS: dict[str, tuple[Path, dict[str, Any]]] = {
    # dag_id: (dags folder, emulator settings on top of EMULATOR_DEFAULTS)
    "example_useapi_cancel": (EXAMPLE_DAGS, {}),
    # Cancelling lasts 2 s, so the deferrable sensor's check before deferring cannot find the
    # requests already Cancelled on a slow machine: it must defer.
    "example_writetext_bulk_cancel": (EXAMPLE_DAGS, {"cancel_delay": 2.0}),
    "example_cancel_on_failure": (EXAMPLE_DAGS, {}),
    "example_cleanup_on_failure": (EXAMPLE_DAGS, {}),
    # Jobs run 5 minutes: the poking sensor's 15 s timeout cancels them.
    "example_cancel_on_kill": (EXAMPLE_DAGS, {"job_duration": 300.0}),
    # One useapi connection, three services: faceswap, flowmusic cancelled; kling untracked.
    "example_useapi_services": (EXAMPLE_DAGS, {}),
    # WriteText requests stay "Cancelling" for 3 s: the reschedule-mode sensor must reschedule.
    "provider_test_reschedule": (TEST_DAGS, {"cancel_delay": 3.0}),
    # Jobs complete after 5 s: the deferred sensor's trigger sees one complete.
    "provider_test_failures": (TEST_DAGS, {"job_duration": 5.0}),
}


@dataclass
class DagRunResult:
    """What one ``airflow dags test`` left: its output, its database rows, its emulator."""

    dag_id: str
    returncode: int
    output: str
    seconds: float
    home: Path
    run_state: str | None = None
    task_states: dict[str, str] = field(default_factory=dict)
    xcoms: dict[str, Any] = field(default_factory=dict)
    """task_id -> return_value XCom (decoded)."""
    triggers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(classpath, kwargs) of every trigger row."""
    trigger_tasks: dict[str, int | None] = field(default_factory=dict)
    """task_id -> trigger_id recorded on the task instance."""
    events: dict[str, list[str]] = field(default_factory=dict)
    """task_id -> state events of the audit log, in order."""
    reschedules: dict[str, int] = field(default_factory=dict)
    rendered: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every job of this DAG's emulator, read after WriteText's Cancelling phase settled."""
    issued_tokens: list[str] = field(default_factory=list)
    db_dump: str = ""

    def describe(self) -> str:
        tail = "\n".join(self.output.splitlines()[-40:])
        return (
            f"{self.dag_id}: rc={self.returncode} run={self.run_state} tasks={self.task_states}"
            f"\njobs={ {j: v['status'] for j, v in self.jobs.items()} }\n--- output tail ---\n{tail}"
        )


def airflow_env(home: Path, dags_folder: Path, emulator_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    )
    if emulator_url is not None:
        env["AIRFLOW_CONN_USEAPI_DEFAULT"] = json.dumps(
            {"conn_type": "useapi", "host": emulator_url, "password": USEAPI_TOKEN}
        )
        env["AIRFLOW_CONN_WRITETEXT_DEFAULT"] = json.dumps(
            {"conn_type": "writetext", "host": emulator_url, "password": WRITETEXT_KEY}
        )
    return env


def _airflow() -> str:
    script = BIN / "airflow"
    return str(script) if script.exists() else "airflow"


def _read_db(result: DagRunResult) -> None:
    db = sqlite3.connect(result.home / "airflow.db")
    try:
        row = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
            (result.dag_id,),
        ).fetchone()
        if row is None:
            return
        run_id, result.run_state = row
        where = (result.dag_id, run_id)
        for task_id, state, trigger_id in db.execute(
            "SELECT task_id, state, trigger_id FROM task_instance WHERE dag_id = ? AND run_id = ?",
            where,
        ):
            result.task_states[task_id] = state
            result.trigger_tasks[task_id] = trigger_id
        for task_id, value in db.execute(
            "SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? "
            "AND key = 'return_value'",
            where,
        ):
            result.xcoms[task_id] = json.loads(value) if isinstance(value, str) else value
        for classpath, kwargs in db.execute("SELECT classpath, kwargs FROM trigger ORDER BY id"):
            result.triggers.append((classpath, json.loads(kwargs)))
        for task_id, event in db.execute(
            "SELECT task_id, event FROM log WHERE dag_id = ? AND run_id = ? "
            "AND task_id IS NOT NULL ORDER BY id",
            where,
        ):
            result.events.setdefault(task_id, []).append(event)
        for task_id, count in db.execute(
            "SELECT ti.task_id, COUNT(*) FROM task_reschedule tr "
            "JOIN task_instance ti ON ti.id = tr.ti_id "
            "WHERE ti.dag_id = ? AND ti.run_id = ? GROUP BY ti.task_id",
            where,
        ):
            result.reschedules[task_id] = count
        for task_id, fields in db.execute(
            "SELECT task_id, rendered_fields FROM rendered_task_instance_fields "
            "WHERE dag_id = ? AND run_id = ?",
            where,
        ):
            result.rendered[task_id] = json.loads(fields) if isinstance(fields, str) else fields
        result.db_dump = "\n".join(db.iterdump())
    finally:
        db.close()


def _settled_jobs(emulator: Emulator, deadline: float) -> dict[str, dict[str, Any]]:
    while True:
        jobs = {job["id"]: job for job in emulator.jobs()}
        if time.monotonic() > deadline or all(
            job["normalized"] != "cancelling" for job in jobs.values()
        ):
            return jobs
        time.sleep(0.1)


def _run_one(dag_id: str, template_db: Path, base: Path) -> DagRunResult:
    dags_folder, settings = DAGS[dag_id]
    home = base / dag_id
    home.mkdir()
    shutil.copy(template_db, home / "airflow.db")
    with Emulator(**{**EMULATOR_DEFAULTS, **settings}) as emulator:
        env = airflow_env(home, dags_folder, emulator.url)
        started = time.monotonic()
        try:
            done = subprocess.run(
                [_airflow(), "dags", "test", dag_id],
                env=env,
                cwd=home,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=RUN_TIMEOUT,
            )
            returncode, output = done.returncode, done.stdout
        except subprocess.TimeoutExpired as expired:
            returncode = -1
            partial = expired.stdout or b""  # bytes even with text=True (subprocess docs)
            text = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
            output = f"TIMED OUT after {RUN_TIMEOUT}s\n{text}"
        result = DagRunResult(dag_id, returncode, output, time.monotonic() - started, home)
        result.jobs = _settled_jobs(emulator, time.monotonic() + 5)
        with emulator.state.lock:
            result.issued_tokens = list(emulator.state.tokens)
    (home / "dags_test.log").write_text(output)
    _read_db(result)
    return result


@pytest.fixture(scope="session")
def dag_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DagRunResult]]:
    """Every DAG of ``DAGS`` run once with ``airflow dags test``; dag_id -> result."""
    base = tmp_path_factory.mktemp("airflow")
    template = base / "_template"
    template.mkdir()
    migrate = subprocess.run(
        [_airflow(), "db", "migrate"],
        env=airflow_env(template, EXAMPLE_DAGS, None),
        cwd=template,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert migrate.returncode == 0, migrate.stdout[-3000:]
    workers = max(2, min(len(DAGS), os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        futures = {
            dag_id: pool.submit(_run_one, dag_id, template / "airflow.db", base) for dag_id in DAGS
        }
        yield {dag_id: future.result() for dag_id, future in futures.items()}
