"""JobStatusTrigger: serialisation, and ``run()`` against the in-process emulator under plain
pytest-asyncio, the way a triggerer runs it. Tests that must poll through WriteText's
"Cancelling" phase lengthen it (``cancel_delay``) so that a loaded machine cannot skip it."""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from airflow_provider_cancel.hooks.transport import close_async_clients
from airflow_provider_cancel.hooks.writetext import TOKEN_CACHE
from airflow_provider_cancel.triggers.status import JobStatusTrigger
from tests.conftest import FAST, cancel


@pytest.fixture(autouse=True)
async def _close_async_clients() -> AsyncIterator[None]:
    """Close the loop's shared aiohttp clients the triggers opened (the triggerer would keep
    them for the life of its loop)."""
    yield
    await close_async_clients()


def trigger(conn_id: str, job_ids: list[str], **kwargs: Any) -> JobStatusTrigger:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("hook_params", dict(FAST))
    return JobStatusTrigger(conn_id=conn_id, job_ids=job_ids, **kwargs)


async def events(t: JobStatusTrigger, within: float = 10) -> list[dict[str, Any]]:
    async with asyncio.timeout(within):
        return [event.payload async for event in t.run()]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------- serialisation


def test_serialize_round_trip() -> None:
    original = JobStatusTrigger(
        conn_id="writetext_default",
        job_ids=["r-1", "a/b ü"],
        success_statuses=["cancelled", "completed"],
        poll_interval=7,
        hook_params={"retry_limit": 5, "timeout": 10.0},
        missing_job_status="cancelled",
        cancel_on_kill=True,
    )

    classpath, kwargs = original.serialize()

    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert cls is JobStatusTrigger
    assert json.loads(json.dumps(kwargs)) == kwargs  # JSON only, nothing else
    assert kwargs == {
        "conn_id": "writetext_default",
        "job_ids": ["r-1", "a/b ü"],
        "success_statuses": ["cancelled", "completed"],
        "poll_interval": 7.0,
        "hook_params": {"retry_limit": 5, "timeout": 10.0},
        "missing_job_status": "cancelled",
        "cancel_on_kill": True,
    }
    recreated = cls(**json.loads(json.dumps(kwargs)))
    assert recreated.serialize() == (classpath, kwargs)


def test_serialize_defaults_are_json() -> None:
    _classpath, kwargs = JobStatusTrigger(conn_id="c", job_ids=("a",)).serialize()
    assert json.loads(json.dumps(kwargs)) == {
        "conn_id": "c",
        "job_ids": ["a"],
        "success_statuses": ["cancelled"],
        "poll_interval": 5.0,
        "hook_params": {},
        "missing_job_status": None,
        "cancel_on_kill": False,
    }


def test_a_trigger_stored_by_an_older_release_is_recreated_without_cancel_on_kill() -> None:
    # Deferred tasks keep their trigger's kwargs in the metadata DB across an upgrade.
    stored: dict[str, Any] = {
        "conn_id": "c",
        "job_ids": ["a"],
        "success_statuses": ["cancelled"],
        "poll_interval": 5.0,
        "hook_params": {},
        "missing_job_status": None,
    }
    trigger = JobStatusTrigger(**stored)
    assert trigger.cancel_on_kill is False
    assert trigger.serialize()[1] == {**stored, "cancel_on_kill": False}


# ---------------------------------------------------------------------- run()


async def test_success_after_writetext_goes_cancelling_then_cancelled(
    emulator: Any, writetext_conn: str
) -> None:
    emulator.configure(cancel_delay=0.6)
    jobs = [emulator.submit_writetext() for _ in range(2)]
    cancel(writetext_conn, *jobs)
    assert {emulator.job(job)["status"] for job in jobs} == {"Cancelling"}
    polls_before = emulator.counters["status_requests"]

    got = await events(trigger(writetext_conn, jobs))

    assert len(got) == 1
    event = got[0]
    assert event["status"] == "success"
    assert event["jobs"] == {
        job: {"status": "cancelled", "raw_status": "Cancelled", "message": ""} for job in jobs
    }
    json.dumps(event)
    # It polled through Cancelling: more than one read per job.
    assert emulator.counters["status_requests"] - polls_before > len(jobs)


async def test_failed_event_when_a_job_completes(emulator: Any, useapi_conn: str) -> None:
    cancelled, completes = emulator.submit_useapi(), emulator.submit_useapi()
    cancel(useapi_conn, cancelled)
    emulator.set_status(completes, "completed")

    got = await events(trigger(useapi_conn, [cancelled, completes]))

    assert len(got) == 1
    assert got[0]["status"] == "failed"
    assert repr(completes) in got[0]["message"]
    assert "completed" in got[0]["message"]
    assert cancelled not in got[0]["message"]
    assert got[0]["jobs"][completes]["status"] == "completed"


async def test_failed_event_when_a_job_completes_while_polling(
    emulator: Any, useapi_v3_conn: str
) -> None:
    job = emulator.submit_useapi(version="v3")

    async def complete_after_two_polls() -> None:
        while emulator.counters["status_requests"] < 2:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(0.01)
        emulator.set_status(job, "completed")

    _, got = await asyncio.gather(
        complete_after_two_polls(), events(trigger(useapi_v3_conn, [job]))
    )

    assert [event["status"] for event in got] == ["failed"]
    assert got[0]["jobs"][job]["status"] == "completed"
    assert emulator.counters["status_requests"] >= 3


async def test_unknown_status_keeps_polling(emulator: Any, writetext_conn: str) -> None:
    job = emulator.submit_writetext()
    emulator.set_status(job, "Paused")

    polling = asyncio.ensure_future(events(trigger(writetext_conn, [job]), within=120))
    # Wait (generously, for a loaded machine) until the trigger has read the job twice.
    for _ in range(6000):
        if emulator.counters["status_requests"] >= 2 or polling.done():
            break
        await asyncio.sleep(0.01)
    assert not polling.done(), polling.result()  # no event: an unknown status is not an end
    assert emulator.counters["status_requests"] >= 2
    polling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await polling


async def test_missing_job_is_a_failed_event_unless_read_as_a_status(
    emulator: Any, writetext_conn: str
) -> None:
    missing = await events(trigger(writetext_conn, ["gone"]))
    read_as_cancelled = await events(
        trigger(writetext_conn, ["gone"], missing_job_status="cancelled")
    )

    assert [event["status"] for event in missing] == ["failed"]
    assert "'gone' disappeared" in missing[0]["message"]
    assert [event["status"] for event in read_as_cancelled] == ["success"]


async def test_error_event_when_the_api_is_down(
    set_connection: Callable[..., str], emulator: Any
) -> None:
    conn_id = set_connection(
        "down", "useapi", host=f"http://127.0.0.1:{closed_port()}", password="down-token-123"
    )

    got = await events(trigger(conn_id, ["job-1"], hook_params={"retry_limit": 0}))

    assert len(got) == 1
    assert got[0]["status"] == "error"
    assert got[0]["message"].startswith("TransportError: ")
    assert "down-token-123" not in got[0]["message"]


async def test_error_event_when_the_writetext_token_endpoint_is_down(
    set_connection: Callable[..., str],
) -> None:
    conn_id = set_connection(
        "wt_down", "writetext", host=f"http://127.0.0.1:{closed_port()}", password="wt-key-1234"
    )

    got = await events(trigger(conn_id, ["r-1"], hook_params={"retry_limit": 0}))

    assert [event["status"] for event in got] == ["error"]
    assert "wt-key-1234" not in got[0]["message"]


async def test_error_event_when_the_connection_is_missing() -> None:
    got = await events(trigger("no_such_connection", ["job-1"]))

    assert len(got) == 1
    assert got[0]["status"] == "error"
    assert "no_such_connection" in got[0]["message"]


async def test_error_event_for_a_connection_of_another_type(
    set_connection: Callable[..., str], emulator: Any
) -> None:
    conn_id = set_connection("http_conn", "http", host=emulator.url, password="pw-12345")

    got = await events(trigger(conn_id, ["job-1"]))

    assert [event["status"] for event in got] == ["error"]
    assert "useapi" in got[0]["message"]
    assert "writetext" in got[0]["message"]
    assert emulator.counters["requests"] == 0


async def test_error_event_on_a_wrong_api_key(
    set_connection: Callable[..., str], emulator: Any
) -> None:
    conn_id = set_connection("wt_bad", "writetext", host=emulator.url, password="bad-key-98765")

    got = await events(trigger(conn_id, ["r-1"]))

    assert [event["status"] for event in got] == ["error"]
    assert "bad-key-98765" not in got[0]["message"]


@pytest.mark.parametrize("pool_size", [None, 4])
async def test_many_triggers_share_one_client_and_one_token(
    emulator: Any, writetext_conn: str, pool_size: int | None
) -> None:
    """Ten triggers on one connection in one event loop: one token request, and connections
    bounded by one shared pool (a client per trigger would open at least ten)."""
    # Long enough that a loaded machine still finds every job Cancelling at the first poll.
    emulator.configure(cancel_delay=3.0)
    groups = [[emulator.submit_writetext() for _ in range(3)] for _ in range(10)]
    cancel(writetext_conn, *(job for group in groups for job in group))
    TOKEN_CACHE.clear()  # as in a fresh triggerer process
    hook_params = {**FAST, **({"pool_size": pool_size} if pool_size else {})}
    before = emulator.counters

    got = await asyncio.gather(
        *(events(trigger(writetext_conn, group, hook_params=hook_params)) for group in groups)
    )

    after = emulator.counters
    assert [[event["status"] for event in g] for g in got] == [["success"]] * 10
    polls = after["status_requests"] - before["status_requests"]
    assert polls > 30  # every trigger polled through Cancelling
    assert after["token_requests"] - before["token_requests"] == 1
    connections = after["connections"] - before["connections"]
    # The token call + one pool. Separate clients would need a connection per request in
    # flight: up to 30 here (ten triggers reading three jobs at once).
    assert connections <= 1 + (pool_size or 16)


# ---------------------------------------------------------------------- kwargs from the DB


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"poll_interval": -1}, "poll_interval=-1"),
        ({"poll_interval": 0}, "poll_interval=0"),
        ({"poll_interval": float("nan")}, "poll_interval=nan"),
        ({"poll_interval": float("inf")}, "poll_interval=inf"),
        ({"poll_interval": 10**400}, "poll_interval="),
        ({"poll_interval": "5"}, "poll_interval='5'"),
        ({"poll_interval": True}, "poll_interval=True"),
        ({"job_ids": "job-1"}, "job_ids='job-1'"),
        ({"job_ids": []}, "job_ids=[]"),
        ({"job_ids": [None]}, "None"),
        ({"job_ids": {"a": 1}}, "job_ids={'a': 1}"),
        ({"conn_id": ""}, "conn_id=''"),
        ({"conn_id": 7}, "conn_id=7"),
        ({"success_statuses": "completed"}, "success_statuses='completed'"),
        ({"success_statuses": ["done-ish"]}, "done-ish"),
        ({"hook_params": [1]}, "hook_params=[1]"),
        ({"missing_job_status": "gone"}, "gone"),
        ({"cancel_on_kill": "false"}, "cancel_on_kill='false'"),
    ],
)
def test_a_bad_kwarg_is_refused_when_the_trigger_is_built_naming_the_value(
    kwargs: dict[str, Any], named: str
) -> None:
    arguments = {"conn_id": "c", "job_ids": ["job-1"], "poll_interval": 5.0, **kwargs}

    with pytest.raises(ValueError, match="JobStatusTrigger") as refused:
        JobStatusTrigger(**arguments)

    assert named in str(refused.value)
    assert len(str(refused.value)) < 600


def test_kwargs_from_the_db_build_a_sane_trigger_or_are_refused() -> None:
    import math

    from hypothesis import given, settings
    from hypothesis import strategies as st

    anything = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    id_lists = st.lists(anything | st.lists(st.integers(), max_size=2), max_size=5)

    @settings(max_examples=300, deadline=None)
    @given(
        conn_id=anything,
        job_ids=anything | id_lists,
        poll_interval=anything | st.sampled_from([-1.0, 0.0, 1e-300, 1e308, 10**400]),
        success_statuses=st.none() | anything | st.lists(anything, max_size=3),
        hook_params=st.none() | anything | st.dictionaries(anything, anything, max_size=3),
        missing_job_status=anything,
        cancel_on_kill=anything,
    )
    def check(**kwargs: Any) -> None:
        try:
            built = JobStatusTrigger(**kwargs)
        except (TypeError, ValueError) as error:
            refusal = str(error)
        else:
            refusal = ""
        if refusal:
            assert len(refusal) < 600
            return
        assert math.isfinite(built.poll_interval)
        assert built.poll_interval > 0
        assert isinstance(built.job_ids, list)
        assert built.job_ids
        assert all(isinstance(i, str) and i.strip() for i in built.job_ids)
        assert isinstance(built.cancel_on_kill, bool)

    check()
