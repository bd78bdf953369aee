"""Turn what a DAG author passes as ``job_id`` into a clean list of ids, or refuse it clearly.

Ids are opaque to us: any non-blank string is valid (colons, slashes, ``%``, unicode...). What
is refused is what can only be a mistake: ``None``, blanks, the string ``"None"`` (what a
missing XCom renders to in Jinja), floats, mappings, nested lists, empty lists.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence, Set
from typing import Any
from urllib.parse import quote

from airflow_provider_cancel.exceptions import InvalidJobIdError

MAX_JOB_ID_LENGTH = 4096
"""Longer ids cannot be real (useapi ids are ~90 characters) and would not fit in a URL."""


def _shown(value: Any) -> str:
    from airflow_provider_cancel.messages import shorten

    if isinstance(value, int) and value.bit_length() > 4 * MAX_JOB_ID_LENGTH:
        return f"<an int of about {int(value.bit_length() * 0.30103)} digits>"
    try:
        text = repr(value)
    except ValueError:  # an int past Python's int-to-str digit limit, inside a list
        return f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= 120 else f"{shorten(text, 100)} ({len(text)} characters)"


def _refuse(task: str, value: Any, why: str) -> InvalidJobIdError:
    return InvalidJobIdError(f"Task {task!r}: invalid job_id {_shown(value)}: {why}")


def _parse_rendered_list(text: str) -> Any:
    """A Jinja-rendered list arrives as ``"['a', 'b']"`` (or JSON); read it back safely."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


_XCOM_PULL = re.compile(r"""xcom_pull\(\s*(?:task_ids\s*=\s*)?['"]([^'"]+)['"]""")


def upstream_of(value: Any) -> str | None:
    """The upstream task a templated ``job_id`` reads, when it says: an ``XComArg``'s task,
    or the ``task_ids`` of a Jinja ``xcom_pull``. Read before rendering, to name that task
    when what it pushed is no job id."""
    task_id = getattr(getattr(value, "operator", None), "task_id", None)
    if isinstance(task_id, str):
        return task_id
    found = _XCOM_PULL.search(value) if isinstance(value, str) else None
    return found.group(1) if found else None


def _pushed_nothing(upstream: str | None) -> str:
    if upstream is None:
        return "check the upstream task"
    return f"upstream task {upstream!r} pushed nothing (or None) to XCom"


def _one_id(item: Any, task: str, whole: Any, upstream: str | None = None) -> str:
    if item is None:
        raise _refuse(task, whole, f"None is not a job id: {_pushed_nothing(upstream)}")
    if isinstance(item, bool):
        raise _refuse(task, whole, f"{item!r} is not a job id")
    if isinstance(item, int):
        if item.bit_length() > 4 * MAX_JOB_ID_LENGTH:  # more digits than an id may have
            raise _refuse(task, whole, f"an int id has more than {MAX_JOB_ID_LENGTH} digits")
        try:
            item = str(item)
        except ValueError:  # past Python's int-to-str digit limit
            raise _refuse(task, whole, "an int id has too many digits") from None
    if not isinstance(item, str):
        kind = type(item).__name__
        raise _refuse(task, whole, f"ids must be strings or ints, got {kind} {_shown(item)}")
    if not item.strip():
        raise _refuse(task, whole, "an id is empty or blank")
    if item == "None":
        raise _refuse(
            task, whole, f"'None' is what a missing XCom renders to: {_pushed_nothing(upstream)}"
        )
    if len(item) > MAX_JOB_ID_LENGTH:
        raise _refuse(task, whole, f"an id is {len(item)} characters (max {MAX_JOB_ID_LENGTH})")
    try:
        item.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(task, whole, "an id is not valid unicode (lone surrogate)") from None
    return item


def validate_job_id(value: Any, *, task: str = "<unknown>") -> str:
    """One id, taken literally (a hook never reads ``"['a']"`` as a list): the id as a string,
    or :class:`InvalidJobIdError`."""
    return _one_id(value, task, value)


def _is_collection(value: Any) -> bool:
    return isinstance(value, (Sequence, Set)) and not isinstance(value, (str, bytes, bytearray))


def normalize_job_ids(
    value: Any, *, task: str = "<unknown>", upstream: str | None = None
) -> list[str]:
    """Return the ids in ``value`` as a list of distinct strings, in their first order.

    ``value`` may be a string, an int, a rendered list literal, or a sequence or set of those
    (a list, a tuple, the lazy sequence a mapped task's XCom resolves to).
    Raises :class:`InvalidJobIdError` naming ``task`` and the value for anything else (and
    ``upstream``, the task the value came from, when it is ``None``: see :func:`upstream_of`).
    """
    return job_ids_and_duplicates(value, task=task, upstream=upstream)[0]


def job_ids_and_duplicates(
    value: Any, *, task: str = "<unknown>", upstream: str | None = None
) -> tuple[list[str], int]:
    """:func:`normalize_job_ids` and how many duplicate ids it dropped (for the log)."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            parsed = _parse_rendered_list(stripped)
            if isinstance(parsed, list):
                value = parsed
    if isinstance(value, Mapping):
        raise _refuse(task, value, "a mapping is not a job id; pass a list of ids")
    if _is_collection(value):
        # Any sequence or set: lists, tuples, and what a mapped task's XComArg resolves to.
        items = list(value)
        for item in items:
            if _is_collection(item) or isinstance(item, Mapping):
                raise _refuse(task, value, "nested lists are not accepted; pass a flat list")
        ids = [_one_id(item, task, value, upstream) for item in items]
        if not ids:
            raise _refuse(task, value, "the list of ids is empty")
        distinct = list(dict.fromkeys(ids))
        return distinct, len(ids) - len(distinct)
    return [_one_id(value, task, value, upstream)], 0


_LITERAL_SCALARS = (str, bytes, int, float, type(None))


def _is_literal(value: Any) -> bool:
    """Written out in the DAG file: plain values and containers of them, no Jinja.

    Anything else (an ``XComArg``, a Jinja string, an object Airflow resolves) is only known
    when the task runs, and is checked then.
    """
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, _LITERAL_SCALARS):
        return True
    if isinstance(value, Mapping):
        return all(_is_literal(v) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_is_literal(item) for item in value)
    return False


def check_literal_job_ids(value: Any, *, task: str) -> None:
    """Refuse, when the DAG file is parsed, an id that can only be a mistake as written
    (``None``, ``""``, ``[]``...): the UI then shows a DAG import error naming the task and
    the value, before any run. Templated values pass here and are checked at run time."""
    if _is_literal(value):
        normalize_job_ids(value, task=task)


def duplicates_text(count: int) -> str:
    """``"2 duplicate ids ignored"``, for the log of a task given a list with repeats."""
    from airflow_provider_cancel.messages import plural

    return f"{plural(count, 'duplicate id')} ignored"


def encode_path_segment(job_id: str) -> str:
    """Percent-encode an id for a URL path segment so the server receives it exactly.

    Every reserved character is encoded (``/`` too). A segment made only of dots is encoded as
    well, because clients and servers collapse ``.`` and ``..`` as path navigation.
    """
    encoded = quote(job_id, safe="")
    if set(job_id) == {"."}:
        encoded = encoded.replace(".", "%2E")
    return encoded


def encode_query_value(job_id: str) -> str:
    """Percent-encode an id for a query string value (space as ``%20``, ``+`` kept literal)."""
    return quote(job_id, safe="")
