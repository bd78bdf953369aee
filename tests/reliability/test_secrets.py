"""No secret anywhere, even under faults and DEBUG logging.

Every example DAG runs with ``airflow dags test`` (own temporary ``AIRFLOW_HOME`` with a copy of
one migrated SQLite database, own in-process emulator) with faults on: 429 on a fifth of all
requests (``Retry-After: 0``) and WriteText's access token refused once (401, refreshed), and
``AIRFLOW__LOGGING__LOGGING_LEVEL=DEBUG``. Then the useapi token, the WriteText API key and
every access token the emulator issued are searched for in the output of ``dags test``, every
file under ``AIRFLOW_HOME`` (log folder included), the XCom and rendered-template-field rows and
the whole database, and in the path of every request the emulator received.

One known leak is Airflow's, not this provider's: under ``dags test`` (in-process supervisor)
Airflow 3 logs each task-to-supervisor message at DEBUG, including the ``MaskSecret`` message
by which Airflow masks the connection's password and this provider masks the access tokens
(``InProcessSupervisorComms.send``: "Sending request ... msg=MaskSecret(value='...')"). Those
lines are counted and reported separately; every other hit fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cancel._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_cancel.emulator import Emulator

from .fault_matrix import USEAPI_TOKEN, WRITETEXT_KEY

pytestmark = pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS,
    reason="Airflow 3 only: the example DAG files import airflow.sdk; on Airflow 2.11 "
    "tests/airflow2 runs them (states only), this secret scan has no Airflow 2 counterpart",
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
BIN = Path(sys.executable).parent
RUN_TIMEOUT = 240
AIRFLOW_MASK_LINE = re.compile(r"Sending request.*msg=MaskSecret\(value=")
"""Airflow core's own DEBUG line (see the module docstring)."""


# Deadlines are checked by the scheduler, which `airflow dags test` does not run (make e2e does).
NOT_RUN_BY_DAGS_TEST = {"example_deadline_cancel"}


def example_dag_ids() -> list[str]:
    return sorted(
        path.stem
        for path in EXAMPLE_DAGS.glob("example_*.py")
        if "@dag" in path.read_text(encoding="utf-8") and path.stem not in NOT_RUN_BY_DAGS_TEST
    )


@dataclass
class Run:
    dag_id: str
    returncode: int
    output: str
    home: Path
    run_state: str | None = None
    issued_tokens: list[str] = field(default_factory=list)
    raw_paths: list[str] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    db_dump: str = ""


def airflow_env(home: Path, emulator_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(EXAMPLE_DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="DEBUG",
        AIRFLOW_CONN_USEAPI_DEFAULT=json.dumps(
            {"conn_type": "useapi", "host": emulator_url, "password": USEAPI_TOKEN}
        ),
        AIRFLOW_CONN_WRITETEXT_DEFAULT=json.dumps(
            {"conn_type": "writetext", "host": emulator_url, "password": WRITETEXT_KEY}
        ),
    )
    return env


def airflow() -> str:
    script = BIN / "airflow"
    return str(script) if script.exists() else "airflow"


def run_dag(dag_id: str, template_db: Path, base: Path) -> Run:
    home = base / dag_id
    home.mkdir()
    shutil.copy(template_db, home / "airflow.db")
    # seed=1: the very first request already gets a 429; then about one in five.
    with Emulator(
        start_delay=0.2,
        cancel_delay=0.5,
        useapi_token=USEAPI_TOKEN,
        writetext_api_key=WRITETEXT_KEY,
        seed=1,
    ) as emulator:
        emulator.inject("expired_token", count=1)
        emulator.inject("429", rate=0.2, retry_after=0)
        try:
            done = subprocess.run(
                [airflow(), "dags", "test", dag_id],
                env=airflow_env(home, emulator.url),
                cwd=home,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
            )
            returncode, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as expired:
            partial = [part or b"" for part in (expired.stdout, expired.stderr)]
            text = "".join(
                p.decode(errors="replace") if isinstance(p, bytes) else p for p in partial
            )
            returncode, output = -1, f"TIMED OUT\n{text}"
        run = Run(dag_id, returncode, output, home)
        with emulator.state.lock:
            run.issued_tokens = list(emulator.state.tokens)
        run.raw_paths = [entry["raw_path"] for entry in emulator.requests_log]
        run.counters = emulator.counters
    db = sqlite3.connect(home / "airflow.db")
    try:
        row = db.execute(
            "SELECT state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        run.run_state = row[0] if row else None
        for table in ("xcom", "rendered_task_instance_fields"):
            run.tables[table] = "\n".join(repr(r) for r in db.execute(f"SELECT * FROM {table}"))
        run.db_dump = "\n".join(db.iterdump())
    finally:
        db.close()
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    base = tmp_path_factory.mktemp("reliability_secrets")
    template = base / "_template"
    template.mkdir()
    env = airflow_env(template, "http://127.0.0.1:9")
    subprocess.run(
        [airflow(), "db", "migrate"], env=env, cwd=template, check=True, capture_output=True
    )
    dag_ids = example_dag_ids()
    with ThreadPoolExecutor(min(len(dag_ids), os.cpu_count() or 1, 4)) as pool:
        results = list(pool.map(lambda d: run_dag(d, template / "airflow.db", base), dag_ids))
    return {run.dag_id: run for run in results}


def secrets(run: Run) -> dict[str, str]:
    found = {"useapi token": USEAPI_TOKEN, "WriteText API key": WRITETEXT_KEY}
    found.update({f"access token {n}": token for n, token in enumerate(run.issued_tokens)})
    return found


def hits(text: str, run: Run) -> list[str]:
    """Lines of ``text`` holding a secret, other than Airflow core's own MaskSecret line."""
    return [
        f"{name}: {line[:300]}"
        for line in text.splitlines()
        for name, value in secrets(run).items()
        if value in line and not AIRFLOW_MASK_LINE.search(line)
    ]


def files_text(home: Path) -> dict[str, str]:
    """Every file under AIRFLOW_HOME but the database (searched through its dump)."""
    found = {}
    for path in home.rglob("*"):
        if path.is_file() and path.name != "airflow.db":
            found[str(path.relative_to(home))] = path.read_text(errors="replace")
    return found


def test_every_example_dag_ran_under_faults_and_debug_logging(runs: dict[str, Run]) -> None:
    assert set(runs) == set(example_dag_ids())
    assert len(runs) == 6
    for run in runs.values():
        assert run.returncode != -1, f"{run.dag_id} timed out:\n{run.output[-3000:]}"
        assert run.run_state is not None, run.output[-3000:]
        assert "[debug" in run.output  # DEBUG logging really was on ...
        assert "->" in run.output
        assert " in " in run.output
        assert run.counters["faults_served"] >= 1, run.counters
    writetext_runs = [r for r in runs.values() if r.counters["token_requests"]]
    assert writetext_runs
    # The refused access token was refreshed: a second token request in some run.
    assert any(r.counters["token_requests"] >= 2 for r in writetext_runs)
    assert sum(len(r.issued_tokens) for r in runs.values()) >= 2


@pytest.mark.parametrize("dag_id", example_dag_ids())
def test_no_secret_in_logs_xcom_rendered_fields_or_urls(dag_id: str, runs: dict[str, Run]) -> None:
    run = runs[dag_id]
    places = {"dags test output": run.output, **files_text(run.home)}
    places.update({f"table {name}": text for name, text in run.tables.items()})
    places["database dump"] = run.db_dump
    places["request paths"] = "\n".join(run.raw_paths)
    found = {where: hits(text, run) for where, text in places.items()}
    found = {where: lines for where, lines in found.items() if lines}
    assert found == {}, json.dumps(found, indent=1)[:5000]
    assert run.tables["xcom"], "the run pushed XCom (so the check looked at something)"
    assert run.tables["rendered_task_instance_fields"]


def test_airflow_core_mask_secret_debug_lines_are_only_airflows(runs: dict[str, Run]) -> None:
    """The excluded lines are exactly Airflow's in-process ``MaskSecret`` debug line: the
    provider's own lines never hold a secret (checked above); this records how many there were
    so the README can say so."""
    for run in runs.values():
        for line in run.output.splitlines():
            if AIRFLOW_MASK_LINE.search(line):
                assert "supervisor.py" in line
