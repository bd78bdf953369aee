"""The example DAGs on Airflow 2.11 (``make test-airflow2``), with ``airflow dags test``.

The example DAGs import ``dag`` and ``task`` from ``airflow.sdk``, which Airflow 2 does not
have. Here each example is copied into a temporary DAGs folder with that one import rewritten
to ``airflow.decorators`` (the Airflow 2 home of the same decorators); everything else - the
provider's operator, sensor (deferrable too), trigger and callbacks - runs unchanged. Each DAG
runs with ``airflow dags test`` against the emulator on a SQLite metadata DB, and must end as
the demo and the e2e test expect: run state, every task's state, every job it started
cancelled (or untracked, where the demo expects it).

On Airflow 3 these tests are skipped: ``tests/dags`` runs the example DAGs there as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_cancel._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_cancel.emulator import Emulator
from airflow_provider_cancel.emulator.dag_runs import DagRun, migrate, run_dag
from tests.e2e.expectations import EXPECTED_RUN_STATE, EXPECTED_TASKS, expected_end, job_end

pytestmark = pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS,
    reason="Airflow 2 only: on Airflow 3, tests/dags runs the example DAGs as they are",
)

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
TEST_DAGS = Path(__file__).resolve().parents[1] / "dags" / "dags"
MAPPED_FAILURE = "provider_test_mapped_failure"
SDK_IMPORT = re.compile(r"^from airflow\.sdk import (.+)$", re.M)


def airflow2_source(text: str) -> str:
    """The DAG file with its ``airflow.sdk`` imports moved to their Airflow 2 module."""
    rewritten = SDK_IMPORT.sub(r"from airflow.decorators import \1", text)
    names = {n.strip() for m in SDK_IMPORT.finditer(text) for n in m.group(1).split(",")}
    unknown = names - {"dag", "task"}
    assert not unknown, f"no Airflow 2 home known for airflow.sdk names {unknown}"
    return rewritten


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DagRun]]:
    root = tmp_path_factory.mktemp("airflow2")
    home, dags = root / "home", root / "dags"
    dags.mkdir()
    for source in sorted(EXAMPLE_DAGS.glob("example_*.py")):
        (dags / source.name).write_text(airflow2_source(source.read_text()))
    tests = TEST_DAGS / "provider_test_dags.py"
    (dags / tests.name).write_text(airflow2_source(tests.read_text()))
    migrate(home)
    with Emulator(start_delay=0.2, cancel_delay=0.5) as emulator:
        dag_ids = [*EXPECTED_RUN_STATE, MAPPED_FAILURE]
        yield {dag_id: run_dag(dag_id, home, dags, emulator) for dag_id in dag_ids}


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
def test_example_dag_on_airflow2(runs: dict[str, DagRun], dag_id: str) -> None:
    run = runs[dag_id]
    where = f"{dag_id} on Airflow 2:\n{run.describe()}"
    assert run.returncode != -1, f"`airflow dags test` timed out\n{where}"
    assert run.run_state == EXPECTED_RUN_STATE[dag_id], where
    assert run.task_states == EXPECTED_TASKS[dag_id], where
    assert run.jobs, f"{dag_id} started no job\n{where}"
    unexpected = {
        i: job_end(j) for i, j in run.jobs.items() if job_end(j) != expected_end(dag_id, j)
    }
    assert not unexpected, f"jobs that did not end as intended: {unexpected}\n{where}"
    assert all(job["cancel_calls"] >= 1 for job in run.jobs.values()), run.jobs


def test_cancel_on_failure_cancels_every_map_index_on_airflow2(runs: dict[str, DagRun]) -> None:
    result = runs[MAPPED_FAILURE]

    assert result.run_state == "failed", result.describe()  # on purpose
    images = [job for job, seen in result.jobs.items() if seen["api"] == "useapi_v2"]
    texts = [job for job, seen in result.jobs.items() if seen["api"] == "writetext"]
    assert (len(images), len(texts)) == (3, 3), result.describe()
    # Task level: each map index of submit_images pushed a list; DAG level: submit_text's three.
    assert [result.jobs[job]["normalized"] for job in images] == ["cancelled"] * 3
    assert [result.jobs[job]["status"] for job in texts] == ["Cancelled"] * 3, result.describe()
