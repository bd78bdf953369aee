"""The async poller behind a deferred :class:`JobStatusSensor`, and its cancel on kill."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow_provider_cancel._compat import BaseTrigger, TriggerEvent
from airflow_provider_cancel.exceptions import JobNotFoundError, missing_job_message
from airflow_provider_cancel.status import JobStatus, assess, parse_statuses

STATE_LOOKUP_TIMEOUT = 20.0
"""Seconds to wait for Airflow to say the task's state before giving up (and not cancelling)."""

HAS_TRIGGER_ON_KILL = "on_kill" in vars(BaseTrigger)
"""Airflow >= 3.3 calls ``BaseTrigger.on_kill`` when a user acts on a deferred task (#65590)."""


class JobStatusTrigger(BaseTrigger):
    """Poll remote jobs until each reaches a success status, or one never can.

    Runs in the triggerer. All kwargs are JSON, so the trigger survives being serialised and
    re-created by another triggerer process. Every poll goes through the event loop's shared
    pooled async client (see ``JobApiHook.async_client``) and, for WriteText, the connection's
    cached access token: no poll builds a client or fetches a token.

    Yields exactly one event:
    ``{"status": "success" | "failed" | "error", "message": str,
    "jobs": {job_id: {"status", "raw_status", "message"}}}``.

    With ``cancel_on_kill`` it cancels the jobs when the deferred task is killed (marked failed
    or success, cleared, its run marked failed): from ``on_kill`` on Airflow >= 3.3, from the
    ``CancelledError`` Airflow injects on older versions. Airflow calls both on a triggerer
    redistribution too (apache/airflow#73454), and the ``CancelledError`` also on a triggerer
    shutdown, so the trigger first asks Airflow for its task instance's state and cancels only
    when the task is no longer deferred.

    Example::

        JobStatusTrigger(conn_id="writetext_default", job_ids=["r-1", "r-2"], poll_interval=5)
    """

    def __init__(
        self,
        conn_id: str,
        job_ids: Sequence[str],
        success_statuses: list[str] | None = None,
        poll_interval: float = 5.0,
        hook_params: dict[str, Any] | None = None,
        missing_job_status: str | None = None,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.job_ids = list(job_ids)
        self.success_statuses = list(success_statuses or [JobStatus.CANCELLED.value])
        self.poll_interval = float(poll_interval)
        self.hook_params = dict(hook_params or {})
        self.missing_job_status = missing_job_status
        self.cancel_on_kill = bool(cancel_on_kill)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The classpath and JSON kwargs Airflow stores in the ``trigger`` table."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "job_ids": self.job_ids,
                "success_statuses": self.success_statuses,
                "poll_interval": self.poll_interval,
                "hook_params": self.hook_params,
                "missing_job_status": self.missing_job_status,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until every job has a success status; yield one event (or an error event)."""
        from airflow_provider_cancel.hooks.transport import holding_async_clients

        # Every trigger in the loop shares one pooled client; it stays open while any runs.
        try:
            async with holding_async_clients():
                async for event in self._poll():
                    yield event
        except asyncio.CancelledError:
            if self.cancel_on_kill and not HAS_TRIGGER_ON_KILL:
                await self._finish(self._cancel_if_killed("trigger cancelled"))
            raise

    async def on_kill(self) -> None:
        """Airflow >= 3.3: the deferred task was marked failed/success or cleared."""
        if self.cancel_on_kill:
            await self._finish(self._cancel_if_killed("trigger on_kill"))

    async def _finish(self, work: Any) -> None:
        """Run ``work`` to its end even if this task is cancelled again meanwhile.

        Airflow 3.3's triggerer re-sends the cancel to a killed trigger on every loop until
        its task ends (``cancel_triggers`` drains ``to_cancel``, which the supervisor refills
        from ``cancelling_triggers``), so an ``on_kill`` that takes longer than one loop would
        be cut short. ``work`` bounds itself (state lookup and cancel calls have timeouts).
        """
        task = asyncio.ensure_future(work)
        while True:
            try:
                await asyncio.shield(task)
                return
            except asyncio.CancelledError:
                if task.done():
                    return

    def _timed_out(self) -> bool:
        timeout_after = getattr(self, "timeout_after", None)  # set by Airflow 3's triggerer
        if not isinstance(timeout_after, datetime):
            return False
        if timeout_after.tzinfo is None:
            timeout_after = timeout_after.replace(tzinfo=UTC)
        return timeout_after <= datetime.now(UTC)

    async def _cancel_if_killed(self, why: str) -> None:
        """Cancel the jobs if the task left deferral; log, never raise."""
        from airflow.providers.common.compat.connection import get_async_connection

        from airflow_provider_cancel._compat import DEFERRAL_TIMED_OUT, atask_instance_state
        from airflow_provider_cancel.hooks import hook_from_connection
        from airflow_provider_cancel.hooks.transport import holding_async_clients
        from airflow_provider_cancel.stopping import acancel_watched

        ti = getattr(self, "task_instance", None)
        where = f"Task {getattr(ti, 'task_id', '?')!r}: {why}"
        try:
            state = await asyncio.wait_for(atask_instance_state(ti), STATE_LOOKUP_TIMEOUT)
        except Exception as error:  # unsure whether this is a kill: never cancel then
            self.log.warning(
                "%s: could not read the task instance's state (%s); not cancelling", where, error
            )
            return
        if state == DEFERRAL_TIMED_OUT or self._timed_out():
            # A timed-out deferral resumes the task, which cancels before it fails.
            self.log.info("%s at its timeout; the resumed task handles the timeout", where)
            return
        if state == "deferred":
            self.log.info(
                "%s, but the task is still deferred (triggerer restart or trigger moved to "
                "another triggerer); not cancelling %d job(s)",
                where,
                len(self.job_ids),
            )
            return
        self.log.info("%s: the task is now %r", where, state)
        try:
            # Holding (not closing) the loop's shared clients: other triggers use them too.
            async with holding_async_clients():
                hook = hook_from_connection(
                    await get_async_connection(self.conn_id), self.hook_params
                )
                await acancel_watched(hook, self.job_ids, log=self.log, why=where)
        except Exception as error:
            self.log.error(
                "%s: could not cancel; these may still be running: %s (%s)",
                where,
                ", ".join(self.job_ids),
                error,
            )

    async def _poll(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.common.compat.connection import get_async_connection

        from airflow_provider_cancel.hooks import hook_from_connection

        hook = None
        try:
            success = parse_statuses(self.success_statuses)
            missing = JobStatus(self.missing_job_status) if self.missing_job_status else None
            hook = hook_from_connection(await get_async_connection(self.conn_id), self.hook_params)
            self.log.info(
                "Polling %d job(s) on %s every %gs",
                len(self.job_ids),
                hook.hook_name,
                self.poll_interval,
            )
            while True:
                states = await hook.aget_jobs(self.job_ids, missing_status=missing)
                verdict = assess(states, success)
                if verdict.done or verdict.failures:
                    yield TriggerEvent(
                        {
                            "status": "success" if verdict.done else "failed",
                            "message": verdict.message,
                            "jobs": {job_id: s.to_dict() for job_id, s in states.items()},
                        }
                    )
                    return
                self.log.debug("%s", verdict.message)
                await asyncio.sleep(self.poll_interval)
        except JobNotFoundError as error:
            yield TriggerEvent(
                {"status": "failed", "message": missing_job_message(error), "jobs": {}}
            )
        except Exception as error:  # an event explains the failure to the task; a crash would not
            message = hook.scrub(str(error)) if hook is not None else str(error)
            yield TriggerEvent(
                {"status": "error", "message": f"{type(error).__name__}: {message}", "jobs": {}}
            )
