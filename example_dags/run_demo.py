"""Run every example DAG against the bundled emulator on an embedded SQLite Airflow.

``make demo`` runs this. It starts the emulator, points the ``useapi_default`` and
``writetext_default`` connections at it, runs each DAG with ``airflow dags test`` in an Airflow
home inside the repo (``.airflow/``, git-ignored), prints per DAG the jobs it started with their
final emulator status and what it ended as, and the task states, and stops the emulator, also
on failure. Exit status 0 only if every job ended as its DAG intends (cancelled, unless
:data:`EXPECTED_JOB_END` says otherwise) and every run ended as the example intends.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "example_dags"
HOME = REPO / ".airflow"

EXPECTED_RUN_STATE = {
    "example_useapi_cancel": "success",
    "example_writetext_bulk_cancel": "success",
    "example_cancel_on_failure": "failed",  # fails on purpose; its callbacks cancel the jobs
    "example_cleanup_on_failure": "success",
    # Its sensor's timeout cancels the job; soft_fail skips the task, so the run succeeds.
    "example_cancel_on_kill": "success",
    "example_useapi_services": "success",
}

# What a DAG's jobs must end as, by the emulator's job key (its ``api``); any other job: cancelled.
EXPECTED_JOB_END: dict[str, dict[str, str]] = {
    # Kling's cancel only stops useapi's tracking: the job goes on upstream.
    "example_useapi_services": {"kling": "untracked"},
}


def job_end(job: Mapping[str, Any]) -> str:
    """What an emulator job ended as: ``untracked`` where a useapi.net scheduler service stopped
    tracking it (the provider may still be generating it), else its normalised status."""
    return "untracked" if job.get("tracked") is False else str(job["normalized"])


def expected_end(dag_id: str, job: Mapping[str, Any]) -> str:
    """What ``dag_id`` means ``job`` to end as."""
    return EXPECTED_JOB_END.get(dag_id, {}).get(str(job["api"]), "cancelled")


# Shown by ``make e2e`` only: what they react to needs a real deployment.
NOT_IN_DEMO = {
    "example_deadline_cancel": "deadlines are checked by the scheduler, which "
    "`airflow dags test` does not run",
}


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_cancel.emulator",
            "--port",
            "0",
            "--cancel-delay",
            "1",
            "--start-delay",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "emulator listening on http://127.0.0.1:PORT (region ...)"
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return process, line.split("listening on ", 1)[1].split()[0]


def emulator_jobs(url: str) -> dict[str, dict[str, object]]:
    with urllib.request.urlopen(f"{url}/_emulator/jobs", timeout=10) as answer:
        return {job["id"]: job for job in json.load(answer)}


def airflow_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        AIRFLOW_CONN_USEAPI_DEFAULT=json.dumps(
            {"conn_type": "useapi", "host": url, "password": "emulator-useapi-token"}
        ),
        AIRFLOW_CONN_WRITETEXT_DEFAULT=json.dumps(
            {"conn_type": "writetext", "host": url, "password": "emulator-writetext-key"}
        ),
    )
    return env


def run_states(dag_id: str) -> tuple[str, dict[str, str]]:
    with sqlite3.connect(HOME / "airflow.db") as db:
        run_id, state = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
            (dag_id,),
        ).fetchone()
        tasks = db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        ).fetchall()
    return state, dict(sorted(tasks))


def settled(url: str, ids: list[str], deadline: float) -> dict[str, dict[str, object]]:
    """Jobs read after WriteText's Cancelling phase has had time to end."""
    while True:
        jobs = emulator_jobs(url)
        if time.monotonic() > deadline or all(jobs[i]["normalized"] != "cancelling" for i in ids):
            return {i: jobs[i] for i in ids}
        time.sleep(0.2)


def main() -> int:
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir()
    emulator, url = start_emulator()
    failures: list[str] = []
    try:
        env = airflow_env(url)
        print(f"Emulator at {url}; Airflow home {HOME}")
        subprocess.run(
            ["airflow", "db", "migrate"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for dag_id, expected in EXPECTED_RUN_STATE.items():
            before = set(emulator_jobs(url))
            log = HOME / f"{dag_id}.log"
            with log.open("w") as out:
                subprocess.run(
                    ["airflow", "dags", "test", dag_id],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            state, tasks = run_states(dag_id)
            new = [i for i in emulator_jobs(url) if i not in before]
            jobs = settled(url, new, time.monotonic() + 5)
            print(f"\n== {dag_id}: run {state} (expected {expected}); log {log.relative_to(REPO)}")
            print("   tasks: " + ", ".join(f"{t}={s}" for t, s in tasks.items()))
            print(f"   {'job id':<84} {'api':<11} {'final status':<24} ended as (expected)")
            for job_id, job in jobs.items():
                final = f"{job['status']} ({job['normalized']})"
                ended, wanted = job_end(job), expected_end(dag_id, job)
                print(f"   {job_id:<84} {job['api']:<11} {final:<24} {ended} ({wanted})")
                if ended != wanted:
                    failures.append(f"{dag_id}: job {job_id} ended {ended}, expected {wanted}")
            if not jobs:
                failures.append(f"{dag_id}: started no job")
            if state != expected:
                failures.append(f"{dag_id}: run ended {state}, expected {expected}")
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    for dag_id, why in NOT_IN_DEMO.items():
        print(f"\n== {dag_id}: not run here ({why}); `make e2e` runs it")
    if failures:
        print("\nDEMO FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(
        "\nEvery job ended as its example DAG intends: cancelled, or untracked where useapi.net "
        "only stops tracking (the job may still run upstream)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
