"""How the provider words what happened to a job, in logs and errors. Pure functions, no I/O.

One line per job that says each fact once: ``job-1: cancelled``, ``job-2: already_finished
(status completed, raw 'Done')``, ``job-3: error: the API refused the cancel (HTTP 400)``.
A raw status is shown only when it adds something, never as ``None``.
"""

from __future__ import annotations

import logging
import re

from airflow_provider_cancel.status import CancelOutcome, CancelResult

ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut at a word boundary and ended with "…".

    Only a word so long that ending before it would drop more than half of what fits (a long
    id, a repr) is cut inside.

    >>> shorten("Unable to locate job abc", 20)
    'Unable to locate…'
    """
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    kept = text[: limit - len(ELLIPSIS)]
    if not text[len(kept)].isspace():  # the cut falls inside a word: drop that word
        boundary = re.search(r"\s\S*$", kept)
        if boundary and boundary.start() >= limit // 2:
            kept = kept[: boundary.start()]
    return kept.rstrip() + ELLIPSIS


def _said(word: str, text: str) -> bool:
    """Whether ``word`` already appears in ``text`` as a word (case-insensitively)."""
    return bool(re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE))


def describe_state(job_id: str, status: str, raw_status: str | None, message: str = "") -> str:
    """``job: status`` plus the raw status when it differs, plus the message if it adds."""
    line = f"{job_id}: {status}"
    if (
        raw_status is not None
        and raw_status.strip().lower() != status
        and not _said(raw_status, message)
    ):
        line += f" (raw {raw_status!r})"
    if message and message.strip().lower() not in (status, (raw_status or "").lower()):
        line += f": {message}"
    return line


def describe_result(result: CancelResult) -> str:
    """One log line for one job's cancel outcome, each fact said once."""
    outcome, status = result.outcome.value, result.status.value
    message = result.message.strip()
    shown = {outcome}
    details = []
    known = result.status.value != "unknown" or result.raw_status is not None
    if known and status not in shown and not _said(status, message):
        details.append(f"status {status}")
        shown.add(status)
    raw = result.raw_status
    if raw is not None and raw.strip().lower() not in shown and not _said(raw, message):
        details.append(f"raw {raw!r}")
        shown.add(raw.strip().lower())
    line = f"{result.job_id}: {outcome}"
    if details:
        line += f" ({', '.join(details)})"
    if message and message.lower() not in shown:
        line += f": {message}"
    return line


def outcome_level(outcome: CancelOutcome) -> int:
    """The log level of a job's outcome: a job left running is an error, a missing one a
    warning, anything that ended the job is information."""
    if outcome is CancelOutcome.ERROR:
        return logging.ERROR
    if outcome is CancelOutcome.NOT_FOUND:
        return logging.WARNING
    return logging.INFO
