"""Cancel the jobs upstream tasks started when a task or a DAG run fails."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

from airflow_provider_cancel._compat import pull_xcoms
from airflow_provider_cancel.exceptions import InvalidJobIdError
from airflow_provider_cancel.job_ids import (
    duplicates_text,
    job_ids_and_duplicates,
    normalize_job_ids,
)
from airflow_provider_cancel.messages import describe_result, ids_text, outcome_level, shorten
from airflow_provider_cancel.status import CancelOutcome

log = logging.getLogger(__name__)


def collect_job_ids(where: str, sources: Iterable[tuple[str, Any]], xcom_key: str) -> list[str]:
    """The distinct ids of ``sources``, pairs of (task id, literal ids or the XCom it pushed).

    Shared by both callbacks, which must cancel what they can: a value that names no job is
    logged and skipped, never raised, so one bad source does not keep the others' jobs running.
    """
    found: list[str] = []
    duplicates = 0
    for task_id, value in sources:
        if value is None:
            log.warning(
                "%s: task %r pushed nothing under XCom key %r; no job of it to cancel",
                where,
                task_id,
                xcom_key,
            )
            continue
        try:
            ids, repeated = job_ids_and_duplicates(value, task=task_id)
        except InvalidJobIdError as error:
            log.error("%s: %s", where, error)
            continue
        found.extend(ids)
        duplicates += repeated
    distinct = list(dict.fromkeys(found))
    duplicates += len(found) - len(distinct)
    if duplicates:
        log.info("%s: %s", where, duplicates_text(duplicates))
    return distinct


def _task_ids(xcom_task_ids: str | Sequence[str] | None) -> list[str]:
    return [xcom_task_ids] if isinstance(xcom_task_ids, str) else list(xcom_task_ids or [])


@dataclass(eq=False)  # compared and hashed by identity, like any callback function
class CancelOnFailure:
    """An ``on_failure_callback`` (task or DAG level) that cancels jobs; made by
    ``cancel_on_failure(...)``.

    :param conn_id: a ``useapi`` or ``writetext`` connection.
    :param job_ids: ids to cancel, given literally (a string or a list).
    :param xcom_task_ids: task(s) whose XCom (a string or a list of ids) names jobs to cancel.
    :param xcom_key: the XCom key those tasks pushed the ids under.
    :param hook_params: passed to the hook.
    :param max_concurrency: how many cancels run at once.

    Best effort by design: it logs what it did and never raises, so the original failure stays
    the one the user sees. Runs in the task process, or in the DAG processor when Airflow runs
    the callback there (templates are not rendered there, which is why ids come from literals
    and XCom pulls rather than Jinja).

    Example::

        submit = PythonOperator(task_id="submit", python_callable=submit_jobs)
        wait = PythonOperator(
            task_id="wait_for_results",
            python_callable=wait_for_results,
            on_failure_callback=cancel_on_failure("useapi_default", xcom_task_ids="submit"),
        )
    """

    conn_id: str
    _: KW_ONLY
    job_ids: Any = None
    xcom_task_ids: str | Sequence[str] | None = None
    xcom_key: str = "return_value"
    hook_params: dict[str, Any] | None = None
    max_concurrency: int = 16

    def __post_init__(self) -> None:
        self.xcom_task_ids = _task_ids(self.xcom_task_ids)

    def __repr__(self) -> str:
        return f"cancel_on_failure({self.conn_id!r}, xcom_task_ids={self.xcom_task_ids!r})"

    def __call__(self, context: Any) -> None:
        """Cancel the jobs; log, never raise, when that fails."""
        try:
            self._cancel(context)
        except Exception:  # best effort: the original failure must stay visible
            log.exception("%r could not cancel the jobs", self)

    def _ids(self, context: Any) -> list[str]:
        sources: list[tuple[str, Any]] = (
            [] if self.job_ids is None else [(self._where(context), self.job_ids)]
        )
        for task_id in self.xcom_task_ids or []:
            try:
                sources.extend(self._pull(context, task_id))
            except Exception:  # still cancel the literal ids and the other tasks' jobs
                log.exception("%r: could not read the XCom of task %r", self, task_id)
        return collect_job_ids(repr(self), sources, self.xcom_key)

    def _pull(self, context: Any, task_id: str) -> list[tuple[str, Any]]:
        """(name, value) of each instance of ``task_id`` (each map index of a mapped task)."""
        ti = context.get("ti") or context.get("task_instance")
        if ti is None:
            raise LookupError("the callback context has no task instance to pull XCom with")
        return pull_xcoms(ti, task_id, self.xcom_key)

    @staticmethod
    def _where(context: Any) -> str:
        ti = context.get("ti") or context.get("task_instance")
        return getattr(ti, "task_id", None) or "on_failure_callback"

    def _cancel(self, context: Any) -> None:
        from airflow_provider_cancel.hooks import hook_for_connection

        job_ids = self._ids(context)
        if not job_ids:
            log.info("%r: no job ids to cancel", self)
            return
        try:
            hook = hook_for_connection(
                self.conn_id, {"pool_size": self.max_concurrency, **(self.hook_params or {})}
            )
            log.info("%r: cancelling %d job(s) on %s", self, len(job_ids), hook.describe_service())
            try:
                results = hook.cancel_jobs(job_ids, self.max_concurrency)
            finally:
                hook.close()
        except Exception as error:  # e.g. the connection is missing: name every job left
            self._left_running(job_ids, f"{type(error).__name__}: {error}")
            return
        for result in results:
            log.log(outcome_level(result.outcome), "%s", describe_result(result))
        failed = [r.job_id for r in results if r.outcome is CancelOutcome.ERROR]
        if failed:
            self._left_running(failed, "the cancel failed (see above)")

    def _left_running(self, job_ids: list[str], why: str) -> None:
        log.error(
            "%r could not cancel %d job(s), which may still be running (and costing): %s. %s",
            self,
            len(job_ids),
            ids_text(job_ids),
            shorten(why, 300),
        )


#: ``cancel_on_failure(conn_id, *, job_ids=None, xcom_task_ids=None, xcom_key="return_value",
#: hook_params=None, max_concurrency=16)`` returns the ``on_failure_callback``: the public name
#: of :class:`CancelOnFailure`, whose docstring says what each parameter means.
cancel_on_failure = CancelOnFailure


async def cancel_jobs_on_deadline(
    conn_id: str,
    job_ids: Any = None,
    xcom_task_ids: list[str] | None = None,
    xcom_key: str = "return_value",
    hook_params: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> str:
    """What :func:`cancel_on_deadline` makes Airflow await in the triggerer when a run misses
    its deadline: cancel the literal ids and those the named tasks of that run pushed.

    ``context`` is what Airflow 3.3 passes a deadline callback: ``{"dag_run": {...},
    "deadline": {...}}`` (``airflow/models/deadline.py``, ``Deadline.handle_miss``). The run's
    XCom is read through the triggerer's supervisor: each task's map indexes (``GetTaskStates``),
    then each instance's XCom (``XCom.get_one``, as ``ti.xcom_pull`` does in a task). Returns a one-line summary, which Airflow stores as the callback's output
    (a string column: Airflow 3.3.2's triggerer crashes storing a dict there). Best effort:
    logs and never raises.
    """
    from airflow.providers.common.compat.connection import get_async_connection

    from airflow_provider_cancel._compat import apull_run_xcom, arun_map_indexes
    from airflow_provider_cancel.hooks import hook_from_connection
    from airflow_provider_cancel.hooks.transport import holding_async_clients
    from airflow_provider_cancel.stopping import acancel_watched

    dag_run = (context or {}).get("dag_run") or {}
    dag_id, run_id = dag_run.get("dag_id"), dag_run.get("dag_run_id")
    where = f"Deadline missed by DAG {dag_id!r} run {run_id!r}"
    sources: list[tuple[str, Any]] = [] if job_ids is None else [("cancel_on_deadline", job_ids)]
    for task_id in xcom_task_ids or []:
        if not dag_id or not run_id:
            log.error("%s: the callback's context names no DAG run to read %r of", where, task_id)
            continue
        try:
            map_indexes = await arun_map_indexes(dag_id, run_id, task_id)
        except Exception:  # read it as an unmapped task, as before mapped tasks were read
            log.exception("%s: could not list the map indexes of task %r", where, task_id)
            map_indexes = [-1]
        for map_index in map_indexes:
            name = task_id if map_index < 0 else f"{task_id}[{map_index}]"
            try:
                value = await apull_run_xcom(dag_id, run_id, task_id, xcom_key, map_index)
            except Exception:  # still cancel the literal ids and the other instances' jobs
                log.exception("%s: could not read the XCom of task %r", where, name)
                continue
            sources.append((name, value))
    ids = collect_job_ids(where, sources, xcom_key)
    if not ids:
        log.info("%s: no job ids to cancel", where)
        return "no job ids to cancel"
    try:
        # Holding (not closing) the loop's shared clients: triggers use them too.
        async with holding_async_clients():
            hook = hook_from_connection(await get_async_connection(conn_id), hook_params)
            left = await acancel_watched(hook, ids, log=log, why=where)
    except Exception as error:
        log.error(
            "%s: could not cancel; these may still be running: %s (%s)",
            where,
            ids_text(ids),
            shorten(str(error), 300),
        )
        left = ids
    done = len(ids) - len(left)
    summary = f"cancelled {done} of {len(ids)} job(s)"
    return f"{summary}; may still be running: {ids_text(left)}" if left else summary


def cancel_on_deadline(
    conn_id: str,
    *,
    job_ids: Any = None,
    xcom_task_ids: str | Sequence[str] | None = None,
    xcom_key: str = "return_value",
    hook_params: dict[str, Any] | None = None,
) -> Any:
    """Return the callback for ``DeadlineAlert(callback=...)`` (Airflow >= 3.1) that cancels
    jobs when a DAG run misses its deadline.

    It is an ``AsyncCallback``: Airflow runs it in the triggerer, with the run in its context.
    It cancels ``job_ids`` (literal) and the ids that the tasks ``xcom_task_ids`` of *that run*
    pushed under ``xcom_key``. On an Airflow without deadline alerts it raises at DAG parse.

    :param conn_id: a ``useapi`` or ``writetext`` connection.
    :param job_ids: ids to cancel, given literally (a string or a list).
    :param xcom_task_ids: task(s) of the run whose XCom names jobs to cancel; for a mapped
        task, what every map index pushed.
    :param xcom_key: the XCom key those tasks pushed the ids under.
    :param hook_params: passed to the hook (JSON values: they are stored with the DAG).

    Example::

        @dag(
            deadline=DeadlineAlert(
                reference=DeadlineReference.DAGRUN_QUEUED_AT,
                interval=timedelta(hours=2),
                callback=cancel_on_deadline("useapi_default", xcom_task_ids="submit"),
            ),
        )
        def nightly_images(): ...
    """
    from airflow_provider_cancel._compat import AIRFLOW_VERSION, deadline_async_callback

    callback_class = deadline_async_callback()
    if callback_class is None:
        raise RuntimeError(
            f"cancel_on_deadline({conn_id!r}) needs DeadlineAlert callbacks, which Airflow "
            f"3.1 added; this is Airflow {AIRFLOW_VERSION}. Use cancel_on_failure or a "
            "JobStatusSensor with cancel_on_timeout instead."
        )
    where = "cancel_on_deadline"
    literal = normalize_job_ids(job_ids, task=where) if job_ids is not None else None
    tasks = _task_ids(xcom_task_ids)
    if not all(isinstance(t, str) and t.strip() for t in tasks):
        raise ValueError(f"{where}: xcom_task_ids must be task ids, got {xcom_task_ids!r}")
    if literal is None and not tasks:
        raise ValueError(f"{where}({conn_id!r}): give job_ids, xcom_task_ids or both")
    if not isinstance(conn_id, str) or not conn_id.strip():
        raise ValueError(f"{where}: conn_id must be a connection id, got {conn_id!r}")
    return callback_class(
        cancel_jobs_on_deadline,
        kwargs={
            "conn_id": conn_id,
            "job_ids": literal,
            "xcom_task_ids": tasks,
            "xcom_key": xcom_key,
            "hook_params": dict(hook_params or {}),
        },
    )
