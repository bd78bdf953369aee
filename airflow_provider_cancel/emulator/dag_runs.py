"""Run a DAG with ``airflow dags test`` against the emulator and read what it left.

``make demo`` (``example_dags/run_demo.py``) and the tests that run DAGs for real
(``tests/dags``, ``tests/reliability/test_secrets.py``, ``tests/airflow2``) all use this: an
Airflow home with a SQLite metadata database, the ``useapi_default`` and ``writetext_default``
connections pointed at a running :class:`~airflow_provider_cancel.emulator.Emulator`, one
``airflow dags test`` per DAG, then the run's rows from the database and the jobs from the
emulator::

    with Emulator() as emulator:
        migrate(home)
        run = run_dag("example_useapi_cancel", home, dags_folder, emulator)
        print(run.run_state, run.task_states, run.jobs)

Standard library only (Airflow runs in the ``airflow`` subprocess), so importing it is cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .facade import Emulator

BIN = Path(sys.executable).parent
RUN_TIMEOUT = 300.0
SETTLE_SECONDS = 10.0
"""How long to wait, after a run, for its jobs to leave WriteText's Cancelling phase."""


@dataclass
class DagRun:
    """What one ``airflow dags test`` left: its output, its database rows, its jobs."""

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
    """Every job this run started, as :meth:`Emulator.job` shows it, read once WriteText's
    Cancelling phase settled."""
    issued_tokens: list[str] = field(default_factory=list)
    """Every WriteText access token the emulator has issued so far."""
    request_paths: list[str] = field(default_factory=list)
    """The raw path of every API request the emulator has received so far."""
    counters: dict[str, Any] = field(default_factory=dict)
    db_dump: str = ""

    def describe(self) -> str:
        """States, job statuses and the output's tail, for assertion messages."""
        tail = "\n".join(self.output.splitlines()[-40:])
        return (
            f"{self.dag_id}: rc={self.returncode} run={self.run_state} tasks={self.task_states}"
            f"\njobs={ {j: v['status'] for j, v in self.jobs.items()} }\n--- output tail ---\n{tail}"
        )


def airflow() -> str:
    """The ``airflow`` script of this interpreter's environment (else the one on ``PATH``)."""
    script = BIN / "airflow"
    return str(script) if script.exists() else "airflow"


def airflow_env(
    home: Path,
    dags_folder: Path,
    emulator: Emulator | None = None,
    *,
    log_level: str = "INFO",
) -> dict[str, str]:
    """This process's environment without its ``AIRFLOW*`` variables, plus an Airflow home, a
    DAGs folder and, with an emulator, the two connections pointed at it (its own secrets)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL=log_level,
    )
    if emulator is not None:
        config = emulator.config
        env["AIRFLOW_CONN_USEAPI_DEFAULT"] = json.dumps(
            {"conn_type": "useapi", "host": emulator.url, "password": config["useapi_token"]}
        )
        env["AIRFLOW_CONN_WRITETEXT_DEFAULT"] = json.dumps(
            {
                "conn_type": "writetext",
                "host": emulator.url,
                "password": config["writetext_api_key"],
            }
        )
    return env


def migrate(home: Path, template: Path | None = None) -> None:
    """Create ``home`` with a migrated metadata database: a copy of ``template``'s when given
    (one ``airflow db migrate`` serves many homes), else ``airflow db migrate`` here."""
    home.mkdir(parents=True, exist_ok=True)
    if template is not None:
        shutil.copy(template / "airflow.db", home / "airflow.db")
        return
    returncode, output = _airflow(["db", "migrate"], home, airflow_env(home, home), RUN_TIMEOUT)
    if returncode != 0:
        raise RuntimeError(f"airflow db migrate failed in {home}:\n{output[-3000:]}")


def run_dag(
    dag_id: str,
    home: Path,
    dags_folder: Path,
    emulator: Emulator,
    *,
    log_level: str = "INFO",
    timeout: float = RUN_TIMEOUT,
) -> DagRun:
    """``airflow dags test dag_id`` in ``home`` (migrated, see :func:`migrate`) against
    ``emulator``; its output is also written to ``home/<dag_id>.log``."""
    before = {job["id"] for job in emulator.jobs()}
    started = time.monotonic()
    env = airflow_env(home, dags_folder, emulator, log_level=log_level)
    returncode, output = _airflow(["dags", "test", dag_id], home, env, timeout)
    run = DagRun(dag_id, returncode, output, time.monotonic() - started, home)
    (home / f"{dag_id}.log").write_text(output)
    run.jobs = settled_jobs(emulator, before, time.monotonic() + SETTLE_SECONDS)
    with emulator.state.lock:
        run.issued_tokens = list(emulator.state.tokens)
    run.request_paths = [entry["raw_path"] for entry in emulator.requests_log]
    run.counters = emulator.counters
    read_db(run)
    return run


def _airflow(args: list[str], home: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """``airflow <args>`` in ``home``: its exit code (-1 when it timed out) and its output."""
    try:
        done = subprocess.run(
            [airflow(), *args],
            env=env,
            cwd=home,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        partial = expired.stdout or b""  # bytes even with text=True (subprocess docs)
        text = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        return -1, f"TIMED OUT after {timeout}s\n{text}"
    return done.returncode, done.stdout


def settled_jobs(
    emulator: Emulator, before: set[str], deadline: float
) -> dict[str, dict[str, Any]]:
    """The jobs not in ``before``, once none is Cancelling (or at ``deadline``)."""
    while True:
        jobs = {job["id"]: job for job in emulator.jobs() if job["id"] not in before}
        if time.monotonic() > deadline or all(
            job["normalized"] != "cancelling" for job in jobs.values()
        ):
            return jobs
        time.sleep(0.1)


def read_db(run: DagRun) -> None:
    """Fill ``run`` from the last run of its DAG in ``run.home``'s database."""
    db = sqlite3.connect(run.home / "airflow.db")
    try:
        row = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
            (run.dag_id,),
        ).fetchone()
        if row is None:
            return
        run_id, run.run_state = row
        where = (run.dag_id, run_id)
        for task_id, state, trigger_id in db.execute(
            "SELECT task_id, state, trigger_id FROM task_instance WHERE dag_id = ? AND run_id = ?",
            where,
        ):
            run.task_states[task_id] = state
            run.trigger_tasks[task_id] = trigger_id
        for task_id, value in db.execute(
            "SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? "
            "AND key = 'return_value'",
            where,
        ):
            run.xcoms[task_id] = json.loads(value) if isinstance(value, str) else value
        for classpath, kwargs in db.execute("SELECT classpath, kwargs FROM trigger ORDER BY id"):
            run.triggers.append((classpath, _unwrapped(json.loads(kwargs))))
        for task_id, event in db.execute(
            "SELECT task_id, event FROM log WHERE dag_id = ? AND run_id = ? "
            "AND task_id IS NOT NULL ORDER BY id",
            where,
        ):
            run.events.setdefault(task_id, []).append(event)
        run.reschedules = _reschedules(db, where)
        for task_id, fields in db.execute(
            "SELECT task_id, rendered_fields FROM rendered_task_instance_fields "
            "WHERE dag_id = ? AND run_id = ?",
            where,
        ):
            run.rendered[task_id] = json.loads(fields) if isinstance(fields, str) else fields
        run.db_dump = "\n".join(db.iterdump())
    finally:
        db.close()


def _unwrapped(value: Any) -> Any:
    """Trigger kwargs as stored: Airflow 3.1 wraps each dict as ``{"__var": ..., "__type":
    "dict"}`` (its serializer's envelope); other versions store them plain."""
    if isinstance(value, dict):
        if set(value) == {"__var", "__type"}:
            return _unwrapped(value["__var"])
        return {key: _unwrapped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrapped(item) for item in value]
    return value


def _reschedules(db: sqlite3.Connection, where: tuple[str, str]) -> dict[str, int]:
    try:  # Airflow 3: task_reschedule rows point at the task instance's id
        rows = db.execute(
            "SELECT ti.task_id, COUNT(*) FROM task_reschedule tr "
            "JOIN task_instance ti ON ti.id = tr.ti_id "
            "WHERE ti.dag_id = ? AND ti.run_id = ? GROUP BY ti.task_id",
            where,
        ).fetchall()
    except sqlite3.OperationalError:  # Airflow 2: they name dag, run and task themselves
        rows = db.execute(
            "SELECT task_id, COUNT(*) FROM task_reschedule WHERE dag_id = ? AND run_id = ? "
            "GROUP BY task_id",
            where,
        ).fetchall()
    return dict(rows)
