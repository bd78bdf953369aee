"""What a REST user may plant under the sensor's task state store key (hypothesis strategies):
records of every shape, naming the sensor's own connection ``mine`` or another team's
``team_b`` or anything else, its own ids (``own-1``, ``own-2``), another team's, random ones or
tens of thousands, any try number and ``max_tries`` (negative, huge, missing), and hook params
that would lengthen the cancel."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import strategies as st

OWN_IDS = ["own-1", "own-2"]
FOREIGN_IDS = ["team-b-1", "team-b-2"]

_ids = st.lists(
    st.sampled_from(OWN_IDS + FOREIGN_IDS) | st.text(min_size=1, max_size=20),
    min_size=0,
    max_size=6,
)
_many_ids = st.sampled_from([1_000, 20_000]).map(lambda n: [f"x-{i}" for i in range(n)])
_numbers = st.none() | st.sampled_from([-1, 0, 1, 2, 3, 10**30, -(10**30)]) | st.integers()
_hook_params = st.dictionaries(
    st.sampled_from(
        [
            "timeout",
            "connect_timeout",
            "retry_limit",
            "retry_delay",
            "max_retry_wait",
            "service",
            "api_version",
            "pool_size",
            "max_response_size",
            "k" * 1000,
        ]
    ),
    st.integers() | st.floats() | st.text(max_size=30) | st.sampled_from([3600, 10**9, "inf"]),
    max_size=6,
) | st.just({"timeout": 3600, "connect_timeout": 3600, "retry_limit": 10**6})

RECORDS = st.fixed_dictionaries(
    {
        "try_number": _numbers,
        "max_tries": _numbers,
        "conn_id": st.sampled_from(["mine", "team_b"]) | st.text(max_size=30),
        "job_ids": _ids | _many_ids,
        "hook_params": _hook_params,
    }
)
"""Records shaped as the sensor writes them, with any values."""

PLANTED: st.SearchStrategy[Any] = (
    RECORDS
    | RECORDS.map(lambda r: {**r, "extra": 1})
    | st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=5)
    | st.text(max_size=200)
    | st.lists(st.integers(), max_size=5)
)
"""Anything a REST user may write under the key (the state store keeps JSON)."""


@contextlib.contextmanager
def two_team_apis(set_connection: Callable[..., str]) -> Iterator[tuple[Any, Any]]:
    """Two APIs that note every request: ``mine`` (the sensor's connection) and ``team_b``
    (another team's), each answering 404."""
    from tests.hostile_server import hostile, reply_json

    def answer(_: Any) -> Any:
        return reply_json(404, {"error": "no such job"})

    with hostile(answer) as mine, hostile(answer) as team_b:
        set_connection("mine", "useapi", host=mine.url, password="mine-token-123")
        set_connection("team_b", "useapi", host=team_b.url, password="team-b-token-456")
        yield mine, team_b


def named_id(request: Any) -> str:
    """The job id a useapi v2 request names (``/v2/jobs/cancel/?jobid=...``)."""
    from urllib.parse import parse_qs, urlsplit

    (job_id,) = parse_qs(urlsplit(request.path).query)["jobid"]
    return job_id


def cancelled_ids(server: Any) -> set[str]:
    """The ids named by the requests ``server`` saw."""
    return {named_id(request) for request in server.requests}
