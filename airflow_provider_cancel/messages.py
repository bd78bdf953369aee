"""How this provider words what it tells users: short texts cut at a word boundary, counts with
the right plural, one line per job that says each fact once. Pure functions, no I/O.

A job's line: ``job-1: cancelled``, ``job-2: already_finished (status completed, raw 'Done')``,
``job-3: error: the API refused the cancel (HTTP 400)``. A raw status is shown only when it adds
something, never as ``None``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from airflow_provider_cancel.status import CancelOutcome, CancelResult

ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut at a word boundary and ending in "…" when
    cut (mid-word only when one word is longer than most of the limit)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    room = max(0, limit - len(ELLIPSIS))
    cut = text[: room + 1].rsplit(" ", 1)[0] if " " in text[: room + 1] else ""
    if len(cut) < room // 2:  # no usable word boundary: cut the long word itself
        cut = text[:room]
    return cut.rstrip(" ,;:.—-") + ELLIPSIS


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 attempt``, ``3 attempts``."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


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
    if outcome in (CancelOutcome.NOT_FOUND, CancelOutcome.UNTRACKED):
        return logging.WARNING
    return logging.INFO


IDS_SHOWN = 5
"""How many ids a message that lists ids shows before it says how many more there are."""


def ids_text(job_ids: Sequence[str], shown: int = IDS_SHOWN) -> str:
    """``'a', 'b' and 3 more (5 ids)``: a few ids, each shortened, and the count; a message
    about 100,000 ids stays one short line."""
    ids = list(job_ids)
    head = ", ".join(repr(shorten(job_id, 100)) for job_id in ids[:shown])
    if len(ids) <= shown:
        return head
    return f"{head} and {len(ids) - shown} more ({len(ids)} ids)"
