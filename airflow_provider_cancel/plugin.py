"""The provider's Airflow plugin: cancel the jobs of a ``mode="reschedule"``
:class:`~airflow_provider_cancel.sensors.status.JobStatusSensor` that a user stops while it
waits between two pokes (Airflow >= 3.3).

Between two pokes no process of the task runs, so no ``on_kill`` can cancel. When a user marks
such a task instance failed, success or skipped, or marks its DAG run failed or success (UI or
REST API), Airflow 3.3's API server calls the task-instance listener hooks
(``api_fastapi/core_api/services/public/task_instances.py`` ``_emit_state_listener_hooks``,
``dag_run.py`` ``patch_dag_run_state``). This plugin listens there and cancels what the sensor
recorded in the task state store (:data:`~airflow_provider_cancel.stopping.WATCHING_KEY`)
before it left for its reschedule. A poke that is running removed that record when it started,
so a task killed mid-poke is cancelled once, by its ``on_kill``. Installing the provider is
enough: Airflow loads the plugin from the ``airflow.plugins`` entry point.

The hooks run inside the request, before its database transaction commits. The record is taken
(read and deleted) in the request's session; the cancel calls go out only after that session
commits, in a daemon thread, bounded in time
(:data:`~airflow_provider_cancel.stopping.SAFE_HOOK_PARAMS`; no request after the budget). If
the request rolls back, the record stays and nothing is cancelled.

Anyone allowed to update a task instance may write its state store through the REST API, so
the record carries no authority of its own: the listener acts only on the task instances of
this provider's sensors (:data:`SENSOR_OPERATORS`), only on a record shaped as the sensor
writes it, and only when the record names the task instance's current try, the connection the
task rendered for that try and exactly the ids it rendered (their digest,
:data:`~airflow_provider_cancel.stopping.WATCHED_IDS_FIELD`), as Airflow stores them in the
task instance's rendered template fields, which only the task's own worker writes. The hook
gets the rendered ``hook_params``, reduced and clamped; the record's are never used. Any other
record is refused with an ERROR naming the task and left in place.

Clearing calls no listener hook; the sensor's next try cancels instead
(``JobStatusSensor._take_over_watching``).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from airflow.providers.common.compat.sdk import AirflowPlugin
from airflow.providers.common.compat.sdk import hookimpl as listener_hookimpl

from airflow_provider_cancel._compat import HAS_TASK_STATE_STORE
from airflow_provider_cancel.messages import ids_text, shorten

log = logging.getLogger(__name__)

hookimpl: Callable[[Callable[..., None]], Callable[..., None]] = listener_hookimpl
"""pluggy's marker for Airflow's listener hooks (typed for mypy)."""

SENSOR_OPERATORS = frozenset({"JobStatusSensor", "JobCancelledSensor"})
"""The task instances the listener acts on, by their ``operator`` (the class name the
scheduler stores from the serialized DAG; a record planted on any other task is ignored).
A subclass under another name is not covered: the API server has no class hierarchy for it."""


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    """A task instance became failed (in the API server: marked so by a user)."""
    cancel_if_between_pokes(previous_state, task_instance, "marked failed")


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    """A task instance became successful (in the API server: marked so by a user)."""
    cancel_if_between_pokes(previous_state, task_instance, "marked success")


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    """A task instance became skipped (in the API server: marked so by a user)."""
    cancel_if_between_pokes(previous_state, task_instance, "marked skipped")


def cancel_if_between_pokes(previous_state: Any, ti: Any, what: str) -> None:
    """Take what the sensor of ``ti`` recorded before its reschedule and cancel it once the
    request commits; log, never raise.

    Only for a user's change in the API server: the database's task instance with no previous
    state (``_emit_state_listener_hooks``), of this provider's sensor. Airflow's own failure
    handling passes ``RUNNING`` (a retry then keeps waiting), and in a worker the hooks get the
    running task's own instance, which cancels from its ``on_kill``.
    """
    if previous_state is not None or type(ti).__module__ != "airflow.models.taskinstance":
        return
    if getattr(ti, "operator", None) not in SENSOR_OPERATORS:
        return
    where = f"Task {getattr(ti, 'task_id', '?')!r} of run {getattr(ti, 'run_id', '?')!r}"
    try:
        taken = _take_record(ti, where)
    except Exception as error:
        log.error(
            "%s %s: could not read what it waited on (%s); its jobs may still be running",
            where,
            what,
            shorten(str(error), 300),
        )
        return
    if taken is None:  # not waiting, or its poke runs (on_kill cancels), or done, or refused
        return
    record, hook_params = taken
    why = f"{where} {what} between two pokes"
    _after_commit(ti, lambda: _cancel_in_background(record, hook_params, why))


def _after_commit(ti: Any, action: Callable[[], None]) -> None:
    """Run ``action`` once the session of ``ti`` commits (at once if it has none); never if it
    rolls back."""
    from sqlalchemy import event
    from sqlalchemy.orm import object_session

    session = object_session(ti)
    if session is None:
        action()
        return

    pending = [action]

    def committed(_: Any) -> None:
        while pending:
            pending.pop()()

    def rolled_back(_: Any, transaction: Any) -> None:
        if transaction.parent is None:  # the request's own transaction, not a savepoint
            pending.clear()

    event.listen(session, "after_commit", committed, once=True)
    event.listen(session, "after_soft_rollback", rolled_back)


def _cancel_in_background(record: dict[str, Any], hook_params: Any, why: str) -> None:
    """Cancel in a daemon thread: the request has answered, the API server goes on."""
    from airflow_provider_cancel.stopping import cancel_with_connection

    job_ids = list(record["job_ids"])

    def run() -> None:  # logs every outcome; never raises
        cancel_with_connection(record["conn_id"], hook_params, job_ids, log=log, why=why)

    try:
        threading.Thread(target=run, name=CANCEL_THREAD, daemon=True).start()
    except Exception as error:  # after_commit: an error here would reach the request
        ids = ids_text(job_ids)
        log.error("%s: cannot cancel (%s); these may still be running: %s", why, error, ids)


CANCEL_THREAD = "cancel-between-pokes"
"""The name of the threads that send the listener's cancels."""


def _take_record(ti: Any, where: str) -> tuple[dict[str, Any], Any] | None:
    """Read the record and, if the task itself stands behind it, remove it, in the request's
    own session (on SQLite another session would wait for the request's write lock; a
    rollback keeps it). Returns the record and the task's rendered ``hook_params``.

    Anything else under the key (e.g. a custom backend's ``{"__airflow_state_ref__": ...}``
    reference, or a record naming what the task did not render) is left where it is and
    logged."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.state import TaskScope, get_state_backend
    from sqlalchemy.orm import object_session

    from airflow_provider_cancel.stopping import (
        WATCHING_KEY,
        listener_refusal,
        parse_record,
        refused_text,
    )

    map_index = ti.map_index if ti.map_index is not None else -1
    scope = TaskScope(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=map_index)
    session = object_session(ti)
    in_session = {} if session is None else {"session": session}
    backend = get_state_backend()
    stored = backend.get(scope, WATCHING_KEY, **in_session)
    if stored is None:
        return None
    record = parse_record(stored)
    if record is None:
        log.error(
            "%s: %r holds something this provider did not write (e.g. a custom state store "
            "backend's reference); left in place, nothing cancelled; the jobs it watched may "
            "still be running: %.200s",
            where,
            WATCHING_KEY,
            stored,
        )
        return None
    rendered = RenderedTaskInstanceFields.get_templated_fields(ti, **in_session)
    refusal = listener_refusal(
        record,
        rendered,
        try_number=getattr(ti, "try_number", None),
        max_tries=getattr(ti, "max_tries", None),
    )
    if refusal is not None:
        log.error("%s", refused_text(where, record, refusal))
        return None
    backend.delete(scope, WATCHING_KEY, **in_session)
    return record, rendered.get("hook_params")


class CancelOnKillPlugin(AirflowPlugin):
    """Registers this module's listener (Airflow >= 3.3; nothing on older versions, which have
    no task state store).

    Example: nothing to configure; ``airflow plugins`` lists ``airflow_provider_cancel``.
    """

    name = "airflow_provider_cancel"
    listeners = [sys.modules[__name__]] if HAS_TASK_STATE_STORE else []
