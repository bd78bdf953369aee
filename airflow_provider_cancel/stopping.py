"""Cancel the jobs a task watches when Airflow stops the task: bounded in time, each outcome
logged, never raising (the kill, the timeout or the deadline stays what the user sees).

Used by :class:`~airflow_provider_cancel.sensors.status.JobStatusSensor` (``on_kill`` and
timeouts, in the worker), :class:`~airflow_provider_cancel.triggers.status.JobStatusTrigger`
(``on_kill``, in the triggerer) and :func:`~airflow_provider_cancel.callbacks.cancel_on_deadline`
(in the triggerer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from airflow_provider_cancel.messages import describe_result, outcome_level
from airflow_provider_cancel.status import CancelOutcome, CancelResult, JobStatus

if TYPE_CHECKING:
    from airflow_provider_cancel.hooks.base import JobApiHook

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
    except asyncio.TimeoutError:
        log.error("%s: the cancel calls did not finish within %gs", why, budget)
        results = []
    return log_outcomes(log, results, why, job_ids)
