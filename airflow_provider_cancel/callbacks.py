"""Cancel the jobs upstream tasks started when a task or a DAG run fails."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from airflow_provider_cancel._compat import pull_xcom
from airflow_provider_cancel.exceptions import InvalidJobIdError
from airflow_provider_cancel.job_ids import duplicates_text, job_ids_and_duplicates
from airflow_provider_cancel.messages import describe_result, outcome_level
from airflow_provider_cancel.status import CancelOutcome

log = logging.getLogger(__name__)


class CancelOnFailure:
    """Callable for ``on_failure_callback``: cancel given jobs and jobs named in XCom.

    Best effort by design: it logs what it did and never raises, so the original failure stays
    the one the user sees. Runs in the task process, or in the DAG processor when Airflow runs
    the callback there (templates are not rendered there, which is why ids come from literals
    and XCom pulls rather than Jinja).
    """

    def __init__(
        self,
        conn_id: str,
        *,
        job_ids: Any = None,
        xcom_task_ids: str | Sequence[str] | None = None,
        xcom_key: str = "return_value",
        hook_params: dict[str, Any] | None = None,
        max_concurrency: int = 16,
    ) -> None:
        self.conn_id = conn_id
        self.job_ids = job_ids
        self.xcom_task_ids = [xcom_task_ids] if isinstance(xcom_task_ids, str) else xcom_task_ids
        self.xcom_key = xcom_key
        self.hook_params = hook_params or {}
        self.max_concurrency = max_concurrency

    def __repr__(self) -> str:
        return f"cancel_on_failure({self.conn_id!r}, xcom_task_ids={self.xcom_task_ids!r})"

    def __call__(self, context: Any) -> None:
        """Cancel the jobs; log, never raise, when that fails."""
        try:
            self._cancel(context)
        except Exception:  # best effort: the original failure must stay visible
            log.exception("%r could not cancel the jobs", self)

    def _ids(self, context: Any) -> list[str]:
        found: list[Any] = []
        duplicates = 0
        if self.job_ids is not None:
            try:
                ids, duplicates = job_ids_and_duplicates(self.job_ids, task=self._where(context))
                found.extend(ids)
            except InvalidJobIdError as error:  # still cancel what the XCom tasks started
                log.error("%r: %s", self, error)
        for task_id in self.xcom_task_ids or []:
            try:
                value = self._pull(context, task_id)
            except Exception:  # still cancel the literal ids and the other tasks' jobs
                log.exception("%r: could not read the XCom of task %r", self, task_id)
                continue
            if value is None:
                log.warning(
                    "%r: task %r pushed nothing under XCom key %r; no job of it to cancel",
                    self,
                    task_id,
                    self.xcom_key,
                )
                continue
            try:
                ids, repeated = job_ids_and_duplicates(value, task=task_id)
                found.extend(ids)
                duplicates += repeated
            except InvalidJobIdError as error:  # still cancel what the other tasks started
                log.error("%r: %s", self, error)
        distinct = list(dict.fromkeys(found))
        duplicates += len(found) - len(distinct)
        if duplicates:
            log.info("%r: %s", self, duplicates_text(duplicates))
        return distinct

    def _pull(self, context: Any, task_id: str) -> Any:
        ti = context.get("ti") or context.get("task_instance")
        if ti is None:
            raise LookupError("the callback context has no task instance to pull XCom with")
        return pull_xcom(ti, task_id, self.xcom_key)

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
                self.conn_id, {"pool_size": self.max_concurrency, **self.hook_params}
            )
            log.info("%r: cancelling %d job(s) on %s", self, len(job_ids), hook.hook_name)
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
            ", ".join(job_ids),
            why,
        )


def cancel_on_failure(
    conn_id: str,
    *,
    job_ids: Any = None,
    xcom_task_ids: str | Sequence[str] | None = None,
    xcom_key: str = "return_value",
    hook_params: dict[str, Any] | None = None,
    max_concurrency: int = 16,
) -> Callable[[Any], None]:
    """Return an ``on_failure_callback`` (task or DAG level) that cancels jobs.

    :param conn_id: a ``useapi`` or ``writetext`` connection.
    :param job_ids: ids to cancel, given literally (a string or a list).
    :param xcom_task_ids: task(s) whose XCom (a string or a list of ids) names jobs to cancel.
    :param xcom_key: the XCom key those tasks pushed the ids under.
    :param hook_params: passed to the hook.

    Example::

        submit = PythonOperator(task_id="submit", python_callable=submit_jobs)
        wait = PythonOperator(
            task_id="wait_for_results",
            python_callable=wait_for_results,
            on_failure_callback=cancel_on_failure("useapi_default", xcom_task_ids="submit"),
        )
    """
    return CancelOnFailure(
        conn_id,
        job_ids=job_ids,
        xcom_task_ids=xcom_task_ids,
        xcom_key=xcom_key,
        hook_params=hook_params,
        max_concurrency=max_concurrency,
    )
