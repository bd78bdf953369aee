"""Many calls at once over one pooled session: a bounded thread pool with progress in the log."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def for_each(
    call: Callable[[str], T],
    ids: list[str],
    workers: int,
    *,
    log: logging.Logger,
    label: str,
) -> list[T]:
    """``call`` on every id, ``workers`` at a time; results in the order of ``ids``. Long lists
    log their progress every tenth ("WriteText.ai: 300 of 3000 cancel calls answered")."""
    step = max(1, len(ids) // 10)
    answered = itertools.count(1)

    def one(job_id: str) -> T:
        result = call(job_id)
        done = next(answered)
        if len(ids) > 20 and done % step == 0:
            log.info("%s: %d of %d calls answered", label, done, len(ids))
        return result

    if workers <= 1:
        return [one(job_id) for job_id in ids]
    with ThreadPoolExecutor(workers, thread_name_prefix="cancel-provider") as pool:
        return list(pool.map(one, ids))
