"""Wait until remote jobs reach a status, and cancel them when Airflow stops the wait."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    BaseSensorOperator,
    conf,
)

from airflow_provider_cancel._compat import (
    AirflowRescheduleException,
    is_deferral_timeout,
    reschedule_context,
)
from airflow_provider_cancel.exceptions import JobNotFoundError, missing_job_message
from airflow_provider_cancel.job_ids import (
    check_literal_job_ids,
    duplicates_text,
    job_ids_and_duplicates,
    normalize_job_ids,
    upstream_of,
)
from airflow_provider_cancel.messages import describe_state
from airflow_provider_cancel.status import JobState, JobStatus, assess, parse_statuses

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_cancel.hooks.base import JobApiHook


def _is_timeout(error: BaseException) -> bool:
    """Whether the sensor's ``timeout`` or the task's ``execution_timeout`` ended the wait.

    With ``soft_fail`` Airflow turns a timeout into a skip: raised bare for ``timeout``, or
    ``from`` the timeout for ``execution_timeout`` and a timed-out deferral. A skip caused by
    anything else (a job that failed, with ``soft_fail``) is not a timeout.
    """
    if isinstance(error, (AirflowSensorTimeout, AirflowTaskTimeout)):
        return True
    if isinstance(error, AirflowSkipException):
        cause = error.__cause__
        return cause is None or isinstance(cause, (AirflowSensorTimeout, AirflowTaskTimeout))
    return False


def _flag(value: Any, name: str, task_id: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"Task {task_id!r}: {name} must be True or False, got {value!r}")
    return value


class JobStatusSensor(BaseSensorOperator):
    """Succeed when every job's normalised status is in ``success_statuses``; cancel the jobs
    when Airflow stops the wait.

    Fails fast (no retries) when a job reaches a terminal status outside that set, e.g. it
    failed, or disappears (404) unless ``missing_job_status`` says how to read a missing job.
    ``unknown`` never counts as done. Works in ``poke`` and ``reschedule`` modes and deferrably
    (default from ``[operators] default_deferrable``); in every mode ``timeout`` and
    ``soft_fail`` mean the same. Deferrable mode checks once before deferring.

    With ``cancel_on_kill`` (default) the jobs are cancelled when the task is killed while it
    waits: marked failed or success, cleared, its DAG run marked failed, or its worker stopped
    (``on_kill``); when deferred, by the trigger in the triggerer, after checking that the task
    really left deferral (a triggerer restart or a trigger moving to another triggerer never
    cancels). In ``mode="reschedule"`` on Airflow >= 3.3, between two pokes, it records the
    jobs in the task state store (:data:`~airflow_provider_cancel.stopping.WATCHING_KEY`): the
    provider's listener plugin cancels them when a user marks the task or its run, the next try
    when the task was cleared. With ``cancel_on_timeout`` (default) a ``timeout`` or
    ``execution_timeout`` that ends the wait cancels the jobs first, then fails the task (or
    skips it with ``soft_fail``).
    What each Airflow version allows is in ``docs/cancellation.md``.

    :param conn_id: a ``useapi`` or ``writetext`` connection.
    :param job_id: templated; an id, a list, an ``XComArg`` or a Jinja string (as for
        :class:`~airflow_provider_cancel.operators.cancel.CancelJobOperator`).
    :param success_statuses: normalised statuses that count as done.
    :param missing_job_status: read a job the API no longer knows (404) as this status,
        e.g. ``"cancelled"`` for WriteText, which drops finished requests.
    :param cancel_on_kill: cancel the jobs when Airflow kills the waiting task.
    :param cancel_on_timeout: cancel the jobs when ``timeout``/``execution_timeout`` ends the
        wait.
    :param hook_params: passed to the hook, e.g. ``{"retry_limit": 5}``.

    Example::

        JobStatusSensor(
            task_id="wait_done",
            conn_id="useapi_default",
            job_id="{{ ti.xcom_pull(task_ids='submit') }}",
            poke_interval=30,
            timeout=3600,
            deferrable=True,
        )
    """

    template_fields: Sequence[str] = ("conn_id", "job_id", "hook_params", "watched_ids_sha256")
    ui_color = "#f7d6a8"
    default_success_statuses: tuple[str, ...] = (JobStatus.COMPLETED.value,)

    def __init__(
        self,
        *,
        conn_id: str,
        job_id: Any,
        success_statuses: Sequence[str] | None = None,
        missing_job_status: str | None = None,
        cancel_on_kill: bool = True,
        cancel_on_timeout: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_literal_job_ids(job_id, task=self.task_id)
        self.conn_id = conn_id
        self.job_id = job_id
        self._upstream = upstream_of(job_id)  # read before rendering replaces it
        if success_statuses is None:
            success_statuses = self.default_success_statuses
        self.success_statuses = sorted(
            status.value for status in parse_statuses(success_statuses, task=self.task_id)
        )
        self.missing_job_status = (
            next(iter(parse_statuses([missing_job_status], task=self.task_id))).value
            if missing_job_status is not None
            else None
        )
        self.cancel_on_kill = _flag(cancel_on_kill, "cancel_on_kill", self.task_id)
        self.cancel_on_timeout = _flag(cancel_on_timeout, "cancel_on_timeout", self.task_id)
        self.deferrable = deferrable
        self.hook_params = hook_params or {}
        self.watched_ids_sha256: str | None = None
        """Set when the templates are rendered: the digest of the ids this try watches, stored
        by Airflow with the other rendered fields (what the listener checks a record against,
        :data:`~airflow_provider_cancel.stopping.WATCHED_IDS_FIELD`)."""
        self._stop_cancel_done = False
        if isinstance(self.hook_params, dict):  # literal: the DAG file may already tell
            from airflow_provider_cancel.hooks.apis import wait_refusal_at_parse

            refusal = wait_refusal_at_parse(
                conn_id, self.hook_params, frozenset(self.success_statuses)
            )
            if refusal is not None:
                raise ValueError(f"Task {self.task_id!r}: {refusal}")

    def _do_render_template_fields(
        self,
        parent: Any,
        template_fields: Any,
        context: Any,
        jinja_env: Any,
        seen_oids: set[int],
    ) -> None:
        """Render the templates (Airflow's own way), then the digest of the rendered ids, which
        Airflow then stores with them (for a mapped task too: it renders the unmapped one
        through here)."""
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is not self:
            return
        from airflow_provider_cancel.stopping import ids_digest

        try:
            self.watched_ids_sha256 = ids_digest(self._job_ids())
        except Exception:  # a bad job_id fails the poke, with its own message
            self.watched_ids_sha256 = None

    @cached_property
    def hook(self) -> JobApiHook:
        """The hook for the connection's type, built once per task run."""
        from airflow_provider_cancel.hooks import hook_for_connection

        return hook_for_connection(self.conn_id, self.hook_params)

    def _job_ids(self) -> list[str]:
        return normalize_job_ids(self.job_id, task=self.task_id, upstream=self._upstream)

    def poke(self, context: Context) -> bool:
        """Read every job once; True when all have a success status."""
        missing = JobStatus(self.missing_job_status) if self.missing_job_status else None
        refusal = self.hook.wait_refusal(frozenset(self.success_statuses))
        if refusal is not None:
            raise AirflowFailException(f"Task {self.task_id!r}: {refusal}")
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
        """Wait (poke, reschedule or deferred); cancel first when a timeout ends the wait."""
        self._take_over_watching(context)
        try:
            return self._execute(context)
        except AirflowRescheduleException:
            self._record_watching(context)
            raise
        except (AirflowSensorTimeout, AirflowTaskTimeout, AirflowSkipException) as error:
            self._cancel_after_timeout(error)
            raise

    def _watching_store(self, context: Context) -> Any:
        """Airflow >= 3.3's task state store, when a kill between two pokes must cancel."""
        if not self.cancel_on_kill or self.deferrable or self.mode != "reschedule":
            return None
        return context.get("task_state_store")

    def _record_watching(self, context: Context) -> None:
        """Leaving for a reschedule: record what a kill before the next poke must cancel.

        No process of the task runs until then; the listener plugin (a user marks the task or
        its run failed or success) or the next try (the task was cleared) reads the record.
        """
        store = self._watching_store(context)
        if store is None:
            return
        from airflow_provider_cancel.stopping import WATCHING_KEY

        try:
            job_ids = self._job_ids()
            ti = context.get("ti")
            record = {
                "try_number": getattr(ti, "try_number", None),
                "max_tries": getattr(ti, "max_tries", None),
                "conn_id": self.conn_id,
                "job_ids": job_ids,
                "hook_params": self.hook_params,
            }
            store.set(WATCHING_KEY, record)
        except Exception as error:
            self.log.warning(
                "Task %r: could not record the jobs it watches (%s); a kill before the next "
                "poke will not cancel them",
                self.task_id,
                error,
            )
            return
        self.log.info(
            "Task %r: recorded %d job(s) in the task state store (%r): a kill before the next "
            "poke cancels them",
            self.task_id,
            len(job_ids),
            WATCHING_KEY,
        )

    def _take_over_watching(self, context: Context) -> None:
        """A poke starts: drop the record; cancel what it names if the task was cleared since
        (no listener hook fires on a clear) and this try still cancels on a kill.

        A record carries no authority (a REST user may write it): this try cancels only with
        its own connection, only ids it renders itself, with its own ``hook_params`` clamped
        (:func:`~airflow_provider_cancel.stopping.safe_hook_params`), and only a record an
        earlier try can have written; any other is refused with an ERROR and left in place.
        The record goes whatever the sensor's flags are now: the DAG may have changed since it
        was written.
        """
        store = context.get("task_state_store")
        if store is None:
            return
        from airflow_provider_cancel.stopping import (
            WATCHING_KEY,
            cancel_with_connection,
            next_try_refusal,
            parse_record,
            refused_text,
            try_refusal,
            was_cleared,
        )

        where = f"Task {self.task_id!r}"
        try:
            stored = store.get(WATCHING_KEY)
            if stored is None:
                return
            if self._watching_store(context) is None:
                store.delete(WATCHING_KEY)
                return
        except Exception as error:
            self.log.warning("%s: could not read %r: %s", where, WATCHING_KEY, error)
            return
        ti = context.get("ti")
        try_number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
        record = parse_record(stored)
        refusal = (
            "it is not shaped as this provider writes it"
            if record is None
            else try_refusal(record, try_number, max_tries)
        )
        cleared = False
        if record is not None and refusal is None:
            cleared = was_cleared(record, try_number=try_number, max_tries=max_tries)
        if record is not None and cleared:  # only a record that makes this try cancel matters
            try:
                job_ids = self._job_ids()
            except Exception:  # the poke fails on them with its own message
                job_ids = []
            refusal = next_try_refusal(
                record,
                conn_id=self.conn_id,
                job_ids=job_ids,
                try_number=try_number,
                max_tries=max_tries,
            )
        if refusal is not None:
            self.log.error("%s", refused_text(where, stored, refusal))
            return
        try:
            store.delete(WATCHING_KEY)
        except Exception as error:
            self.log.warning("%s: could not remove %r: %s", where, WATCHING_KEY, error)
            return  # taken by nobody: cancelling now could cancel twice
        if cleared and record is not None:
            why = (
                f"{where}: try {record['try_number']} was cleared while it waited between two pokes"
            )
            cancel_with_connection(
                self.conn_id, self.hook_params, list(record["job_ids"]), log=self.log, why=why
            )

    def _execute(self, context: Context) -> Any:
        duplicates = job_ids_and_duplicates(
            self.job_id, task=self.task_id, upstream=self._upstream
        )[1]
        if duplicates:
            self.log.info("%s", duplicates_text(duplicates))
        if not self.deferrable:
            if self.reschedule:
                context = reschedule_context(context)
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
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
            timeout=self._deferral_timeout(context),
        )
        return None

    def _deferral_timeout(self, context: Context) -> timedelta:
        """``timeout``, or what is left of ``execution_timeout`` if that ends sooner.

        Airflow 3.3 stores only the ``defer(timeout=...)`` as the deferral's deadline (the
        execution API's defer route; ``task_runner.py`` marks deferral "TODO: handle timeout"),
        so a deferred task's ``execution_timeout`` would never fire without this.
        """
        timeout = timedelta(seconds=self.timeout)
        if self.execution_timeout is None:
            return timeout
        ran = datetime.now(UTC) - self._started(context)
        left: timedelta = self.execution_timeout - ran
        return max(min(timeout, left), timedelta(seconds=1))

    @staticmethod
    def _started(context: Context) -> datetime:
        started = getattr(context.get("ti"), "start_date", None)
        if not isinstance(started, datetime):
            return datetime.now(UTC)
        return started if started.tzinfo else started.replace(tzinfo=UTC)

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context
    ) -> Any:
        """Resume after deferral; a timed-out deferral cancels first, then fails (or skips)."""
        # A timed-out deferral resumes the task here, in a worker: cancel, then fail. The
        # deferral's deadline is the sooner of ``timeout`` (a sensor timeout: no retries) and
        # ``execution_timeout`` (a task timeout: retries apply), told apart by the task's start.
        if is_deferral_timeout(next_method, next_kwargs):
            error = self._timeout_error(context)
            self._cancel_after_timeout(error)
            raise error
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except (AirflowSensorTimeout, AirflowSkipException) as error:
            self._cancel_after_timeout(error)
            raise

    def _timeout_error(self, context: Context) -> BaseException:
        ran = datetime.now(UTC) - self._started(context)
        if self.execution_timeout is not None and ran >= self.execution_timeout:
            message = (
                f"Task {self.task_id!r}: execution_timeout of "
                f"{self.execution_timeout.total_seconds():g}s reached while deferred"
            )
            cause: BaseException = AirflowTaskTimeout(message)
        else:
            message = f"Task {self.task_id!r}: sensor timed out after {self.timeout:g}s"
            cause = AirflowSensorTimeout(message)
        if self.soft_fail:
            skip: BaseException = AirflowSkipException(f"Skipping (soft_fail): {message}")
            skip.__cause__ = cause
            return skip
        return cause

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

    def on_kill(self) -> None:
        """Cancel the watched jobs: the task was killed while it waited (marked failed or
        success, cleared, its run marked failed, its worker stopped) or its
        ``execution_timeout`` fired (Airflow calls ``on_kill`` for that too)."""
        if isinstance(sys.exc_info()[1], AirflowTaskTimeout):
            if self.cancel_on_timeout:
                self._cancel_on_stop("timed out (execution_timeout)")
            return
        if self.cancel_on_kill:
            self._cancel_on_stop(
                "was stopped (marked failed or success, cleared, or its worker stopped)"
            )

    def _cancel_after_timeout(self, error: BaseException) -> None:
        if self.cancel_on_timeout and _is_timeout(error):
            cause = error if isinstance(error, AirflowTaskTimeout) else error.__cause__
            which = "execution_timeout" if isinstance(cause, AirflowTaskTimeout) else "timeout"
            self._cancel_on_stop(f"timed out ({which})")

    def _cancel_on_stop(self, what: str) -> None:
        """Cancel the watched jobs at most once per try; log, never raise. ``what``: what
        happened to the task (``"timed out (timeout)"``)."""
        if self._stop_cancel_done:
            return
        self._stop_cancel_done = True
        why = f"Task {self.task_id!r} {what}"
        try:
            job_ids = self._job_ids()
        except Exception as error:
            self.log.error("%s: cannot cancel the jobs it watches: %s", why, error)
            return
        from airflow_provider_cancel.hooks import hook_from_connection
        from airflow_provider_cancel.stopping import cancel_with_own_hook

        cancel_with_own_hook(
            lambda: hook_from_connection(self.hook.connection, self.hook_params),
            job_ids,
            log=self.log,
            why=why,
        )
