"""The listener plugin: a user marks a reschedule-mode sensor (or its run) failed or success
while it waits between two pokes, and the API server cancels what the sensor recorded.

Real Airflow on the path that matters: the plugin is loaded from its ``airflow.plugins`` entry
point into Airflow's own listener manager, and Airflow's API-server code
(``_emit_state_listener_hooks``, what ``PATCH .../taskInstances/{task_id}`` and ``PATCH
.../dagRuns/{run_id}`` call) fires it with a database ``TaskInstance``. The task state store is
Airflow's configured backend (``[state_store] backend``), here one in memory instead of the
metadata DB. The task instance lives in a real metadata DB (SQLite in memory, every table of
Airflow's models), in the request's session, and its rendered template fields are stored as
the worker has them stored: the sensor's templates rendered by Airflow, serialized by the task
runner (``_serialize_rendered_fields``) and written by ``TaskInstance.update_rtif`` (what the
execution API's ``PUT /task-instances/{id}/rtif`` calls). ``make e2e`` shows the same against
a deployment.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version

from airflow_provider_cancel.stopping import WATCHING_KEY
from tests.planted import OWN_IDS, cancelled_ids, named_id, two_team_apis

FAST = {"retry_delay": 0.01, "max_retry_wait": 0.5, "timeout": 5.0}
HAS_STORE = Version(airflow_version).release >= (3, 3)
needs_store = pytest.mark.skipif(not HAS_STORE, reason="the task state store: Airflow >= 3.3")

if HAS_STORE:
    import airflow.state as airflow_state

    Base: Any = airflow_state.BaseStoreBackend
else:  # Airflow 2.11, 3.0-3.2
    Base = object


def test_the_plugin_loads_on_every_version_and_listens_only_where_it_can_cancel() -> None:
    from airflow import plugins_manager

    from airflow_provider_cancel.plugin import CancelOnKillPlugin

    # Airflow loads it from its entry point (on 3.3 it subclasses the SDK's AirflowPlugin, which
    # common-compat gives, not core's: Airflow accepts either).
    plugins_manager.ensure_plugins_loaded()
    loaded = plugins_manager.plugins if hasattr(plugins_manager, "plugins") else None
    if loaded is None:  # Airflow 3.3 keeps them behind a cached getter
        loaded, _ = plugins_manager._get_plugins()
    assert CancelOnKillPlugin in [type(plugin) for plugin in loaded]
    # Airflow 2.11 calls no listener hook when a user marks a task (docs/cancellation.md), and
    # before 3.3 there is no task state store: no listener there.
    assert bool(CancelOnKillPlugin.listeners) is HAS_STORE


class MemoryStore(Base):
    """A ``[state_store] backend`` keeping task state in a dict."""

    rows: dict[tuple[Any, str], str] = {}

    def get(self, scope: Any, key: str, *, session: Any = None) -> str | None:
        return self.rows.get((scope, key))

    def set(self, scope: Any, key: str, value: str, **_: Any) -> None:
        self.rows[(scope, key)] = value

    def delete(self, scope: Any, key: str, *, session: Any = None) -> None:
        self.rows.pop((scope, key), None)

    def clear(self, scope: Any, **_: Any) -> None:
        for row in [row for row in self.rows if row[0] == scope]:
            del self.rows[row]

    async def aget(self, scope: Any, key: str, *, session: Any = None) -> str | None:
        return self.get(scope, key)

    async def aset(self, scope: Any, key: str, value: str, **_: Any) -> None:
        self.set(scope, key, value)

    async def adelete(self, scope: Any, key: str, *, session: Any = None) -> None:
        self.delete(scope, key)

    async def aclear(self, scope: Any, **_: Any) -> None:
        self.clear(scope)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryStore]]:
    monkeypatch.setenv("AIRFLOW__STATE_STORE__BACKEND", f"{__name__}.MemoryStore")
    monkeypatch.setattr(airflow_state, "_backend_instance", None)
    MemoryStore.rows = {}
    yield MemoryStore
    MemoryStore.rows = {}


SESSIONS: list[Any] = []
"""The sessions of the task instances made here, kept open like the request's (a session
nobody holds is collected, and its objects detached)."""


@pytest.fixture(scope="module")
def metadata_db() -> Iterator[Any]:
    """A metadata DB with every table of Airflow's models (SQLite, in memory)."""
    if not HAS_STORE:
        yield None
        return
    from airflow.models import import_all_models
    from airflow.models.base import Base as Models
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    import_all_models()
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    Models.metadata.create_all(engine)
    yield engine
    while SESSIONS:
        SESSIONS.pop().close()


def task_instance(
    metadata_db: Any,
    operator: Any = None,
    *,
    conn_id: str = "useapi_default",
    job_id: Any = "x",
    hook_params: dict[str, Any] | None = None,
) -> Any:
    """A database ``TaskInstance`` (try 1) of a reschedule-mode ``JobStatusSensor`` (or
    ``operator``) with its DAG run, in a session of ``metadata_db``; the sensor's rendered
    template fields stored as the worker's first poke has them stored."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk import DAG, timezone
    from airflow.sdk.execution_time.task_runner import _serialize_rendered_fields
    from airflow.utils.types import DagRunType
    from sqlalchemy.orm import Session

    from airflow_provider_cancel.sensors.status import JobStatusSensor

    dag_id = f"dag_{uuid.uuid4().hex[:8]}"
    with DAG(dag_id, schedule=None):
        if operator is None:
            wait = JobStatusSensor(
                task_id="wait_done",
                conn_id=conn_id,
                job_id=job_id,
                mode="reschedule",
                hook_params=FAST if hook_params is None else hook_params,
            )
        else:
            wait = operator(task_id="wait_done")
    session = Session(metadata_db, expire_on_commit=False)
    SESSIONS.append(session)
    run = DagRun(
        dag_id=dag_id, run_id="manual__1", run_type=DagRunType.MANUAL, run_after=timezone.utcnow()
    )
    ti = TaskInstance(wait, run_id="manual__1", dag_version_id=uuid.uuid4())
    ti.try_number = 1
    session.add_all([run, ti])
    wait.render_template_fields({})  # what the worker does before the poke
    ti.update_rtif(_serialize_rendered_fields(wait), session=session)
    session.commit()
    return ti


def scope_of(ti: Any) -> Any:
    return airflow_state.TaskScope(
        dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index
    )


def record(store: type[MemoryStore], ti: Any, conn_id: str, jobs: list[str], **extra: Any) -> str:
    """Write a record under the key of ``ti`` (as its sensor does, or as a REST user may)."""
    value = {"try_number": 1, "max_tries": 0, "conn_id": conn_id, "job_ids": jobs, **extra}
    value.setdefault("hook_params", FAST)
    stored = store.rows[(scope_of(ti), WATCHING_KEY)] = json.dumps(value)
    return stored


def waiting(
    metadata_db: Any, store: type[MemoryStore], conn_id: str, jobs: list[str], **kwargs: Any
) -> Any:
    """The task instance of a sensor that watches ``jobs`` on ``conn_id`` and recorded them
    before its reschedule."""
    ti = task_instance(metadata_db, conn_id=conn_id, job_id=jobs, **kwargs)
    record(store, ti, conn_id, jobs)
    return ti


def mark(ti: Any, state: str, *, commit: bool = True) -> None:
    """What the API server does after it set a task instance's state for a user: the
    listener hooks inside the request's session, which then commits."""
    from airflow.api_fastapi.core_api.services.public.task_instances import (
        _emit_state_listener_hooks,
    )
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy.orm import object_session

    _emit_state_listener_hooks([ti], TaskInstanceState(state))
    session = object_session(ti)
    if commit and session is not None:
        session.commit()
    cancels_sent()


def cancels_sent() -> None:
    """Wait for the listener's cancel threads."""
    from airflow_provider_cancel.plugin import CANCEL_THREAD

    for thread in threading.enumerate():
        if thread.name == CANCEL_THREAD:
            thread.join(30)


@needs_store
def test_the_plugin_loads_from_its_entry_point_into_airflows_listener_manager() -> None:
    from airflow.listeners.listener import get_listener_manager
    from airflow.plugins_manager import get_plugin_info

    import airflow_provider_cancel.plugin as plugin

    assert plugin in get_listener_manager().pm.get_plugins()
    info = {p["name"]: p for p in get_plugin_info()}
    assert "airflow_provider_cancel" in info


@needs_store
@pytest.mark.parametrize("state", ["failed", "success", "skipped"])
def test_marked_between_pokes_cancels_every_recorded_job_once(
    emulator: Any,
    useapi_conn: str,
    metadata_db: Any,
    store: type[MemoryStore],
    state: str,
    all_logs: Callable[[], str],
) -> None:
    jobs = [emulator.submit_useapi(), emulator.submit_useapi()]
    ti = waiting(metadata_db, store, useapi_conn, jobs)

    mark(ti, state)
    mark(ti, state)  # marked again: the record was taken, nothing is cancelled twice

    assert [emulator.job(job)["cancel_calls"] for job in jobs] == [1, 1]
    assert store.rows == {}
    text = all_logs()
    assert f"marked {state} between two pokes: cancelling 2 job(s)" in text
    for job in jobs:
        assert f"{job}: cancelled" in text


@needs_store
def test_no_record_no_cancel_a_running_poke_cancels_from_on_kill(
    emulator: Any, useapi_conn: str, metadata_db: Any, store: type[MemoryStore]
) -> None:
    job = emulator.submit_useapi()
    # its poke took the record when it started: nothing recorded
    ti = task_instance(metadata_db, conn_id=useapi_conn, job_id=[job])

    mark(ti, "failed")

    assert emulator.job(job)["cancel_calls"] == 0


@pytest.fixture
def recorded(
    emulator: Any, useapi_conn: str, metadata_db: Any, store: type[MemoryStore]
) -> tuple[Any, str]:
    """A task instance whose sensor recorded one running job before its reschedule."""
    job = emulator.submit_useapi()
    return waiting(metadata_db, store, useapi_conn, [job]), job


@needs_store
def test_airflows_own_failure_handling_is_no_user_action_and_cancels_nothing(
    emulator: Any, store: type[MemoryStore], recorded: tuple[Any, str]
) -> None:
    from airflow.listeners.listener import get_listener_manager
    from airflow.utils.state import TaskInstanceState

    ti, job = recorded

    # What TaskInstance.fetch_handle_failure_context calls in the scheduler, e.g. for a task
    # the executor could not start after its reschedule: a retry keeps waiting on the job.
    get_listener_manager().hook.on_task_instance_failed(
        previous_state=TaskInstanceState.RUNNING, task_instance=ti, error="executor failed"
    )

    assert emulator.job(job)["cancel_calls"] == 0
    assert len(store.rows) == 1


@needs_store
def test_a_task_instance_in_a_worker_is_left_to_the_task(
    emulator: Any, store: type[MemoryStore], recorded: tuple[Any, str]
) -> None:
    from airflow_provider_cancel.plugin import cancel_if_between_pokes

    ti, job = recorded

    class RuntimeTaskInstance:  # what the worker's listener hooks get
        dag_id, run_id, task_id, map_index = ti.dag_id, ti.run_id, ti.task_id, ti.map_index

    cancel_if_between_pokes(None, RuntimeTaskInstance(), "marked failed")

    assert emulator.job(job)["cancel_calls"] == 0
    assert len(store.rows) == 1


@needs_store
def test_a_failing_cancel_is_logged_with_the_ids_left_running_and_the_request_goes_on(
    emulator: Any,
    set_connection: Callable[..., str],
    metadata_db: Any,
    store: type[MemoryStore],
    all_logs: Any,
) -> None:
    secret = "listener-secret-token-42"
    conn_id = set_connection("useapi_listener", "useapi", host=emulator.url, password=secret)
    jobs = [emulator.submit_useapi(), emulator.submit_useapi()]
    emulator.inject("500", count=100, call="cancel")
    ti = waiting(metadata_db, store, conn_id, jobs, hook_params={**FAST, "retry_limit": 1})

    mark(ti, "failed")  # never raises

    lines = [line for line in all_logs().splitlines() if "may still be running" in line]
    assert any(all(job in line for job in jobs) for line in lines), lines
    assert secret not in all_logs()
    emulator.clear_faults()


@needs_store
def test_an_unknown_connection_is_logged_with_the_ids_left_running(
    metadata_db: Any, store: type[MemoryStore], all_logs: Callable[[], str]
) -> None:
    ti = waiting(metadata_db, store, "no_such_connection", ["job-1"])

    mark(ti, "failed")

    lines = [line for line in all_logs().splitlines() if "may still be running" in line]
    assert any("job-1" in line for line in lines), lines


@needs_store
def test_an_unreadable_store_is_logged_and_the_request_goes_on(
    monkeypatch: pytest.MonkeyPatch,
    metadata_db: Any,
    store: type[MemoryStore],
    all_logs: Callable[[], str],
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("state store down")

    monkeypatch.setattr(store, "get", broken)

    mark(task_instance(metadata_db), "failed")

    assert "could not read what it waited on (state store down)" in all_logs()


@needs_store
@pytest.mark.parametrize("ends", ["commit", "rollback"])
def test_the_cancel_waits_for_the_request_to_commit_and_leaves_its_thread(
    emulator: Any, store: type[MemoryStore], recorded: tuple[Any, str], ends: str
) -> None:
    from sqlalchemy.orm import object_session

    ti, job = recorded
    session: Any = object_session(ti)  # the request's session, as in the API server

    mark(ti, "failed", commit=False)

    assert emulator.job(job)["cancel_calls"] == 0  # the request's transaction is still open
    assert store.rows == {}  # taken, in the request's session (a rollback puts it back)
    if ends == "rollback":
        session.rollback()
    session.commit()  # after a rollback: a later transaction of the same session
    cancels_sent()
    assert emulator.job(job)["cancel_calls"] == (1 if ends == "commit" else 0)


@needs_store
def test_a_record_planted_on_another_task_is_ignored(
    emulator: Any, useapi_conn: str, metadata_db: Any, store: type[MemoryStore]
) -> None:
    from airflow.sdk import BaseOperator

    class Planted(BaseOperator):
        pass

    job = emulator.submit_useapi()
    ti = task_instance(metadata_db, Planted)
    record(store, ti, useapi_conn, [job])  # a REST user may write any task's state store

    mark(ti, "failed")

    assert emulator.job(job)["cancel_calls"] == 0
    assert len(store.rows) == 1


@needs_store
def test_only_the_tasks_own_safe_hook_params_reach_the_hook_and_they_are_clamped(
    monkeypatch: pytest.MonkeyPatch, useapi_conn: str, metadata_db: Any, store: type[MemoryStore]
) -> None:
    import airflow_provider_cancel.hooks as hooks

    seen: list[dict[str, Any]] = []

    def hook_for_connection(conn_id: str, hook_params: dict[str, Any]) -> Any:
        seen.append(hook_params)
        raise RuntimeError("seen")

    monkeypatch.setattr(hooks, "hook_for_connection", hook_for_connection)
    dag_authors = {
        "timeout": 3600,
        "connect_timeout": 0,
        "retry_limit": 1000,
        "max_retry_wait": "inf",
        "max_response_size": 10**12,
        "pool_size": 1,
        "confirm": False,
    }
    ti = task_instance(metadata_db, conn_id=useapi_conn, job_id=["job-1"], hook_params=dag_authors)
    # The record's own hook_params are never used: a REST user may have written them.
    record(store, ti, useapi_conn, ["job-1"], hook_params={"service": "x", "timeout": 0.001})

    mark(ti, "failed")

    assert seen == [
        {
            "confirm": False,
            "retry_limit": 1,
            "retry_delay": 1.0,
            "max_retry_wait": 5.0,
            "connect_timeout": 4.0,
            "timeout": 8.0,
        }
    ]


@needs_store
@pytest.mark.parametrize(
    "value",
    [
        {"__airflow_state_ref__": "s3://bucket/state/wait_done"},  # a custom backend's reference
        {"try_number": 1, "max_tries": 0, "conn_id": "c", "job_ids": ["j"]},  # a key missing
        {"try_number": 1, "max_tries": 0, "conn_id": "c", "job_ids": "j", "hook_params": {}},
        "not json",
    ],
)
def test_a_record_this_provider_did_not_write_is_left_in_place_and_logged(
    metadata_db: Any, store: type[MemoryStore], all_logs: Callable[[], str], value: Any
) -> None:
    ti = task_instance(metadata_db)
    scope = airflow_state.TaskScope(
        dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index
    )
    stored = value if isinstance(value, str) else json.dumps(value)
    store.rows[(scope, WATCHING_KEY)] = stored

    mark(ti, "failed")

    assert store.rows == {(scope, WATCHING_KEY): stored}
    assert "Task 'wait_done' of run 'manual__1': " in all_logs()
    assert "holds something this provider did not write" in all_logs()


# ---------------------------------------------------------------------- authority

OWN = OWN_IDS
"""The ids the sensor of these tests renders."""


@pytest.fixture
def two_teams(set_connection: Callable[..., str]) -> Iterator[tuple[Any, Any]]:
    with two_team_apis(set_connection) as apis:
        yield apis


@needs_store
def test_the_listener_cancels_the_tasks_own_record_with_its_own_connection(
    two_teams: tuple[Any, Any], metadata_db: Any, store: type[MemoryStore]
) -> None:
    mine, team_b = two_teams
    ti = waiting(metadata_db, store, "mine", OWN)

    mark(ti, "failed")

    assert cancelled_ids(mine) == set(OWN)
    assert team_b.requests == []
    assert store.rows == {}


@needs_store
@pytest.mark.parametrize(
    ("planted", "reason"),
    [
        ({"conn_id": "team_b", "job_ids": ["team-b-1"]}, "names connection 'team_b'"),
        ({"conn_id": "team_b"}, "names connection 'team_b'"),
        ({"job_ids": ["team-b-1", "team-b-2"]}, "not the ids the task rendered"),
        ({"job_ids": [*OWN, "team-b-1"]}, "not the ids the task rendered"),
        ({"job_ids": ["own-1"]}, "not the ids the task rendered"),
        ({"try_number": 2}, "no try of the task instance"),
        ({"try_number": 0}, "no try of the task instance"),
        ({"max_tries": -1}, "no try of the task instance"),
        ({"max_tries": 10**30}, "no try of the task instance"),
        ({"try_number": None}, "no try of the task instance"),
    ],
)
def test_a_planted_record_is_refused_left_in_place_and_sends_nothing(
    two_teams: tuple[Any, Any],
    metadata_db: Any,
    store: type[MemoryStore],
    all_logs: Callable[[], str],
    planted: dict[str, Any],
    reason: str,
) -> None:
    mine, team_b = two_teams
    ti = task_instance(metadata_db, conn_id="mine", job_id=OWN)
    values = {"conn_id": "mine", "job_ids": OWN, **planted}
    stored = record(store, ti, values.pop("conn_id"), values.pop("job_ids"), **values)

    mark(ti, "failed")

    assert mine.requests == []
    assert team_b.requests == []
    assert store.rows == {(scope_of(ti), WATCHING_KEY): stored}
    errors = [line for line in all_logs().splitlines() if "refused the record" in line]
    assert errors
    assert reason in errors[0]
    assert "Task 'wait_done' of run 'manual__1'" in errors[0]


@needs_store
def test_a_task_instance_without_rendered_fields_is_refused(
    two_teams: tuple[Any, Any],
    metadata_db: Any,
    store: type[MemoryStore],
    all_logs: Callable[[], str],
) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from sqlalchemy import delete
    from sqlalchemy.orm import object_session

    mine, _ = two_teams
    ti = waiting(metadata_db, store, "mine", OWN)
    session: Any = object_session(ti)
    session.execute(
        delete(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.dag_id == ti.dag_id)
    )
    session.commit()  # e.g. past [core] num_dag_runs_to_retain_rendered_fields

    mark(ti, "failed")

    assert mine.requests == []
    assert len(store.rows) == 1
    assert "holds no rendered template fields" in all_logs()


@needs_store
def test_a_long_list_is_checked_by_its_digest_though_airflow_cuts_the_rendered_ids(
    two_teams: tuple[Any, Any], metadata_db: Any, store: type[MemoryStore]
) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields

    mine, _ = two_teams
    jobs = [f"own-{n:03d}" for n in range(500)]
    ti = waiting(metadata_db, store, "mine", jobs)
    rendered = RenderedTaskInstanceFields.get_templated_fields(ti, session=_session(ti))
    assert isinstance(rendered["job_id"], str)
    assert "Truncated" in rendered["job_id"]

    mark(ti, "failed")

    assert cancelled_ids(mine) == set(jobs)
    assert store.rows == {}


def _session(ti: Any) -> Any:
    from sqlalchemy.orm import object_session

    return object_session(ti)


@needs_store
def test_planted_records_never_reach_another_connection_or_other_ids(
    two_teams: tuple[Any, Any],
    metadata_db: Any,
    store: type[MemoryStore],
    all_logs: Callable[[], str],
) -> None:
    import time

    from hypothesis import given, settings

    from tests.planted import PLANTED

    mine, team_b = two_teams
    ti = task_instance(metadata_db, conn_id="mine", job_id=OWN)

    @settings(max_examples=40, deadline=None)
    @given(planted=PLANTED)
    def check(planted: Any) -> None:
        sent_before = len(mine.requests)
        store.rows[(scope_of(ti), WATCHING_KEY)] = json.dumps(planted)
        started = time.monotonic()

        mark(ti, "failed")

        assert time.monotonic() - started < 30
        assert team_b.requests == []
        new = mine.requests[sent_before:]
        assert {named_id(request) for request in new} <= set(OWN)

    check()
    assert max(len(line) for line in all_logs().splitlines()) < 5000
