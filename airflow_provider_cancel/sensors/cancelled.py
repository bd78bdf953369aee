"""Wait until remote jobs are really cancelled."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_cancel._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    conf,
    is_trigger_timeout,
)
from airflow_provider_cancel.exceptions import JobNotFoundError, missing_job_message
from airflow_provider_cancel.job_ids import (
    check_literal_job_ids,
    duplicates_text,
    job_ids_and_duplicates,
    normalize_job_ids,
)
from airflow_provider_cancel.messages import describe_state
from airflow_provider_cancel.status import JobState, JobStatus, assess, parse_statuses

if TYPE_CHECKING:
    from airflow_provider_cancel._compat import Context
    from airflow_provider_cancel.hooks.base import JobApiHook


class JobCancelledSensor(BaseSensorOperator):
    """Succeed when every job's normalised status is in ``success_statuses``.

    Fails fast (no retries) when a job reaches a terminal status outside that set, e.g. it
    completed before the cancel landed, or disappears (404) unless ``missing_job_status`` says
    how to read a missing job. ``unknown`` never counts as done. Works in ``poke`` and
    ``reschedule`` modes and deferrably (default from ``[operators] default_deferrable``); in
    every mode ``timeout`` and ``soft_fail`` mean the same. Deferrable mode checks once before
    deferring.

    :param conn_id: a ``useapi`` or ``writetext`` connection.
    :param job_id: templated; an id, a list, an ``XComArg`` or a Jinja string (as for
        :class:`~airflow_provider_cancel.operators.cancel.CancelJobOperator`).
    :param success_statuses: normalised statuses that count as done.
    :param missing_job_status: read a job the API no longer knows (404) as this status,
        e.g. ``"cancelled"`` for WriteText, which drops finished requests.
    :param hook_params: passed to the hook, e.g. ``{"retry_limit": 5}``.

    A ``job_id`` written literally that can only be a mistake (``None``, ``""``, ``[]``...)
    raises here, so the DAG fails to import; templated ids are checked when the task runs.

    Example::

        JobCancelledSensor(
            task_id="wait_cancelled",
            conn_id="writetext_default",
            job_id="{{ ti.xcom_pull(task_ids='submit') }}",
            poke_interval=10,
            timeout=600,
            deferrable=True,
        )
    """

    template_fields: Sequence[str] = ("conn_id", "job_id", "hook_params")
    ui_color = "#f7d6a8"

    def __init__(
        self,
        *,
        conn_id: str,
        job_id: Any,
        success_statuses: Sequence[str] = ("cancelled",),
        missing_job_status: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_literal_job_ids(job_id, task=self.task_id)
        self.conn_id = conn_id
        self.job_id = job_id
        self.success_statuses = sorted(
            status.value for status in parse_statuses(success_statuses, task=self.task_id)
        )
        self.missing_job_status = (
            next(iter(parse_statuses([missing_job_status], task=self.task_id))).value
            if missing_job_status is not None
            else None
        )
        self.deferrable = deferrable
        self.hook_params = hook_params or {}

    @cached_property
    def hook(self) -> JobApiHook:
        """The hook for ``conn_id``, built on first use."""
        from airflow_provider_cancel.hooks import hook_for_connection

        return hook_for_connection(self.conn_id, self.hook_params)

    def _job_ids(self) -> list[str]:
        return normalize_job_ids(self.job_id, task=self.task_id)

    def poke(self, context: Context) -> bool:
        """Read the jobs once: whether every one has reached a success status."""
        missing = JobStatus(self.missing_job_status) if self.missing_job_status else None
        try:
            states = self.hook.get_jobs(self._job_ids(), missing_status=missing)
        except JobNotFoundError as error:
            raise AirflowFailException(
                f"Task {self.task_id!r}: {missing_job_message(error)}"
            ) from None
        return self._judge(states)

    def _judge(self, states: dict[str, JobState]) -> bool:
        verdict = assess(states, parse_statuses(self.success_statuses))
        for job_id, state in states.items():
            line = describe_state(job_id, state.status.value, state.raw_status, state.message)
            self.log.info("%s", line)
        if verdict.failures:
            raise AirflowFailException(f"Task {self.task_id!r}: {verdict.message}")
        if not verdict.done:
            self.log.info("%s", verdict.message)
        return verdict.done

    def execute(self, context: Context) -> Any:
        """Wait for the jobs: poke, reschedule or defer to the trigger."""
        duplicates = job_ids_and_duplicates(self.job_id, task=self.task_id)[1]
        if duplicates:
            self.log.info("%s", duplicates_text(duplicates))
        if not self.deferrable:
            return super().execute(context)
        try:
            if self.poke(context):
                self.log.info("Every job already has a success status; not deferring")
                return None
        except AirflowSkipException:
            raise
        except AirflowFailException as error:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping (soft_fail): {error}") from error
            if getattr(self, "never_fail", False):  # Airflow 3: as in poke mode
                raise AirflowSkipException(f"Skipping (never_fail): {error}") from error
            raise
        except Exception as error:
            if getattr(self, "never_fail", False):
                raise AirflowSkipException(f"Skipping (never_fail): {error}") from error
            raise
        from airflow_provider_cancel.triggers.status import JobStatusTrigger

        self.defer(
            trigger=JobStatusTrigger(
                conn_id=self.conn_id,
                job_ids=self._job_ids(),
                success_statuses=list(self.success_statuses),
                poll_interval=self.poke_interval,
                hook_params=self.hook_params,
                missing_job_status=self.missing_job_status,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )
        return None

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context
    ) -> Any:
        """Resume after deferral; a trigger timeout is a sensor timeout."""
        # A timed-out deferral is a sensor timeout on every Airflow version (no retries).
        if is_trigger_timeout(next_method, next_kwargs):
            message = f"Task {self.task_id!r}: sensor timed out after {self.timeout:g}s"
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        return super().resume_execution(next_method, next_kwargs, context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        """Resume after the trigger's one event."""
        status, message = event.get("status"), event.get("message", "")
        for job_id, job in (event.get("jobs") or {}).items():
            line = describe_state(
                job_id, str(job.get("status")), job.get("raw_status"), job.get("message") or ""
            )
            self.log.info("%s", line)
        if status == "success":
            self.log.info("Every job reached a success status")
            return
        if status == "failed":
            raise AirflowFailException(f"Task {self.task_id!r}: {message}")
        raise AirflowException(f"Task {self.task_id!r}: polling failed: {message}")
