"""Cancel the jobs a task watches when Airflow stops the task: bounded in time, each outcome
logged, never raising (the kill, the timeout or the deadline stays what the user sees).

Used by :class:`~airflow_provider_cancel.sensors.status.JobStatusSensor` (``on_kill`` and
timeouts, in the worker), :class:`~airflow_provider_cancel.triggers.status.JobStatusTrigger`
(``on_kill``, in the triggerer), :func:`~airflow_provider_cancel.callbacks.cancel_on_deadline`
(in the triggerer) and the listener plugin :mod:`airflow_provider_cancel.plugin` (in the API
server).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from airflow_provider_cancel.messages import describe_result, outcome_level
from airflow_provider_cancel.status import CancelOutcome, CancelResult, JobStatus

if TYPE_CHECKING:
    from airflow_provider_cancel.hooks.base import JobApiHook

WATCHING_KEY = "airflow_provider_cancel.watching"
"""Task state store key (Airflow >= 3.3) under which a ``mode="reschedule"``
:class:`~airflow_provider_cancel.sensors.status.JobStatusSensor` with ``cancel_on_kill`` records,
while it waits between two pokes, what a kill must cancel: ``{"try_number", "max_tries",
"conn_id", "job_ids", "hook_params"}``. Written when a poke reschedules, removed when the next poke starts;
read by the listener plugin (a user stops the task between pokes) and by the sensor's next try
(the task was cleared between pokes)."""

RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "try_number": (int, type(None)),
    "max_tries": (int, type(None)),
    "conn_id": (str,),
    "job_ids": (list,),
    "hook_params": (dict,),
}
"""The keys of a :data:`WATCHING_KEY` record, and the types of their values."""

LEFT_RUNNING = (CancelOutcome.ERROR, CancelOutcome.NOT_FOUND, CancelOutcome.UNTRACKED)
"""Outcomes after which the job may still run (a 404 may be a wrong id; an untracked job runs
on upstream)."""


def kill_budget(hook: JobApiHook) -> float:
    """How long a kill may wait for the cancel: the longest one attempt of the hook may take
    (``connect_timeout + timeout``)."""
    return float(hook.settings.attempt_seconds)


def log_outcomes(
    log: Any, results: Sequence[CancelResult], why: str, job_ids: Sequence[str]
) -> list[str]:
    """One line per job (at the level its outcome deserves), and one ERROR line naming every
    id that may still run.

    Returns those ids."""
    for result in results:
        log.log(outcome_level(result.outcome), "%s", describe_result(result))
    answered = {result.job_id for result in results}
    left = [r.job_id for r in results if r.outcome in LEFT_RUNNING]
    left += [job_id for job_id in job_ids if job_id not in answered]
    if left:
        log.error(
            "%s: could not cancel %d job(s); these may still be running: %s",
            why,
            len(left),
            ", ".join(left),
        )
    return left


def cancel_watched(
    hook: JobApiHook, job_ids: list[str], *, log: Any, why: str, max_concurrency: int = 16
) -> list[str]:
    """Cancel ``job_ids`` from sync code, waiting at most :func:`kill_budget`.

    Returns the ids that may still be running; never raises."""
    log.info("%s: cancelling %d job(s) on %s", why, len(job_ids), hook.hook_name)
    budget = kill_budget(hook)
    pool = ThreadPoolExecutor(1, thread_name_prefix="cancel-on-stop")
    future = pool.submit(hook.cancel_jobs, job_ids, max_concurrency)
    try:
        results = future.result(timeout=budget)
    except FutureTimeout:
        log.error("%s: the cancel calls did not finish within %gs", why, budget)
        results = []
    except Exception as error:
        log.error("%s: the cancel failed: %s", why, hook.scrub(f"{type(error).__name__}: {error}"))
        results = []
    finally:
        pool.shutdown(wait=False)
    return log_outcomes(log, results, why, job_ids)


def cancel_with_own_hook(
    make_hook: Callable[[], JobApiHook], job_ids: list[str], *, log: Any, why: str
) -> list[str]:
    """:func:`cancel_watched` with a hook built for this cancel alone (a kill can interrupt a
    poke that is using the task's hook), closed afterwards.

    Returns the ids that may still be running; never raises."""
    try:
        hook = make_hook()
    except Exception as error:
        log.error(
            "%s: cannot cancel (%s); these may still be running: %s",
            why,
            error,
            ", ".join(job_ids),
        )
        return list(job_ids)
    try:
        return cancel_watched(hook, job_ids, log=log, why=why)
    finally:
        hook.close()


def cancel_recorded(stored: Any, *, log: Any, why: str) -> list[str]:
    """Cancel what a sensor recorded under :data:`WATCHING_KEY`; never raises."""
    from airflow_provider_cancel.hooks import hook_for_connection

    record = parse_record(stored)
    if record is None:
        log.error("%s: cannot cancel: %r holds no job ids this provider wrote", why, WATCHING_KEY)
        return []
    job_ids = list(record["job_ids"])
    return cancel_with_own_hook(
        lambda: hook_for_connection(record["conn_id"], record["hook_params"]),
        job_ids,
        log=log,
        why=why,
    )


async def acancel_watched(
    hook: JobApiHook, job_ids: list[str], *, log: Any, why: str, max_concurrency: int = 16
) -> list[str]:
    """Cancel ``job_ids`` from async code (the triggerer), waiting at most
    :func:`kill_budget`. Returns the ids that may still be running; never raises."""
    log.info("%s: cancelling %d job(s) on %s", why, len(job_ids), hook.hook_name)
    budget = kill_budget(hook)
    limit = asyncio.Semaphore(max_concurrency)

    async def one(job_id: str) -> CancelResult:
        async with limit:
            try:
                return await hook.acancel_job(job_id)
            except Exception as error:  # one bad job must not hide the others
                message = hook.scrub(f"{type(error).__name__}: {error}")
                return CancelResult(job_id, CancelOutcome.ERROR, JobStatus.UNKNOWN, None, message)

    try:
        results = list(
            await asyncio.wait_for(asyncio.gather(*(one(i) for i in job_ids)), timeout=budget)
        )
    except TimeoutError:
        log.error("%s: the cancel calls did not finish within %gs", why, budget)
        results = []
    return log_outcomes(log, results, why, job_ids)


def parse_record(stored: Any) -> dict[str, Any] | None:
    """The record under :data:`WATCHING_KEY` (a dict, or the JSON text a store backend keeps) as
    :meth:`JobStatusSensor._record_watching` writes it, or ``None`` for anything else."""
    try:
        record = json.loads(stored) if isinstance(stored, str) else stored
    except ValueError:
        return None
    if not isinstance(record, dict) or set(record) != set(RECORD_TYPES):
        return None
    for name, types in RECORD_TYPES.items():
        value = record[name]
        if not isinstance(value, types) or isinstance(value, bool):
            return None
    if not record["job_ids"] or not all(isinstance(i, str) for i in record["job_ids"]):
        return None
    return record
