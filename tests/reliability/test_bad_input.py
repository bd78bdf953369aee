"""Bad input for the operator, the sensor and the callbacks: every value docs/statuses.md calls
a mistake is refused with a clear error that names the task and the value, before any request
(the emulator's counters stay at zero); duplicates are cancelled once; 10,000 ids all get
cancelled.

For callbacks "clear error" means logged, never raised: the task's own failure stays visible.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, Context

from airflow_provider_cancel.callbacks import cancel_on_failure
from airflow_provider_cancel.exceptions import ConnectionConfigError, InvalidJobIdError
from airflow_provider_cancel.hooks import writetext
from airflow_provider_cancel.operators.cancel import CancelJobOperator
from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor
from tests.fakes import FakeTI

from .conftest import CONNS, FAST, conn_env
from .fault_matrix import USEAPI_TOKEN

LONG_ID = "x" * 100_000
RENDERED = "{{ ti.xcom_pull(task_ids='submit') }}"

BAD_IDS: list[tuple[str, Any]] = [
    ("None", None),
    ("empty string", ""),
    ("blank", " \t\n "),
    ("string 'None'", "None"),
    ("float", 1.5),
    ("float nan", float("nan")),
    ("bool", True),
    ("bytes", b"job-1"),
    ("object", object()),
    ("dict", {"job": "job-1"}),
    ("empty list", []),
    ("empty tuple", ()),
    ("nested list", [["job-1", "job-2"]]),
    ("list in a list with ids", ["job-1", ["job-2"]]),
    ("dict in a list", ["job-1", {"id": "job-2"}]),
    ("None in a list", ["job-1", None]),
    ("float in a list", ["job-1", 2.0]),
    ("blank in a list", ["job-1", "  "]),
    ("'None' in a list", ["job-1", "None"]),
    ("rendered ['None']", "['None']"),
    ("rendered []", "[]"),
    ("rendered nested list", "[['a'], ['b']]"),
    ("100,000-character id", LONG_ID),
    ("100,000-character id in a list", ["job-1", LONG_ID]),
    ("lone surrogate", "job-\ud800"),
]
BAD_CONNECTIONS = ["missing", "no password", "other type", "bad api_version"]
CONN_OF = {kind: "rel_bad_" + kind.replace(" ", "_") for kind in BAD_CONNECTIONS}
KIND_OF = {conn_id: kind for kind, conn_id in CONN_OF.items()}


def context(task_id: str = "cancel", xcoms: dict[str, Any] | None = None) -> Context:
    ti = FakeTI(xcoms, task_id=task_id)
    return {"ti": ti, "task_instance": ti}


def requests_made(emu: Any) -> int:
    return int(emu.counters["requests"])


def names_value(message: str, value: Any) -> bool:
    """The message shows the value (a rendered list literal is shown as the list it is)."""
    return repr(value)[:20] in message or (isinstance(value, str) and value[:20] in message)


# ---------------------------------------------------------------------- ids


@pytest.mark.parametrize(("name", "value"), BAD_IDS, ids=[name for name, _ in BAD_IDS])
def test_operator_refuses_bad_ids_before_any_request(name: str, value: Any, fresh_emu: Any) -> None:
    operator = CancelJobOperator(
        task_id="cancel_bad", conn_id=CONNS["useapi_v2"], job_id=RENDERED, hook_params=FAST
    )
    operator.job_id = value  # what rendering the template produced (literals fail at parse)
    with pytest.raises(InvalidJobIdError) as raised:
        operator.execute(context("cancel_bad"))
    message = str(raised.value)
    assert "'cancel_bad'" in message
    assert names_value(message, value), message
    assert len(message) < 600  # a 100,000-character id is not pasted whole into the log
    assert requests_made(fresh_emu) == 0


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
@pytest.mark.parametrize(("name", "value"), BAD_IDS, ids=[name for name, _ in BAD_IDS])
def test_sensor_refuses_bad_ids_before_any_request(
    name: str, value: Any, deferrable: bool, fresh_emu: Any
) -> None:
    sensor = JobCancelledSensor(
        task_id="wait_bad",
        conn_id=CONNS["writetext"],
        job_id=RENDERED,
        hook_params=FAST,
        deferrable=deferrable,
        poke_interval=0.01,
        timeout=1,
    )
    sensor.job_id = value  # what rendering the template produced (literals fail at parse)
    with pytest.raises(InvalidJobIdError) as raised:
        sensor.execute(context("wait_bad"))
    message = str(raised.value)
    assert "'wait_bad'" in message
    assert names_value(message, value), message
    assert requests_made(fresh_emu) == 0


@pytest.mark.parametrize("source", ["job_ids", "xcom"])
@pytest.mark.parametrize(("name", "value"), BAD_IDS, ids=[name for name, _ in BAD_IDS])
def test_callback_logs_bad_ids_and_never_raises(
    name: str, value: Any, source: str, fresh_emu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    if source == "job_ids":
        callback = cancel_on_failure(CONNS["useapi_v2"], job_ids=value, hook_params=FAST)
        ctx = context("publish")
    else:
        callback = cancel_on_failure(CONNS["useapi_v2"], xcom_task_ids="submit", hook_params=FAST)
        ctx = context("publish", {"submit": value})
    caplog.set_level(logging.INFO)

    callback(ctx)  # must not raise

    logged = "\n".join(f"{r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    if source == "xcom" and value is None:
        assert "pushed nothing" in logged  # a missing XCom is a warning, not an error
    elif value is None:
        assert "no job ids to cancel" in logged  # job_ids=None is the default: none given
    else:
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors, logged
        assert "invalid job_id" in logged, logged
        assert len(logged) < 5000
    assert requests_made(fresh_emu) == 0


def test_callback_still_cancels_good_xcom_ids_next_to_bad_ones(
    fresh_emu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fresh_emu.create_job("useapi_v2", "good-1", "started")
    callback = cancel_on_failure(
        CONNS["useapi_v2"], xcom_task_ids=["bad", "good"], hook_params=FAST
    )
    callback(context("publish", {"bad": {"not": "ids"}, "good": ["good-1"]}))
    assert fresh_emu.job("good-1")["normalized"] == "cancelled"
    assert "invalid job_id" in caplog.text


# ---------------------------------------------------------------------- connections


@pytest.fixture
def bad_connection(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, emu: Any
) -> str:
    kind = request.param
    conn_id = CONN_OF[kind]
    fields: dict[str, Any] = {"host": emu.url, "password": USEAPI_TOKEN}
    conn_type = "useapi"
    if kind == "missing":
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)
        return conn_id
    if kind == "no password":
        fields.pop("password")
    elif kind == "other type":
        conn_type = "http"
    elif kind == "bad api_version":
        fields["extra"] = {"api_version": "v9"}
    monkeypatch.setenv(*conn_env(conn_id, conn_type, **fields))
    return conn_id


EXPECTED_CONN_ERROR = {
    "missing": (AirflowException, "isn't defined"),
    "no password": (ConnectionConfigError, "has no API token"),
    "other type": (ConnectionConfigError, "supported types: useapi, writetext"),
    # Found lazily, per job: the operator fails naming every job with this reason (no request
    # is sent) rather than once up front; the callback logs it per job as a warning.
    "bad api_version": (AirflowException, "api_version 'v9' is not one of v2, v3"),
}


@pytest.mark.parametrize("bad_connection", BAD_CONNECTIONS, indirect=True)
@pytest.mark.parametrize("user", ["operator", "sensor", "deferrable sensor"])
def test_bad_connection_is_a_clear_error_before_any_request(
    bad_connection: str, user: str, fresh_emu: Any
) -> None:
    fresh_emu.create_job("useapi_v2", "job-1", "started")
    kind = KIND_OF[bad_connection]
    if user == "operator":
        task: Any = CancelJobOperator(
            task_id="cancel", conn_id=bad_connection, job_id="job-1", hook_params=FAST
        )
    else:
        task = JobCancelledSensor(
            task_id="cancel",
            conn_id=bad_connection,
            job_id="job-1",
            hook_params=FAST,
            deferrable=user == "deferrable sensor",
            poke_interval=0.01,
            timeout=1,
        )
    error, text = EXPECTED_CONN_ERROR[kind]
    with pytest.raises(error) as raised:
        task.execute(context())
    assert text in str(raised.value)
    assert bad_connection in str(raised.value)
    assert USEAPI_TOKEN not in str(raised.value)
    assert requests_made(fresh_emu) == 0
    assert fresh_emu.job("job-1")["cancel_calls"] == 0


@pytest.mark.parametrize("bad_connection", BAD_CONNECTIONS, indirect=True)
def test_callback_logs_a_bad_connection_and_never_raises(
    bad_connection: str, fresh_emu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    kind = KIND_OF[bad_connection]
    cancel_on_failure(bad_connection, job_ids=["job-1"], hook_params=FAST)(context())
    level = logging.WARNING if kind == "bad api_version" else logging.ERROR
    assert [r for r in caplog.records if r.levelno >= level]
    assert EXPECTED_CONN_ERROR[kind][1] in caplog.text
    assert USEAPI_TOKEN not in caplog.text
    assert requests_made(fresh_emu) == 0


# ---------------------------------------------------------------------- duplicates and size


@pytest.mark.parametrize("api", ["useapi_v2", "useapi_v3", "writetext"])
def test_duplicates_are_cancelled_once(api: str, fresh_emu: Any) -> None:
    running = "Running" if api == "writetext" else "started"
    for job in ("a:1", "b:2"):
        fresh_emu.create_job(api, job, running)
    ids = ["a:1", "a:1", "b:2", "a:1", "b:2"]

    report = CancelJobOperator(
        task_id="cancel", conn_id=CONNS[api], job_id=ids, hook_params=FAST
    ).execute(context())
    assert list(report) == ["a:1", "b:2"]
    assert fresh_emu.counters["cancel_requests"] == 2
    assert [fresh_emu.job(j)["cancel_calls"] for j in ("a:1", "b:2")] == [1, 1]

    before = fresh_emu.counters["status_requests"]
    JobCancelledSensor(
        task_id="wait", conn_id=CONNS[api], job_id=ids, hook_params=FAST, deferrable=False
    ).poke(context())
    assert fresh_emu.counters["status_requests"] - before == 2

    fresh_emu.reset()
    writetext.TOKEN_CACHE.clear()
    for job in ("a:1", "b:2"):
        fresh_emu.create_job(api, job, running)
    cancel_on_failure(
        CONNS[api], job_ids=["a:1", "a:1"], xcom_task_ids=["s1", "s2"], hook_params=FAST
    )(context("publish", {"s1": ["a:1", "b:2"], "s2": "b:2"}))
    assert fresh_emu.counters["cancel_requests"] == 2
    assert [fresh_emu.job(j)["cancel_calls"] for j in ("a:1", "b:2")] == [1, 1]


N_LARGE = 10_000


@pytest.fixture
def many_jobs(fresh_emu: Any) -> list[str]:
    fresh_emu.configure(latency=0.0)
    ids = [f"job:{n:05d}" for n in range(N_LARGE)]
    for job_id in ids:
        fresh_emu.create_job("useapi_v2", job_id, "started")
    return ids


# These tests are about volume, not timeouts: a generous timeout keeps a busy machine from
# turning one slow answer into a retried (so doubly counted) cancel.
LARGE_LIST_PARAMS = {**FAST, "timeout": 30}


def test_operator_cancels_10000_ids(many_jobs: list[str], fresh_emu: Any) -> None:
    started = time.monotonic()
    report = CancelJobOperator(
        task_id="cancel",
        conn_id=CONNS["useapi_v2"],
        job_id=many_jobs,
        max_concurrency=32,
        hook_params=LARGE_LIST_PARAMS,
    ).execute(context())
    seconds = time.monotonic() - started
    assert len(report) == N_LARGE
    assert {entry["outcome"] for entry in report.values()} == {"cancelled"}
    assert fresh_emu.counters["cancel_requests"] == N_LARGE
    jobs = fresh_emu.jobs()
    assert {job["normalized"] for job in jobs} == {"cancelled"}
    assert {job["cancel_calls"] for job in jobs} == {1}
    assert seconds < 120


def test_rendered_2000_ids_are_read_back_as_a_list(many_jobs: list[str], fresh_emu: Any) -> None:
    """What ``"{{ ti.xcom_pull(task_ids='submit') }}"`` renders to for a long XCom list."""
    ids = many_jobs[:2000]
    report = CancelJobOperator(
        task_id="cancel",
        conn_id=CONNS["useapi_v2"],
        job_id=str(ids),
        max_concurrency=32,
        hook_params=LARGE_LIST_PARAMS,
    ).execute(context())
    assert list(report) == ids
    assert fresh_emu.counters["cancel_requests"] == len(ids)


def test_callback_cancels_10000_ids_from_xcom(many_jobs: list[str], fresh_emu: Any) -> None:
    cancel_on_failure(
        CONNS["useapi_v2"],
        xcom_task_ids="submit",
        hook_params=LARGE_LIST_PARAMS,
        max_concurrency=32,
    )(context("publish", {"submit": many_jobs}))
    assert fresh_emu.counters["cancel_requests"] == N_LARGE
    assert {job["normalized"] for job in fresh_emu.jobs()} == {"cancelled"}


def test_sensor_reads_2000_ids(many_jobs: list[str], fresh_emu: Any) -> None:
    """2,000 rather than 10,000: a sync poke reads jobs one after the other (about 15 s for
    10,000 at zero latency); the deferrable path reads them concurrently."""
    ids = many_jobs[:2000]
    for job_id in ids:
        fresh_emu.set_status(job_id, "cancelled")
    sensor = JobCancelledSensor(
        task_id="wait",
        conn_id=CONNS["useapi_v2"],
        job_id=ids,
        hook_params=LARGE_LIST_PARAMS,
        deferrable=False,
    )
    assert sensor.poke(context()) is True
    assert fresh_emu.counters["status_requests"] == len(ids)
    fresh_emu.set_status(ids[-1], "completed")
    with pytest.raises(AirflowException, match="will never reach a success status"):
        sensor.poke(context())
