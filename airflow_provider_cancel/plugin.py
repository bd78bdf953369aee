"""The provider's Airflow plugin: cancel the jobs of a ``mode="reschedule"``
:class:`~airflow_provider_cancel.sensors.status.JobStatusSensor` that a user stops while it
waits between two pokes (Airflow >= 3.3).

Between two pokes no process of the task runs, so no ``on_kill`` can cancel. When a user marks
such a task instance failed or success, or marks its DAG run failed or success (UI or REST
API), Airflow 3.3's API server calls the task-instance listener hooks
(``api_fastapi/core_api/services/public/task_instances.py`` ``_emit_state_listener_hooks``,
``dag_run.py`` ``patch_dag_run_state``). This plugin listens there and cancels what the sensor
recorded in the task state store (:data:`~airflow_provider_cancel.stopping.WATCHING_KEY`)
before it left for its reschedule. A poke that is running removed that record when it started,
so a task killed mid-poke is cancelled once, by its ``on_kill``. Installing the provider is
enough: Airflow loads the plugin from the ``airflow.plugins`` entry point.

Clearing calls no listener hook; the sensor's next try cancels instead
(``JobStatusSensor._take_over_watching``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

from airflow.listeners import hookimpl as _hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

hookimpl: Callable[[Callable[..., None]], Callable[..., None]] = _hookimpl
"""pluggy's marker for Airflow's listener hooks (typed for mypy)."""

HAS_TASK_STATE_STORE = find_spec("airflow.state") is not None
"""Airflow >= 3.3: the task state store the sensor records its jobs in."""


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    """A task instance became failed (in the API server: marked so by a user)."""
    cancel_if_between_pokes(previous_state, task_instance, "marked failed")


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    """A task instance became successful (in the API server: marked so by a user)."""
    cancel_if_between_pokes(previous_state, task_instance, "marked success")


def cancel_if_between_pokes(previous_state: Any, ti: Any, what: str) -> None:
    """Cancel what the sensor of ``ti`` recorded before its reschedule; log, never raise.

    Only for a user's change in the API server: the database's task instance with no previous
    state (``_emit_state_listener_hooks``). Airflow's own failure handling passes ``RUNNING``
    (a retry then keeps waiting), and in a worker the hooks get the running task's own
    instance, which cancels from its ``on_kill``.
    """
    if previous_state is not None or type(ti).__module__ != "airflow.models.taskinstance":
        return
    where = f"Task {getattr(ti, 'task_id', '?')!r} of run {getattr(ti, 'run_id', '?')!r}"
    try:
        record = _take_record(ti)
    except Exception as error:
        log.error(
            "%s %s: could not read what it waited on (%s); its jobs may still be running",
            where,
            what,
            error,
        )
        return
    if record is None:  # not a waiting sensor, or its poke runs (on_kill cancels), or done
        return
    from airflow_provider_cancel.stopping import cancel_recorded

    cancel_recorded(record, log=log, why=f"{where} {what} between two pokes")


def _take_record(ti: Any) -> Any:
    """Read and remove the record, in the request's own session (on SQLite another session
    would wait for the request's write lock)."""
    from airflow.state import TaskScope, get_state_backend
    from sqlalchemy.orm import object_session

    from airflow_provider_cancel.stopping import WATCHING_KEY

    map_index = ti.map_index if ti.map_index is not None else -1
    scope = TaskScope(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=map_index)
    session = object_session(ti)
    in_session = {} if session is None else {"session": session}
    backend = get_state_backend()
    stored = backend.get(scope, WATCHING_KEY, **in_session)
    if stored is None:
        return None
    backend.delete(scope, WATCHING_KEY, **in_session)
    return json.loads(stored)


class CancelOnKillPlugin(AirflowPlugin):
    """Registers this module's listener (Airflow >= 3.3; nothing on older versions, which have
    no task state store).

    Example: nothing to configure; ``airflow plugins`` lists ``airflow_provider_cancel``.
    """

    name = "airflow_provider_cancel"
    listeners = [sys.modules[__name__]] if HAS_TASK_STATE_STORE else []
