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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from airflow_provider_cancel._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_cancel.emulator import Emulator
from airflow_provider_cancel.emulator.dag_runs import DagRun, migrate, run_dag

from .fault_matrix import USEAPI_TOKEN, WRITETEXT_KEY

pytestmark = pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS,
    reason="Airflow 3 only: the example DAG files import airflow.sdk; on Airflow 2.11 "
    "tests/airflow2 runs them (states only), this secret scan has no Airflow 2 counterpart",
)

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
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


def run_under_faults(dag_id: str, template: Path, base: Path) -> DagRun:
    home = base / dag_id
    migrate(home, template)
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
        return run_dag(dag_id, home, EXAMPLE_DAGS, emulator, log_level="DEBUG", timeout=RUN_TIMEOUT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DagRun]:
    base = tmp_path_factory.mktemp("reliability_secrets")
    template = base / "_template"
    migrate(template)
    dag_ids = example_dag_ids()
    with ThreadPoolExecutor(min(len(dag_ids), os.cpu_count() or 1, 4)) as pool:
        results = list(pool.map(lambda d: run_under_faults(d, template, base), dag_ids))
    return {run.dag_id: run for run in results}


def secrets(run: DagRun) -> dict[str, str]:
    found = {"useapi token": USEAPI_TOKEN, "WriteText API key": WRITETEXT_KEY}
    found.update({f"access token {n}": token for n, token in enumerate(run.issued_tokens)})
    return found


def hits(text: str, run: DagRun) -> list[str]:
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


def test_every_example_dag_ran_under_faults_and_debug_logging(runs: dict[str, DagRun]) -> None:
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
def test_no_secret_in_logs_xcom_rendered_fields_or_urls(
    dag_id: str, runs: dict[str, DagRun]
) -> None:
    run = runs[dag_id]
    places = {"dags test output": run.output, **files_text(run.home)}
    places["XCom"] = json.dumps(run.xcoms)
    places["rendered fields"] = json.dumps(run.rendered)
    places["database dump"] = run.db_dump
    places["request paths"] = "\n".join(run.request_paths)
    found = {where: hits(text, run) for where, text in places.items()}
    found = {where: lines for where, lines in found.items() if lines}
    assert found == {}, json.dumps(found, indent=1)[:5000]
    assert run.xcoms, "the run pushed XCom (so the check looked at something)"
    assert run.rendered


def test_airflow_core_mask_secret_debug_lines_are_only_airflows(runs: dict[str, DagRun]) -> None:
    """The excluded lines are exactly Airflow's in-process ``MaskSecret`` debug line: the
    provider's own lines never hold a secret (checked above); this records how many there were
    so the README can say so."""
    for run in runs.values():
        for line in run.output.splitlines():
            if AIRFLOW_MASK_LINE.search(line):
                # Airflow 3.0 logs no location (loc=...); 3.1+ name supervisor.py.
                assert "supervisor.py" in line or "loc=" not in line
