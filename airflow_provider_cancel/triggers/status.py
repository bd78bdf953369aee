"""The async poller behind a deferred :class:`JobStatusSensor`, and its cancel on kill."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow_provider_cancel._compat import BaseTrigger, TriggerEvent
from airflow_provider_cancel.exceptions import JobNotFoundError, missing_job_message
from airflow_provider_cancel.messages import ids_text, plural, shorten
from airflow_provider_cancel.status import JobStatus, assess, parse_statuses

STATE_LOOKUP_TIMEOUT = 20.0
"""Seconds to wait for Airflow to say the task's state before giving up (and not cancelling)."""

HAS_TRIGGER_ON_KILL = "on_kill" in vars(BaseTrigger)
"""Airflow >= 3.3 calls ``BaseTrigger.on_kill`` when a user acts on a deferred task (#65590)."""

MAX_POLL_INTERVAL = 7 * 24 * 3600.0
"""The longest ``poll_interval`` (a week) a trigger accepts, in seconds."""


def _refused(name: str, value: Any, need: str) -> ValueError:
    from airflow_provider_cancel.job_ids import _shown

    return ValueError(f"JobStatusTrigger: {name}={_shown(value)} {need}")


def _checked_kwargs(
    conn_id: Any,
    job_ids: Any,
    success_statuses: Any,
    poll_interval: Any,
    hook_params: Any,
    missing_job_status: Any,
    cancel_on_kill: Any,
) -> dict[str, Any]:
    """The trigger's kwargs, checked: they come from the ``trigger`` table, which anyone with
    write access to the metadata DB may edit. Raises ``ValueError`` naming the bad value."""
    import math

    from airflow_provider_cancel.job_ids import validate_job_id

    if not isinstance(conn_id, str) or not conn_id.strip() or len(conn_id) > 250:
        raise _refused("conn_id", conn_id, "must be a connection id (1 to 250 characters)")
    if not isinstance(job_ids, (list, tuple)) or not job_ids:
        raise _refused("job_ids", job_ids, "must be a non-empty list of job ids")
    ids = list(dict.fromkeys(validate_job_id(i, task="JobStatusTrigger") for i in job_ids))
    if success_statuses is None:
        success_statuses = [JobStatus.CANCELLED.value]
    if not isinstance(success_statuses, (list, tuple)):
        raise _refused("success_statuses", success_statuses, "must be a list of statuses")
    statuses = sorted(s.value for s in parse_statuses(success_statuses, task="JobStatusTrigger"))
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)):
        raise _refused("poll_interval", poll_interval, "must be a number of seconds")
    try:
        interval = float(poll_interval)
    except OverflowError:  # an int past float's range
        interval = math.inf
    if not (math.isfinite(interval) and 0 < interval <= MAX_POLL_INTERVAL):
        raise _refused(
            "poll_interval", poll_interval, f"must be > 0 and <= {MAX_POLL_INTERVAL:g} seconds"
        )
    if hook_params is None:
        hook_params = {}
    if not isinstance(hook_params, dict) or not all(isinstance(k, str) for k in hook_params):
        raise _refused("hook_params", hook_params, "must be a dict with string keys")
    if missing_job_status is not None:
        if not isinstance(missing_job_status, str):
            raise _refused("missing_job_status", missing_job_status, "must be a status or None")
        missing_job_status = next(
            iter(parse_statuses([missing_job_status], task="JobStatusTrigger"))
        ).value
    if not isinstance(cancel_on_kill, bool):
        raise _refused("cancel_on_kill", cancel_on_kill, "must be True or False")
    return {
        "conn_id": conn_id,
        "job_ids": ids,
        "success_statuses": statuses,
        "poll_interval": interval,
        "hook_params": dict(hook_params),
        "missing_job_status": missing_job_status,
        "cancel_on_kill": cancel_on_kill,
    }


def what_airflow_did(state: str | None) -> str:
    """What a user or Airflow did to a deferred task that now has ``state``: ``"was marked
    failed"``, ``"was cleared"``... (a run marked failed marks its deferred tasks failed)."""
    if state in ("failed", "success", "skipped"):
        return f"was marked {state}"
    if state in (None, "scheduled", "queued", "running", "restarting"):
        return "was cleared"  # a cleared task has no state, then is scheduled again
    return f"left deferral (it is now {state!r})"


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
        kwargs = _checked_kwargs(
            conn_id,
            job_ids,
            success_statuses,
            poll_interval,
            hook_params,
            missing_job_status,
            cancel_on_kill,
        )
        self.conn_id: str = kwargs["conn_id"]
        self.job_ids: list[str] = kwargs["job_ids"]
        self.success_statuses: list[str] = kwargs["success_statuses"]
        self.poll_interval: float = kwargs["poll_interval"]
        self.hook_params: dict[str, Any] = kwargs["hook_params"]
        self.missing_job_status: str | None = kwargs["missing_job_status"]
        self.cancel_on_kill: bool = kwargs["cancel_on_kill"]

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
                await self._finish(self._cancel_if_killed())
            raise

    async def on_kill(self) -> None:
        """Airflow >= 3.3: the deferred task was marked failed/success or cleared."""
        if self.cancel_on_kill:
            await self._finish(self._cancel_if_killed())

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

    def _task(self) -> str:
        return f"Task {getattr(getattr(self, 'task_instance', None), 'task_id', '?')!r}"

    async def _task_state(self) -> str | None:
        """The task instance's state now, as Airflow says it (bounded in time)."""
        from airflow_provider_cancel._compat import atask_instance_state

        ti = getattr(self, "task_instance", None)
        return await asyncio.wait_for(atask_instance_state(ti), STATE_LOOKUP_TIMEOUT)

    async def _cancel_if_killed(self) -> None:
        """Cancel the jobs if the task left deferral while this trigger ran; log, never raise."""
        from airflow.providers.common.compat.connection import get_async_connection

        from airflow_provider_cancel._compat import DEFERRAL_TIMED_OUT
        from airflow_provider_cancel.hooks import hook_from_connection
        from airflow_provider_cancel.hooks.transport import holding_async_clients
        from airflow_provider_cancel.stopping import acancel_watched

        task = self._task()
        try:
            state = await self._task_state()
        except Exception as error:  # unsure whether this is a kill: never cancel then
            self.log.warning(
                "%s: could not read the task instance's state (%s); not cancelling", task, error
            )
            return
        if state == DEFERRAL_TIMED_OUT or self._timed_out():
            # A timed-out deferral resumes the task, which cancels before it fails.
            self.log.info("%s timed out while deferred; the resumed task cancels", task)
            return
        if state == "deferred":
            self.log.info(
                "%s is still deferred (triggerer restart, or the trigger moved to another "
                "triggerer): not cancelling %s",
                task,
                plural(len(self.job_ids), "job"),
            )
            return
        why = f"{task} {what_airflow_did(state)}"
        try:
            # Holding (not closing) the loop's shared clients: other triggers use them too.
            async with holding_async_clients():
                hook = hook_from_connection(
                    await get_async_connection(self.conn_id), self.hook_params
                )
                await acancel_watched(hook, self.job_ids, log=self.log, why=why)
        except Exception as error:
            self.log.error(
                "%s: could not cancel; these may still be running: %s (%s)",
                why,
                ids_text(self.job_ids),
                shorten(str(error), 300),
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
                hook.describe_service(),
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
