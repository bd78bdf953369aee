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
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from airflow_provider_cancel.exceptions import NOT_SENT
from airflow_provider_cancel.messages import describe_result, ids_text, outcome_level, shorten
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

SAFE_HOOK_PARAMS: dict[str, float | None] = {
    "service": None,
    "api_version": None,
    "confirm": None,
    "retry_limit": 1,
    "retry_delay": 1.0,
    "max_retry_wait": 5.0,
    "connect_timeout": 4.0,
    "timeout": 8.0,
}
"""The hook params a cancel from a record (the listener's, the next try's) uses, with the
upper bound of each number: at most two attempts of 12 s and one wait of 5 s, under 30 s in
all. Other keys are dropped."""

WATCHED_IDS_FIELD = "watched_ids_sha256"
"""The template field in which :class:`~airflow_provider_cancel.sensors.status.JobStatusSensor`
keeps :func:`ids_digest` of the ids it rendered, so that Airflow stores it with the task's
other rendered fields (``RenderedTaskInstanceFields``), which only the task's own worker can
write (the execution API's ``PUT /task-instances/{id}/rtif``, ``ti:self``). The listener
cancels a record's ids only when they hash to it: the rendered ``job_id`` itself is cut at
``[core] max_templated_field_length`` (4096 characters by default)."""


def ids_digest(job_ids: Sequence[str]) -> str:
    """The SHA-256 of ``job_ids`` (in order), in hex."""
    text = json.dumps(list(job_ids), ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def safe_hook_params(params: Any) -> dict[str, Any]:
    """``params`` reduced to :data:`SAFE_HOOK_PARAMS`, numbers clamped (a missing one set to
    its bound, so a connection's extra cannot lengthen the cancel); anything but a dict is
    read as ``{}``."""
    if not isinstance(params, dict):
        params = {}
    safe: dict[str, Any] = {}
    for name, bound in SAFE_HOOK_PARAMS.items():
        value: Any = params.get(name)
        if bound is None:
            if isinstance(value, bool if name == "confirm" else str):
                safe[name] = value
            continue
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            number = bound
        if not 0 <= number <= bound or (number == 0 and name.endswith("timeout")):
            number = bound
        safe[name] = int(number) if name == "retry_limit" else number
    return safe


def kill_budget(hook: JobApiHook) -> float:
    """How long a kill may send cancels: the longest one attempt of the hook may take
    (``connect_timeout + timeout``). No request starts after it; the answers of those sent
    arrive within one more attempt's time."""
    return float(hook.settings.attempt_seconds)


def log_outcomes(
    log: Any, results: Sequence[CancelResult], why: str, job_ids: Sequence[str]
) -> list[str]:
    """One line per job that was sent (at the level its outcome deserves), and one ERROR line
    naming a few of the ids that may still run, and how many.

    Returns those ids."""
    answered = {result.job_id for result in results}
    not_sent = [
        r.job_id for r in results if r.outcome is CancelOutcome.ERROR and NOT_SENT in r.message
    ]
    skipped = set(not_sent)
    for result in results:
        if result.job_id not in skipped:
            log.log(outcome_level(result.outcome), "%s", describe_result(result))
    left = [r.job_id for r in results if r.outcome in LEFT_RUNNING]
    unanswered = [job_id for job_id in job_ids if job_id not in answered]
    left += unanswered
    if not_sent or unanswered:
        log.error(
            "%s: %d cancel(s) not sent (the time ran out) and %d not answered in time",
            why,
            len(not_sent),
            len(unanswered),
        )
    if left:
        log.error(
            "%s: could not cancel %d job(s); these may still be running: %s",
            why,
            len(left),
            ids_text(left),
        )
    return left


def cancel_watched(
    hook: JobApiHook, job_ids: list[str], *, log: Any, why: str, max_concurrency: int = 16
) -> list[str]:
    """Cancel ``job_ids`` from sync code: requests go out for :func:`kill_budget` at most, and
    the wait for their answers ends one attempt's time later.

    Returns the ids that may still be running; never raises."""
    log.info("%s: cancelling %d job(s) on %s", why, len(job_ids), hook.hook_name)
    budget = kill_budget(hook)
    hook.stop_sending_at(time.monotonic() + budget)
    pool = ThreadPoolExecutor(1, thread_name_prefix="cancel-on-stop")
    future = pool.submit(hook.cancel_jobs, job_ids, max_concurrency)
    try:
        results = future.result(timeout=budget + kill_budget(hook))
    except FutureTimeout:
        log.error("%s: the cancel calls did not finish within %gs", why, 2 * budget)
        results = []
    except Exception as error:
        reason = shorten(hook.scrub(f"{type(error).__name__}: {error}"), 300)
        log.error("%s: the cancel failed: %s", why, reason)
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
            shorten(str(error), 300),
            ids_text(job_ids),
        )
        return list(job_ids)
    try:
        return cancel_watched(hook, job_ids, log=log, why=why)
    finally:
        hook.close()


def cancel_with_connection(
    conn_id: str, hook_params: Any, job_ids: list[str], *, log: Any, why: str
) -> list[str]:
    """Cancel ``job_ids`` with connection ``conn_id`` and ``hook_params`` reduced to
    :func:`safe_hook_params` (the listener's and the next try's cancels); never raises."""
    from airflow_provider_cancel.hooks import hook_for_connection

    params = safe_hook_params(hook_params)
    return cancel_with_own_hook(
        lambda: hook_for_connection(conn_id, params), job_ids, log=log, why=why
    )


async def acancel_watched(
    hook: JobApiHook, job_ids: list[str], *, log: Any, why: str, max_concurrency: int = 16
) -> list[str]:
    """Cancel ``job_ids`` from async code (the triggerer), bounded as :func:`cancel_watched`.
    Returns the ids that may still be running; never raises."""
    log.info("%s: cancelling %d job(s) on %s", why, len(job_ids), hook.hook_name)
    budget = kill_budget(hook)
    hook.stop_sending_at(time.monotonic() + budget)
    limit = asyncio.Semaphore(max_concurrency)

    async def one(job_id: str) -> CancelResult:
        async with limit:
            try:
                return await hook.acancel_job(job_id)
            except Exception as error:  # one bad job must not hide the others
                message = shorten(hook.scrub(f"{type(error).__name__}: {error}"), 300)
                return CancelResult(job_id, CancelOutcome.ERROR, JobStatus.UNKNOWN, None, message)

    tasks = [asyncio.ensure_future(one(job_id)) for job_id in job_ids]
    if not tasks:
        return []
    done, pending = await asyncio.wait(tasks, timeout=budget + kill_budget(hook))
    for task in pending:
        task.cancel()
    if pending:
        log.error("%s: the cancel calls did not finish within %gs", why, 2 * budget)
        await asyncio.wait(pending)
    results = [task.result() for task in tasks if task in done]
    return log_outcomes(log, results, why, job_ids)


def try_refusal(record: dict[str, Any], try_number: Any, max_tries: Any) -> str | None:
    """Why ``record`` cannot have been written by a try of this task instance (now at
    ``try_number``, ``max_tries``), or ``None``."""
    recorded_try, recorded_max = record["try_number"], record["max_tries"]
    if not isinstance(try_number, int) or not isinstance(max_tries, int):
        return "the task instance's try number is not known"
    if (
        recorded_try is None
        or recorded_max is None
        or not 1 <= recorded_try <= try_number
        or not 0 <= recorded_max <= max_tries
    ):
        return (
            f"it names try {shorten(repr(recorded_try), 40)} with max_tries "
            f"{shorten(repr(recorded_max), 40)}, which no try of the task instance (now try "
            f"{try_number}, max_tries {max_tries}) can have written"
        )
    return None


def listener_refusal(
    record: dict[str, Any], rendered: Any, *, try_number: Any, max_tries: Any
) -> str | None:
    """Why the listener must not cancel what ``record`` names, or ``None``: it must name the
    task instance's current try, the connection the task rendered for it and exactly the ids
    whose :func:`ids_digest` the task rendered (``rendered``: the task instance's rendered
    template fields, as Airflow stores them)."""
    why = try_refusal(record, try_number, max_tries)
    if why is not None:
        return why
    if record["try_number"] != try_number:
        return f"it was written by try {record['try_number']}; the task instance is at try {try_number}"
    if not isinstance(rendered, dict):
        return (
            "Airflow holds no rendered template fields for the task instance (they are kept "
            "for the last [core] num_dag_runs_to_retain_rendered_fields runs)"
        )
    if rendered.get("conn_id") != record["conn_id"]:
        return (
            f"it names connection {shorten(repr(record['conn_id']), 120)}; the task rendered "
            f"{shorten(repr(rendered.get('conn_id')), 120)}"
        )
    if rendered.get(WATCHED_IDS_FIELD) != ids_digest(record["job_ids"]):
        return (
            f"its {len(record['job_ids'])} job id(s) are not the ids the task rendered for "
            f"this try (rendered field {WATCHED_IDS_FIELD!r})"
        )
    return None


def next_try_refusal(
    record: dict[str, Any], *, conn_id: str, job_ids: Sequence[str], try_number: Any, max_tries: Any
) -> str | None:
    """Why a later try must not cancel what ``record`` names, or ``None``: it must be one an
    earlier try of this task instance can have written, with the connection this try renders
    and only ids this try renders. (The earlier try's rendered fields are gone by now: a try
    sends its own before it runs, and workers cannot read them back.)."""
    why = try_refusal(record, try_number, max_tries)
    if why is not None:
        return why
    if record["conn_id"] != conn_id:
        return (
            f"it names connection {shorten(repr(record['conn_id']), 120)}; this task uses "
            f"{conn_id!r}"
        )
    watched = set(job_ids)
    foreign = [job_id for job_id in record["job_ids"] if job_id not in watched]
    if foreign:
        return f"it names {len(foreign)} job id(s) this task does not watch: {ids_text(foreign)}"
    return None


def was_cleared(record: dict[str, Any], *, try_number: Any, max_tries: Any) -> bool:
    """Whether the task instance was cleared since the try that wrote ``record``: a clear
    raises ``max_tries`` to ``try_number + retries`` (``clear_task_instances``) and the next try
    gets the next number; a retry keeps ``max_tries``, a reschedule keeps both."""
    if try_refusal(record, try_number, max_tries) is not None:
        return False
    return bool(record["max_tries"] < max_tries and record["try_number"] < try_number)


def refused_text(where: str, stored: Any, reason: str) -> str:
    """The ERROR line for a refused record: the task, why, and what the record holds."""
    return (
        f"{where}: refused the record under {WATCHING_KEY!r}: {reason}; nothing cancelled, the "
        f"record is left in place for inspection (it holds {describe_record(stored)})"
    )


def describe_record(stored: Any) -> str:
    """What a record holds, in at most a few hundred characters (for an ERROR line)."""
    record = stored if isinstance(stored, dict) else None
    if record is None:
        return shorten(repr(stored), 200)
    parts = []
    for name in RECORD_TYPES:
        value = record.get(name)
        if name == "job_ids" and isinstance(value, list):
            parts.append(f"job_ids={ids_text([str(i) for i in value])}")
        elif name == "hook_params" and isinstance(value, dict):
            parts.append(f"hook_params={shorten(repr(sorted(map(str, value))), 120)}")
        else:
            parts.append(f"{name}={shorten(repr(value), 120)}")
    return "; ".join(parts)


def parse_record(stored: Any) -> dict[str, Any] | None:
    """The record under :data:`WATCHING_KEY` (a dict, or the JSON text a store backend keeps) as
    :meth:`JobStatusSensor._record_watching` writes it, or ``None`` for anything else."""
    try:
        record = json.loads(stored) if isinstance(stored, str) else stored
    except (ValueError, RecursionError):
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
