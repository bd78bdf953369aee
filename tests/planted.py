"""What a REST user may plant under the sensor's task state store key (hypothesis strategies):
records of every shape, naming the sensor's own connection ``mine`` or another team's
``team_b`` or anything else, its own ids (``own-1``, ``own-2``), another team's, random ones or
tens of thousands, any try number and ``max_tries`` (negative, huge, missing), and hook params
that would lengthen the cancel."""

from __future__ import annotations

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
        ["timeout", "connect_timeout", "retry_limit", "retry_delay", "max_retry_wait", "service"]
        + ["api_version", "pool_size", "max_response_size", "k" * 1_000]
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
