"""The listener plugin: a user marks a reschedule-mode sensor (or its run) failed or success
while it waits between two pokes, and the API server cancels what the sensor recorded.

Real Airflow on the path that matters: the plugin is loaded from its ``airflow.plugins`` entry
point into Airflow's own listener manager, and Airflow's API-server code
(``_emit_state_listener_hooks``, what ``PATCH .../taskInstances/{task_id}`` and ``PATCH
.../dagRuns/{run_id}`` call) fires it with a database ``TaskInstance``. The task state store is
Airflow's configured backend (``[state_store] backend``), here one in memory instead of the
metadata DB. ``make e2e`` shows the same against a deployment.
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


def task_instance(operator: Any = None) -> Any:
    """A database ``TaskInstance`` of a reschedule-mode ``JobStatusSensor`` (or ``operator``)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk import DAG

    from airflow_provider_cancel.sensors.status import JobStatusSensor

    with DAG(f"dag_{uuid.uuid4().hex[:8]}", schedule=None):
        if operator is None:
            wait = JobStatusSensor(
                task_id="wait_done", conn_id="useapi_default", job_id="x", mode="reschedule"
            )
        else:
            wait = operator(task_id="wait_done")
    return TaskInstance(wait, run_id="manual__1", dag_version_id=uuid.uuid4())


def record(store: type[MemoryStore], ti: Any, conn_id: str, jobs: list[str], **extra: Any) -> None:
    scope = airflow_state.TaskScope(
        dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index
    )
    value = {"try_number": 1, "max_tries": 0, "conn_id": conn_id, "job_ids": jobs, **extra}
    value.setdefault("hook_params", FAST)
    store.rows[(scope, WATCHING_KEY)] = json.dumps(value)


def mark(ti: Any, state: str) -> None:
    """What the API server does after it set a task instance's state for a user."""
    from airflow.api_fastapi.core_api.services.public.task_instances import (
        _emit_state_listener_hooks,
    )
    from airflow.utils.state import TaskInstanceState

    _emit_state_listener_hooks([ti], TaskInstanceState(state))
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
    store: type[MemoryStore],
    state: str,
    all_logs: Callable[[], str],
) -> None:
    jobs = [emulator.submit_useapi(), emulator.submit_useapi()]
    ti = task_instance()
    record(store, ti, useapi_conn, jobs)

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
    emulator: Any, useapi_conn: str, store: type[MemoryStore]
) -> None:
    job = emulator.submit_useapi()
    ti = task_instance()  # its poke took the record when it started: nothing recorded

    mark(ti, "failed")

    assert emulator.job(job)["cancel_calls"] == 0


@pytest.fixture
def recorded(emulator: Any, useapi_conn: str, store: type[MemoryStore]) -> tuple[Any, str]:
    """A task instance whose sensor recorded one running job before its reschedule."""
    job = emulator.submit_useapi()
    ti = task_instance()
    record(store, ti, useapi_conn, [job])
    return ti, job


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
    emulator: Any, set_connection: Callable[..., str], store: type[MemoryStore], all_logs: Any
) -> None:
    secret = "listener-secret-token-42"
    conn_id = set_connection("useapi_listener", "useapi", host=emulator.url, password=secret)
    jobs = [emulator.submit_useapi(), emulator.submit_useapi()]
    emulator.inject("500", count=100, call="cancel")
    ti = task_instance()
    record(store, ti, conn_id, jobs, hook_params={**FAST, "retry_limit": 1})

    mark(ti, "failed")  # never raises

    lines = [line for line in all_logs().splitlines() if "may still be running" in line]
    assert any(all(job in line for job in jobs) for line in lines), lines
    assert secret not in all_logs()
    emulator.clear_faults()


@needs_store
def test_an_unknown_connection_is_logged_with_the_ids_left_running(
    store: type[MemoryStore], all_logs: Callable[[], str]
) -> None:
    ti = task_instance()
    record(store, ti, "no_such_connection", ["job-1"])

    mark(ti, "failed")

    lines = [line for line in all_logs().splitlines() if "may still be running" in line]
    assert any("job-1" in line for line in lines), lines


@needs_store
def test_an_unreadable_store_is_logged_and_the_request_goes_on(
    monkeypatch: pytest.MonkeyPatch, store: type[MemoryStore], all_logs: Callable[[], str]
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("state store down")

    monkeypatch.setattr(store, "get", broken)

    mark(task_instance(), "failed")

    assert "could not read what it waited on (state store down)" in all_logs()


@needs_store
@pytest.mark.parametrize("ends", ["commit", "rollback"])
def test_the_cancel_waits_for_the_request_to_commit_and_leaves_its_thread(
    emulator: Any, store: type[MemoryStore], recorded: tuple[Any, str], ends: str
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    ti, job = recorded
    session = Session(create_engine("sqlite://"))
    session.add(ti)  # the request's session, as in the API server

    mark(ti, "failed")

    assert emulator.job(job)["cancel_calls"] == 0  # the request's transaction is still open
    assert store.rows == {}  # taken, in the request's session (a rollback puts it back)
    session.expunge(ti)
    if ends == "rollback":
        session.rollback()
    session.commit()  # after a rollback: a later transaction of the same session
    cancels_sent()
    assert emulator.job(job)["cancel_calls"] == (1 if ends == "commit" else 0)


@needs_store
def test_a_record_planted_on_another_task_is_ignored(
    emulator: Any, useapi_conn: str, store: type[MemoryStore]
) -> None:
    from airflow.sdk import BaseOperator

    class Planted(BaseOperator):
        pass

    job = emulator.submit_useapi()
    ti = task_instance(Planted)
    record(store, ti, useapi_conn, [job])  # a REST user may write any task's state store

    mark(ti, "failed")

    assert emulator.job(job)["cancel_calls"] == 0
    assert len(store.rows) == 1


@needs_store
def test_only_safe_hook_params_reach_the_hook_and_they_are_clamped(
    monkeypatch: pytest.MonkeyPatch, useapi_conn: str, store: type[MemoryStore]
) -> None:
    import airflow_provider_cancel.hooks as hooks

    seen: list[dict[str, Any]] = []

    def hook_for_connection(conn_id: str, hook_params: dict[str, Any]) -> Any:
        seen.append(hook_params)
        raise RuntimeError("seen")

    monkeypatch.setattr(hooks, "hook_for_connection", hook_for_connection)
    ti = task_instance()
    planted = {
        "timeout": 3600,
        "connect_timeout": 0,
        "retry_limit": 1000,
        "max_retry_wait": "inf",
        "max_response_size": 10**12,
        "pool_size": 1,
        "confirm": False,
    }
    record(store, ti, useapi_conn, ["job-1"], hook_params=planted)

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
    store: type[MemoryStore], all_logs: Callable[[], str], value: Any
) -> None:
    ti = task_instance()
    scope = airflow_state.TaskScope(
        dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index
    )
    stored = value if isinstance(value, str) else json.dumps(value)
    store.rows[(scope, WATCHING_KEY)] = stored

    mark(ti, "failed")

    assert store.rows == {(scope, WATCHING_KEY): stored}
    assert "Task 'wait_done' of run 'manual__1': " in all_logs()
    assert "holds something this provider did not write" in all_logs()
