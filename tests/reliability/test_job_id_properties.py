"""Property: any id the package accepts reaches the emulator exactly as given, inside the API's
own path, for get_job and cancel_job, on the sync and the async path; what it refuses on
purpose is refused before any request."""

from __future__ import annotations

import ast
import asyncio
import json
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airflow_provider_cancel.exceptions import InvalidJobIdError
from airflow_provider_cancel.hooks import writetext
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.writetext import WriteTextHook
from airflow_provider_cancel.job_ids import MAX_JOB_ID_LENGTH, encode_path_segment

from .conftest import CONNS, FAST

NASTY = ["/", "?", "#", "%", "..", ".", ":", "&", "=", "+", ";", " ", "\\", "%2F", "%00", "\x00",
         "\n", "\r", "\t", "\x7f", "é", "漢", "🙂", "\u200b", "\ufeff", "[", "]", "'", '"']  # fmt: skip

ids = st.one_of(
    st.text(min_size=1, max_size=40),
    st.lists(st.sampled_from(NASTY) | st.text(max_size=4), min_size=1, max_size=8).map("".join),
    st.sampled_from([".", "..", "...", "../..", "./x", "a/../b", "%2E%2E", "?jobid=x", "#x"]),
)

PREFIX = {
    ("useapi_v2", "status"): "/v2/jobs/?jobid=",
    ("useapi_v2", "cancel"): "/v2/jobs/cancel/?jobid=",
    ("useapi_v3", "status"): "/v3/midjourney/jobs/",
    ("useapi_v3", "cancel"): "/v3/midjourney/jobs/",
    ("writetext", "status"): "/text/Generate/Bulk/",
    ("writetext", "cancel"): "/text/Generate/Bulk/",
}
RUNNING = {"useapi_v2": "started", "useapi_v3": "started", "writetext": "Running"}


def accepted(job_id: str) -> bool:
    """What the package takes as one id (see job_ids.normalize_job_ids)."""
    if not job_id.strip() or job_id == "None" or len(job_id) > MAX_JOB_ID_LENGTH:
        return False
    stripped = job_id.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        # A rendered list literal ("['a']") is read back as a list on purpose.
        for parse in (json.loads, ast.literal_eval):
            try:
                if isinstance(parse(stripped), list):
                    return False
            except Exception:
                continue
    return True


def make_hook(api: str) -> Any:
    kind = WriteTextHook if api == "writetext" else UseApiHook
    return kind(CONNS[api], **FAST)


def call(hook: Any, method: str, job_id: str, loop: asyncio.AbstractEventLoop | None) -> Any:
    """Sync call, or the async twin on ``loop`` (one loop, so one pooled client, per test)."""
    if loop is None:
        try:
            return getattr(hook, method)(job_id)
        finally:
            hook.close()
    return loop.run_until_complete(getattr(hook, f"a{method}")(job_id))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("api", ["useapi_v2", "useapi_v3", "writetext"])
def test_any_accepted_id_reaches_the_emulator_exactly(api: str, mode: str, emu: Any) -> None:
    loop = asyncio.new_event_loop() if mode == "async" else None

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(job_id=ids)
    def check(job_id: str) -> None:
        assume(accepted(job_id))
        emu.reset()
        writetext.TOKEN_CACHE.clear()
        emu.create_job(api, job_id, RUNNING[api])

        state = call(make_hook(api), "get_job", job_id, loop)
        assert state.job_id == job_id
        assert state.status.value == "running"
        result = call(make_hook(api), "cancel_job", job_id, loop)
        assert result.job_id == job_id
        assert result.outcome.value in ("cancelled", "cancelling")
        assert emu.job(job_id)["normalized"] in ("cancelled", "cancelling")
        assert emu.job(job_id)["cancel_calls"] == 1

        for entry in emu.requests_log:
            if entry["call"] == "token":
                assert entry["raw_path"] == "/web/apitoken/accesstoken"
                continue
            prefix = PREFIX[(api, entry["call"])]
            tail = "/cancel" if api == "writetext" and entry["call"] == "cancel" else ""
            raw = entry["raw_path"]
            assert raw.startswith(prefix), entry
            assert raw.endswith(tail), entry
            encoded = raw[len(prefix) : len(raw) - len(tail)]
            # The id stays one opaque value: nothing in it can end the segment or the query,
            # start a fragment or navigate the path.
            assert not set(encoded) & set("/?#&; "), entry
            assert unquote(encoded, errors="strict") == job_id, entry
            if api != "useapi_v2":  # a path segment: never a dot segment either
                assert encoded not in (".", ".."), entry
                assert encoded == encode_path_segment(job_id), entry
            assert entry["path_job_id"] == job_id, entry
            assert entry["status"] in (200, 204), entry

    check()


rejected_ids = st.one_of(
    st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003\u3000", max_size=10),  # blank
    st.just("None"),
    st.integers(MAX_JOB_ID_LENGTH + 1, MAX_JOB_ID_LENGTH + 50).map(lambda n: "x" * n),
    st.tuples(st.text(max_size=5), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)).map(
        "".join
    ),  # lone surrogate
)


@pytest.mark.parametrize("api", ["useapi_v2", "useapi_v3", "writetext"])
def test_ids_refused_on_purpose_send_no_request(api: str, emu: Any) -> None:
    emu.reset()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(job_id=rejected_ids)
    def check(job_id: str) -> None:
        for method in ("get_job", "cancel_job"):
            with pytest.raises(InvalidJobIdError) as raised:
                getattr(make_hook(api), method)(job_id)
            assert "invalid job_id" in str(raised.value)
        assert emu.counters["requests"] == 0

    check()


@pytest.mark.parametrize("job_id", ['["a"]', "[1]", "['a']"])
@pytest.mark.parametrize("api", ["useapi_v2", "useapi_v3", "writetext"])
def test_a_hook_takes_a_bracketed_id_literally(api: str, job_id: str, fresh_emu: Any) -> None:
    """A hook method takes exactly one id: reading a rendered list literal back as a list is for
    the templated ``job_id`` of the operator and the sensor, not for ``hook.get_job(id)``, where
    it silently reads (or cancels) another job (``'["a"]'`` -> ``'a'``)."""
    other = "a" if "a" in job_id else "1"
    fresh_emu.create_job(api, job_id, RUNNING[api])
    fresh_emu.create_job(api, other, RUNNING[api])
    hook = make_hook(api)
    assert hook.get_job(job_id).job_id == job_id
    assert hook.cancel_job(job_id).job_id == job_id
    assert fresh_emu.job(other)["cancel_calls"] == 0
    assert {e["path_job_id"] for e in fresh_emu.requests_log if e["path_job_id"]} == {job_id}
