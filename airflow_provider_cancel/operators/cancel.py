"""The cancel step of a DAG: cancel one or many remote jobs, whatever the API."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator

from airflow_provider_cancel.job_ids import (
    check_literal_job_ids,
    duplicates_text,
    job_ids_and_duplicates,
    upstream_of,
)
from airflow_provider_cancel.messages import IDS_SHOWN, describe_result, outcome_level, shorten
from airflow_provider_cancel.status import CancelOutcome, CancelResult

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_cancel.hooks.base import JobApiHook


class CancelJobOperator(BaseOperator):
    """Cancel remote jobs by id and return a report of what happened to each.

    The connection's type picks the API (``useapi`` or ``writetext``). Ids are validated before
    any request; jobs are cancelled concurrently over one pooled session. Cancelling a job that
    already ended is not an error (outcome ``already_finished``). The task fails, after
    cancelling everything it can, if any job's outcome is ``error`` (or ``not_found`` while
    ``fail_on_not_found``), naming those ids.

    :param conn_id: a ``useapi`` or ``writetext`` connection.
    :param job_id: templated; an id, a list of ids, an ``XComArg`` (``submit.output``) or a
        Jinja string such as ``"{{ ti.xcom_pull(task_ids='submit') }}"`` (a rendered list
        literal is read back as a list; ints are converted to strings).
    :param max_concurrency: cancel calls in flight at once.
    :param fail_on_not_found: fail the task when the API does not know a job (404).
    :param confirm: read a job once when the cancel's answer does not say what happened (an
        empty or non-JSON 2xx), so the report says what really did: a finished job is
        ``already_finished``, a job still running after a non-API answer is ``error``. With
        ``False`` such answers are reported as ``cancelling`` unread (one round trip per job).
    :param hook_params: passed to the hook, e.g. ``{"retry_limit": 5, "timeout": 10}``.

    A ``job_id`` written literally in the DAG file that can only be a mistake (``None``,
    ``""``, ``[]``...) raises here, so the DAG fails to import; templated ids are checked when
    the task runs.

    Returns (XCom) ``{job_id: {"outcome", "status", "raw_status", "message"}}``.

    Example::

        CancelJobOperator(
            task_id="cancel",
            conn_id="useapi_default",
            job_id="{{ ti.xcom_pull(task_ids='submit') }}",
        )
    """

    template_fields: Sequence[str] = ("conn_id", "job_id", "hook_params")
    ui_color = "#f4a6a6"

    def __init__(
        self,
        *,
        conn_id: str,
        job_id: Any,
        max_concurrency: int = 16,
        fail_on_not_found: bool = True,
        confirm: bool = True,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(
                f"Task {self.task_id!r}: max_concurrency must be a positive int, "
                f"got {max_concurrency!r}"
            )
        check_literal_job_ids(job_id, task=self.task_id)
        self.conn_id = conn_id
        self.job_id = job_id
        self._upstream = upstream_of(job_id)  # read before rendering replaces it
        self.max_concurrency = max_concurrency
        self.fail_on_not_found = fail_on_not_found
        self.confirm = confirm
        self.hook_params = hook_params or {}

    @cached_property
    def hook(self) -> JobApiHook:
        """The hook for ``conn_id``, built on first use."""
        from airflow_provider_cancel.hooks import hook_for_connection

        return hook_for_connection(
            self.conn_id,
            {"pool_size": self.max_concurrency, "confirm": self.confirm, **self.hook_params},
        )

    def execute(self, context: Context) -> dict[str, dict[str, Any]]:
        """Cancel the jobs; the per-job report (also pushed to XCom)."""
        job_ids, duplicates = job_ids_and_duplicates(
            self.job_id, task=self.task_id, upstream=self._upstream
        )
        if duplicates:
            self.log.info("%s", duplicates_text(duplicates))
        hook = self.hook
        self.log.info(
            "Cancelling %d job(s) on %s (connection %r), up to %d at a time",
            len(job_ids),
            hook.describe_service(),
            self.conn_id,
            self.max_concurrency,
        )
        try:
            results = hook.cancel_jobs(job_ids, self.max_concurrency)
        finally:
            hook.close()
        for result in results:
            self.log.log(outcome_level(result.outcome), "%s", describe_result(result))
        report = {result.job_id: result.to_report() for result in results}
        failed = [result for result in results if self._is_failure(result)]
        if failed:
            # The report is still useful downstream (and in the UI) when the task fails.
            context["ti"].xcom_push(key="return_value", value=report)
            raise AirflowException(self._failure_message(failed, len(results)))
        return report

    def _is_failure(self, result: CancelResult) -> bool:
        if result.outcome is CancelOutcome.NOT_FOUND:
            return self.fail_on_not_found
        return result.outcome is CancelOutcome.ERROR

    def _failure_message(self, failed: list[CancelResult], total: int) -> str:
        shown = "; ".join(
            f"{shorten(r.job_id, 100)!r} ({r.outcome.value}: {shorten(r.message, 200)})"
            for r in failed[:IDS_SHOWN]
        )
        more = f"; and {len(failed) - IDS_SHOWN} more" if len(failed) > IDS_SHOWN else ""
        return (
            f"Task {self.task_id!r}: {len(failed)} of {total} job(s) were not cancelled: "
            f"{shown}{more}"
        )
