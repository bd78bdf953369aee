"""The one place that knows where Airflow 2 and Airflow 3 keep things.

Everything else in the package imports Airflow names from here, so supporting a new Airflow
version means changing this file only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION

AIRFLOW_V_3_0_PLUS = int(AIRFLOW_VERSION.split(".", 1)[0]) >= 3

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator, conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.sdk.log import mask_secret
else:  # Airflow 2.11
    from airflow.configuration import conf  # type: ignore[no-redef]
    from airflow.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.hooks.base import BaseHook
    from airflow.models.baseoperator import BaseOperator
    from airflow.sensors.base import BaseSensorOperator
    from airflow.utils.log.secrets_masker import mask_secret

if TYPE_CHECKING:
    from airflow.sdk import Connection, Context
    from airflow.triggers import base as _triggers

    # Airflow's trigger classes as mypy should see them: their constructors are unannotated.
    class BaseTrigger(_triggers.BaseTrigger):
        def __init__(self, **kwargs: Any) -> None: ...

    class TriggerEvent(_triggers.TriggerEvent):
        def __init__(self, payload: Any, **kwargs: Any) -> None: ...


__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "Context",
    "TaskDeferred",
    "TriggerEvent",
    "aget_connection",
    "conf",
    "is_trigger_timeout",
    "mask_secret",
    "pull_xcom",
]


def __getattr__(name: str) -> Any:
    """Load the trigger classes and ``Context`` on first use (typed above for mypy).

    The trigger classes (same path in Airflow 2 and 3) pull in much of Airflow core; only the
    triggerer needs them, so they load on first use, not with every DAG file. ``Context`` is a
    type: the package only names it in annotations.
    """
    if name in ("BaseTrigger", "TriggerEvent"):
        from airflow.triggers import base

        return getattr(base, name)
    if name == "Context":
        if AIRFLOW_V_3_0_PLUS:
            from airflow.sdk import Context
        else:  # Airflow 2.11
            from airflow.utils.context import Context  # type: ignore[no-redef]
        return Context
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def aget_connection(conn_id: str) -> Connection:
    """Fetch a connection from async code without blocking the event loop.

    Airflow 3 has ``BaseHook.aget_connection``; calling the sync lookup from the triggerer's
    event loop can deadlock with the supervisor. Airflow 2 only has the sync lookup, which we
    run in a thread.
    """
    aget = getattr(BaseHook, "aget_connection", None)
    if aget is not None:
        conn: Any = await aget(conn_id)
        return conn
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)


def is_trigger_timeout(next_method: str, next_kwargs: dict[str, Any] | None) -> bool:
    """Whether a deferred task resumes because its deferral timed out, as Airflow 2 says it
    (``__fail__`` with this error); Airflow 3 raises ``TaskDeferralTimeout`` itself."""
    return (
        not AIRFLOW_V_3_0_PLUS
        and next_method == "__fail__"
        and (next_kwargs or {}).get("error") == "Trigger/execution timeout"
    )


def pull_xcom(ti: Any, task_id: str, key: str) -> Any:
    """``ti.xcom_pull`` that also works where Airflow 3 runs a DAG callback in-process.

    ``dag.test()`` (and ``airflow dags test``) run DAG-level callbacks in the scheduling
    process, where the SDK's XCom client has no supervisor to talk to; that process does have
    the metadata DB, so read the XCom there.
    """
    try:
        return ti.xcom_pull(task_ids=task_id, key=key)
    except ImportError:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            query = XComModel.get_many(
                run_id=ti.run_id, dag_ids=ti.dag_id, task_ids=task_id, key=key
            )
            row = session.scalars(query).first()
            return XComModel.deserialize_value(row) if row is not None else None
