"""The example DAGs on Airflow 2.11 (``make test-airflow2``), with ``airflow dags test``.

The example DAGs import ``dag`` and ``task`` from ``airflow.sdk``, which Airflow 2 does not
have. Here each example is copied into a temporary DAGs folder with that one import rewritten
to ``airflow.decorators`` (the Airflow 2 home of the same decorators); everything else - the
provider's operator, sensor (deferrable too), trigger and callbacks - runs unchanged. Each DAG
runs with ``airflow dags test`` against the emulator on a SQLite metadata DB, and must end as
the demo and the e2e test expect: run state, every task's state, every job it started
cancelled.

On Airflow 3 these tests are skipped: ``tests/dags`` runs the example DAGs there as they are.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cancel._compat import AIRFLOW_V_3_0_PLUS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from expectations import EXPECTED_RUN_STATE, EXPECTED_TASKS, expected_end, job_end

pytestmark = pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS,
    reason="Airflow 2 only: on Airflow 3, tests/dags runs the example DAGs as they are",
)

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
BIN = Path(sys.executable).parent
SDK_IMPORT = re.compile(r"^from airflow\.sdk import (.+)$", re.M)


def airflow2_source(text: str) -> str:
    """The DAG file with its ``airflow.sdk`` imports moved to their Airflow 2 module."""
    rewritten = SDK_IMPORT.sub(r"from airflow.decorators import \1", text)
    names = {n.strip() for m in SDK_IMPORT.finditer(text) for n in m.group(1).split(",")}
    unknown = names - {"dag", "task"}
    assert not unknown, f"no Airflow 2 home known for airflow.sdk names {unknown}"
    return rewritten


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from airflow_provider_cancel.emulator import Emulator

    root = tmp_path_factory.mktemp("airflow2")
    home, dags = root / "home", root / "dags"
    home.mkdir()
    dags.mkdir()
    for source in sorted(EXAMPLE_DAGS.glob("example_*.py")):
        (dags / source.name).write_text(airflow2_source(source.read_text()))

    with Emulator(start_delay=0.2, cancel_delay=0.5) as emulator:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW_CONN_USEAPI_DEFAULT=json.dumps(
                {"conn_type": "useapi", "host": emulator.url, "password": "emulator-useapi-token"}
            ),
            AIRFLOW_CONN_WRITETEXT_DEFAULT=json.dumps(
                {
                    "conn_type": "writetext",
                    "host": emulator.url,
                    "password": "emulator-writetext-key",
                }
            ),
        )
        migrate = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

        results: dict[str, Any] = {}
        for dag_id in EXPECTED_RUN_STATE:
            before = {job["id"] for job in emulator.jobs()}
            done = subprocess.run(
                [str(BIN / "airflow"), "dags", "test", dag_id],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            with sqlite3.connect(home / "airflow.db") as db:
                row = db.execute(
                    "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                    (dag_id,),
                ).fetchone()
                run_id, state = row if row else (None, None)
                tasks = dict(
                    db.execute(
                        "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                        (dag_id, run_id),
                    ).fetchall()
                )
            new = [job_id for job_id in (j["id"] for j in emulator.jobs()) if job_id not in before]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                jobs = {job_id: emulator.job(job_id) for job_id in new}
                if all(job_end(job) == expected_end(dag_id, job) for job in jobs.values()):
                    break
                time.sleep(0.2)
            results[dag_id] = {
                "state": state,
                "tasks": tasks,
                "jobs": {job_id: emulator.job(job_id) for job_id in new},
                "output": done.stdout[-6000:] + done.stderr[-6000:],
            }
        yield results


def test_the_rewrite_touches_only_the_sdk_import() -> None:
    for source in EXAMPLE_DAGS.glob("example_*.py"):
        before, after = source.read_text(), airflow2_source(source.read_text())
        changed = [
            (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
        ]
        assert changed == [
            ("from airflow.sdk import dag, task", "from airflow.decorators import dag, task")
        ], (source.name, changed)


@pytest.mark.parametrize("dag_id", list(EXPECTED_RUN_STATE))
def test_example_dag_on_airflow2(runs: dict[str, Any], dag_id: str) -> None:
    run = runs[dag_id]
    where = f"{dag_id} on Airflow 2:\n{run['output']}"
    assert run["state"] == EXPECTED_RUN_STATE[dag_id], where
    assert run["tasks"] == EXPECTED_TASKS[dag_id], where
    assert run["jobs"], f"{dag_id} started no job\n{where}"
    unexpected = {
        i: job_end(j) for i, j in run["jobs"].items() if job_end(j) != expected_end(dag_id, j)
    }
    assert not unexpected, f"jobs that did not end as intended: {unexpected}\n{where}"
    assert all(job["cancel_calls"] >= 1 for job in run["jobs"].values()), run["jobs"]
