"""What ``apache-airflow-providers-common-compat`` does not offer: version flags, Airflow 3.3's
task state store, and the Airflow 2/3 differences of a few calls.

The package imports Airflow names from ``airflow.providers.common.compat.sdk`` (``BaseHook``,
``BaseOperator``, ``BaseSensorOperator``, ``conf``, the exceptions, ``mask_secret``, ``Context``,
``AirflowPlugin``, ``hookimpl``) and the async connection lookup from
``airflow.providers.common.compat.connection``; this module holds only the rest, each with why.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION

# common-compat's own flags live in its version_compat module, which it asks providers to copy,
# not import; ours are the ones the package needs.
_AIRFLOW_MINOR = tuple(int(part) for part in AIRFLOW_VERSION.split(".")[:2])
AIRFLOW_V_3_0_PLUS = _AIRFLOW_MINOR >= (3, 0)
AIRFLOW_V_3_1_PLUS = _AIRFLOW_MINOR >= (3, 1)
"""Airflow >= 3.1: ``DeadlineAlert`` callbacks (:func:`~airflow_provider_cancel.cancel_on_deadline`)."""

HAS_TASK_STATE_STORE = find_spec("airflow.state") is not None
"""Airflow >= 3.3: the task state store a reschedule-mode sensor records its jobs in, which the
listener plugin (:mod:`airflow_provider_cancel.plugin`) reads."""

# common-compat has no AirflowRescheduleException (the sensor raises it to reschedule itself):
# the task SDK has it from Airflow 3.2, airflow.exceptions before.
try:
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # Airflow 2.11 - 3.1
    from airflow.exceptions import AirflowRescheduleException

if TYPE_CHECKING:
    from airflow.triggers import base as _triggers

    # Airflow's trigger classes as mypy should see them: their constructors are unannotated.
    class BaseTrigger(_triggers.BaseTrigger):
        def __init__(self, **kwargs: Any) -> None: ...

    class TriggerEvent(_triggers.TriggerEvent):
        def __init__(self, payload: Any, **kwargs: Any) -> None: ...


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "DEFERRAL_TIMED_OUT",
    "HAS_TASK_STATE_STORE",
    "AirflowRescheduleException",
    "BaseTrigger",
    "TriggerEvent",
    "apull_run_xcom",
    "arun_map_indexes",
    "atask_instance_state",
    "deadline_async_callback",
    "is_deferral_timeout",
    "pull_xcoms",
    "reschedule_context",
]


def __getattr__(name: str) -> Any:
    """Load the trigger classes on first use (typed above for mypy).

    common-compat does not offer them (their path is the same in Airflow 2 and 3); they pull in
    much of Airflow core and only the triggerer needs them, so they load on first use, not with
    every DAG file.
    """
    if name in ("BaseTrigger", "TriggerEvent"):
        from airflow.triggers import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _ParsedRescheduleDate:
    """A task instance whose first reschedule date is a datetime: Airflow 3.0's in-process
    supervisor (``airflow dags test``) hands it over as ISO text, which ``BaseSensorOperator``
    then subtracts from a datetime (TypeError after the first reschedule)."""

    def __init__(self, ti: Any) -> None:
        self._ti = ti

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ti, name)

    def get_first_reschedule_date(self, context: Any) -> Any:
        from datetime import datetime

        first = self._ti.get_first_reschedule_date(context)
        return datetime.fromisoformat(first) if isinstance(first, str) else first


def reschedule_context(context: Any) -> Any:
    """``context`` for ``BaseSensorOperator.execute`` in reschedule mode: on Airflow 3.0 only,
    with the task instance's first reschedule date read as a datetime (see above)."""
    if AIRFLOW_V_3_1_PLUS or not AIRFLOW_V_3_0_PLUS or "ti" not in context:
        return context
    return {**context, "ti": _ParsedRescheduleDate(context["ti"])}


def is_deferral_timeout(next_method: str, next_kwargs: dict[str, Any] | None) -> bool:
    """Whether a deferred task resumes because its deferral timed out, on any version."""
    if next_method != "__fail__":
        return False
    error = (next_kwargs or {}).get("error")
    return error in ("Trigger/execution timeout", "Trigger timeout")


def _instance_name(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def pull_xcoms(ti: Any, task_id: str, key: str) -> list[tuple[str, Any]]:
    """What each instance of ``task_id`` in ``ti``'s run pushed under ``key``: one
    ``(name, value)`` for an unmapped task, one per map index (``"submit[2]"``) for a mapped one;
    ``[(task_id, None)]`` when nothing was pushed.

    ``ti.xcom_pull`` with a *list* of task ids answers a list of every instance's value on
    Airflow 2 and 3 (with one id it answers a mapped task of one index, or its first, as if it
    were unmapped). ``dag.test()`` (and ``airflow dags test``) run DAG-level callbacks in the
    scheduling process, where Airflow 3's XCom client has no supervisor to talk to; that
    process does have the metadata DB, so every map index's row is read there.
    """
    try:
        values = ti.xcom_pull(task_ids=[task_id], key=key)
    except ImportError:  # Airflow 3, no supervisor: a DAG callback run in-process
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            query = XComModel.get_many(
                run_id=ti.run_id, dag_ids=ti.dag_id, task_ids=task_id, key=key
            )
            rows = session.scalars(query.order_by(None).order_by(XComModel.map_index)).all()
            pulled = [
                (_instance_name(task_id, row.map_index), XComModel.deserialize_value(row))
                for row in rows
            ]
        return pulled or [(task_id, None)]
    found = [value for value in values or [] if value is not None]
    if len(found) <= 1:
        return [(task_id, found[0] if found else None)]
    return [(f"{task_id}[{index}]", value) for index, value in enumerate(found)]


DEFERRAL_TIMED_OUT = "deferral timed out"
"""What :func:`atask_instance_state` answers on Airflow 2 for a deferral that timed out."""


async def atask_instance_state(ti: Any) -> str | None:
    """The current state of a trigger's task instance, read from the triggerer.

    Airflow 3: ``RuntimeTaskInstance.get_task_states`` through the triggerer's supervisor (the
    way the standard provider's ``WorkflowTrigger`` reads states; triggers have no DB access).
    Airflow 2: the metadata DB, in a thread. ``None`` means no state (a cleared task).
    """
    if ti is None:
        raise LookupError("the trigger has no task instance")
    from asgiref.sync import sync_to_async

    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        map_index = getattr(ti, "map_index", -1)
        states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
            dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=map_index
        )
        key = ti.task_id if map_index is None or map_index < 0 else f"{ti.task_id}_{map_index}"
        runs = states.get(ti.run_id)
        if runs is None or key not in runs:
            raise LookupError(f"no task instance {key!r} in run {ti.run_id!r}")
        state = runs[key]
        return None if state is None else str(getattr(state, "value", state))

    def read() -> str | None:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        with create_session() as session:
            row = (
                session.query(TaskInstance.state, TaskInstance.next_method)
                .filter_by(
                    dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index
                )
                .one_or_none()
            )
        if row is None:
            raise LookupError(f"no task instance {ti.task_id!r} in run {ti.run_id!r}")
        if row.next_method == "__fail__":
            return DEFERRAL_TIMED_OUT
        return None if row.state is None else str(getattr(row.state, "value", row.state))

    return await sync_to_async(read)()


def deadline_async_callback() -> Any:
    """``AsyncCallback`` for ``DeadlineAlert`` (Airflow >= 3.1), or ``None`` before that."""
    try:
        from airflow.sdk.definitions.callback import AsyncCallback
    except ImportError:
        try:
            from airflow.sdk.definitions.deadline import AsyncCallback
        except ImportError:
            return None
    return AsyncCallback


async def arun_map_indexes(dag_id: str, run_id: str, task_id: str) -> list[int]:
    """A task's map indexes in a given run, read from the triggerer (Airflow 3): ``[-1]`` for
    an unmapped task (or a mapped one not expanded yet), else each index, in order.

    ``RuntimeTaskInstance.get_task_states`` asks the triggerer's supervisor (``GetTaskStates``);
    the execution API's ``/task-instances/states`` keys a run's instances ``<task_id>`` when
    unmapped and ``<task_id>_<map_index>`` when mapped. Asking for one task at a time keeps those
    keys unambiguous (``submit_1`` cannot be another task's).
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
    from asgiref.sync import sync_to_async

    states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
        dag_id=dag_id, task_ids=[task_id], run_ids=[run_id]
    )
    keys = states.get(run_id) or {}
    if not keys:
        raise LookupError(f"no task {task_id!r} in run {run_id!r}")
    return sorted(-1 if k == task_id else int(k.removeprefix(f"{task_id}_")) for k in keys)


async def apull_run_xcom(dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
    """A task instance's XCom in a given run, read from the triggerer (Airflow 3).

    ``XCom.get_one`` asks the triggerer's supervisor (``GetXCom``, which takes a map index),
    which the triggerer serves like a worker's; it is what ``ti.xcom_pull`` uses, with the
    configured backend.
    """
    from airflow.providers.common.compat.sdk import XCom
    from asgiref.sync import sync_to_async

    return await sync_to_async(XCom.get_one)(
        key=key, dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index
    )
