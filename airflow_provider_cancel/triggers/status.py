"""The async poller behind a deferred :class:`JobCancelledSensor`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow_provider_cancel._compat import BaseTrigger, TriggerEvent
from airflow_provider_cancel.exceptions import JobNotFoundError, missing_job_message
from airflow_provider_cancel.status import JobStatus, assess, parse_statuses


class JobStatusTrigger(BaseTrigger):
    """Poll remote jobs until each reaches a success status, or one never can.

    Runs in the triggerer. All kwargs are JSON, so the trigger survives being serialised and
    re-created by another triggerer process. Every poll goes through the event loop's shared
    pooled async client (see ``JobApiHook.async_client``) and, for WriteText, the connection's
    cached access token: no poll builds a client or fetches a token.

    Yields exactly one event:
    ``{"status": "success" | "failed" | "error", "message": str,
    "jobs": {job_id: {"status", "raw_status", "message"}}}``.

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
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.job_ids = list(job_ids)
        self.success_statuses = list(success_statuses or [JobStatus.CANCELLED.value])
        self.poll_interval = float(poll_interval)
        self.hook_params = dict(hook_params or {})
        self.missing_job_status = missing_job_status

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The classpath and JSON kwargs the triggerer re-creates this trigger from."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "job_ids": self.job_ids,
                "success_statuses": self.success_statuses,
                "poll_interval": self.poll_interval,
                "hook_params": self.hook_params,
                "missing_job_status": self.missing_job_status,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the jobs settle; yield one event."""
        from airflow_provider_cancel.hooks.transport import holding_async_clients

        # Every trigger in the loop shares one pooled client; it stays open while any runs.
        async with holding_async_clients():
            async for event in self._poll():
                yield event

    async def _poll(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_cancel._compat import aget_connection
        from airflow_provider_cancel.hooks import hook_from_connection

        hook = None
        try:
            success = parse_statuses(self.success_statuses)
            missing = JobStatus(self.missing_job_status) if self.missing_job_status else None
            hook = hook_from_connection(await aget_connection(self.conn_id), self.hook_params)
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
