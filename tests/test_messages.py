"""What the provider writes per job: shortened at word boundaries, each fact said once, at a
level that matches (a job left running is an ERROR, a missing job a WARNING), duplicates
counted. Operator, sensor and callback run against the emulator; their real log lines are
read back (structlog on Airflow 3, the stdlib logger on Airflow 2)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, Context
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_cancel.callbacks import cancel_on_failure
from airflow_provider_cancel.messages import describe_result, describe_state, shorten
from airflow_provider_cancel.operators.cancel import CancelJobOperator
from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor
from airflow_provider_cancel.status import CancelOutcome, CancelResult, JobStatus
from tests.conftest import FAST

Lines = Callable[[], list[tuple[str, str]]]


# ---------------------------------------------------------------------- shorten


def test_shorten_cuts_at_a_word_boundary() -> None:
    assert shorten("Unable to locate job abc", 20) == "Unable to locate…"
    assert shorten("short", 20) == "short"
    assert shorten("exactly twenty chars", 20) == "exactly twenty chars"
    assert shorten("job " + "x" * 50, 20) == "job " + "x" * 15 + "…"  # one huge word: cut


@given(st.text(alphabet=st.sampled_from("ab \n"), max_size=80), st.integers(2, 60))
def test_shorten_never_exceeds_and_never_splits_a_short_word(text: str, limit: int) -> None:
    short = shorten(text, limit)
    assert len(short) <= limit
    text = " ".join(text.split())  # shorten() collapses runs of whitespace first
    if short == text:
        return
    assert short.endswith("…")
    kept = short[:-1]
    assert text.startswith(kept)
    cut_inside = bool(kept) and not kept[-1].isspace() and not text[len(kept)].isspace()
    if cut_inside:  # only a word too long to keep whole (ending before it drops > half)
        last_space = max(kept.rfind(" "), kept.rfind("\n"))
        assert last_space < limit // 2


# ---------------------------------------------------------------------- one line per job


def _words(line: str) -> list[str]:
    return re.findall(r"[a-z_]+", line.lower())


@pytest.mark.parametrize("outcome", list(CancelOutcome))
@pytest.mark.parametrize("status", list(JobStatus))
@pytest.mark.parametrize("raw", [None, "same", "Other"])
@pytest.mark.parametrize("message", ["", "outcome", "names the raw status"])
def test_a_result_line_says_each_status_once(
    outcome: CancelOutcome, status: JobStatus, raw: str | None, message: str
) -> None:
    raw_status = status.value if raw == "same" else raw
    text = {"outcome": outcome.value, "names the raw status": f"job reads {raw_status}"}.get(
        message, ""
    )
    line = describe_result(CancelResult("job-1", outcome, status, raw_status, text))

    head = f"job-1: {outcome.value}"
    assert line.startswith(head)
    said_by_message = text and text != outcome.value
    assert line.endswith(f": {text}") if said_by_message else True
    details = line[len(head) : len(line) - (len(text) + 2 if said_by_message else 0)]
    assert "None" not in details
    # The details add only what neither the outcome nor the hook's message said already:
    # never "cancelled (status cancelled, raw 'cancelled') cancelled".
    said = [outcome.value, *_words(text if said_by_message else "")]
    for word in {status.value, (raw_status or "").lower()} - {""}:
        assert _words(details).count(word) <= (0 if word in said else 1), line


def test_the_lines_of_the_issue() -> None:
    cancelled = CancelResult(
        "j", CancelOutcome.CANCELLED, JobStatus.CANCELLED, "cancelled", "cancelled"
    )
    assert describe_result(cancelled) == "j: cancelled"
    finished = CancelResult(
        "j",
        CancelOutcome.ALREADY_FINISHED,
        JobStatus.COMPLETED,
        "Done",
        "job had already ended (Done)",
    )
    assert (
        describe_result(finished)
        == "j: already_finished (status completed): job had already ended (Done)"
    )
    error = CancelResult("j", CancelOutcome.ERROR, message="TransportError: no answer")
    assert describe_result(error) == "j: error: TransportError: no answer"
    assert describe_state("j", "queued", "created") == "j: queued (raw 'created')"
    assert describe_state("j", "cancelled", None) == "j: cancelled"
    assert describe_state("j", "cancelled", "Cancelled") == "j: cancelled"


# ---------------------------------------------------------------------- real log lines


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[Lines]:
    """Every (level, message) logged: structlog events (Airflow 3's ``self.log``) and stdlib
    records (callbacks; Airflow 2's ``self.log``)."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="airflow.task")
    try:
        from structlog.testing import capture_logs
    except ImportError:  # Airflow 2 without structlog: the stdlib records are everything
        entries: list[MutableMapping[str, Any]] = []

        def read() -> list[tuple[str, str]]:
            return [(r.levelname.lower(), r.getMessage()) for r in caplog.records]

        yield read
        return
    with capture_logs() as entries:

        def read() -> list[tuple[str, str]]:
            logged = [(str(e["log_level"]), str(e["event"])) for e in entries]
            return logged + [(r.levelname.lower(), r.getMessage()) for r in caplog.records]

        yield read


def _level_of(found: list[tuple[str, str]], prefix: str) -> list[str]:
    return [level for level, message in found if message.startswith(prefix)]


def test_operator_logs_error_and_not_found_outcomes_at_their_level(
    emulator: Any, useapi_conn: str, set_connection: Any, lines: Lines
) -> None:
    running, done = emulator.submit_useapi(), emulator.submit_useapi()
    emulator.set_status(done, "completed")
    emulator.set_status(running, "created")
    operator = CancelJobOperator(
        task_id="cancel",
        conn_id=useapi_conn,
        job_id=[running, done, "job:gone", running, "job:gone"],
        hook_params=FAST,
    )
    context: Context = {"ti": _TI(), "task_instance": _TI()}

    with pytest.raises(AirflowException, match="job:gone"):
        operator.execute(context)

    found = lines()
    assert ("info", "2 duplicate ids ignored") in found
    assert _level_of(found, f"{running}: cancelled") == ["info"]
    assert _level_of(found, f"{done}: already_finished") == ["info"]
    assert _level_of(found, "job:gone: not_found") == ["warning"]
    assert not any("raw None" in m or "cancelled (status cancelled" in m for _, m in found)


def test_operator_logs_a_job_it_could_not_cancel_at_error(
    set_connection: Any, lines: Lines
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn_id = set_connection("down", "useapi", host=f"http://127.0.0.1:{port}", password="t")
    operator = CancelJobOperator(
        task_id="cancel", conn_id=conn_id, job_id="job-1", hook_params={**FAST, "retry_limit": 0}
    )

    with pytest.raises(AirflowException, match="job-1"):
        operator.execute({"ti": _TI(), "task_instance": _TI()})

    assert _level_of(lines(), "job-1: error") == ["error"]


def test_sensor_logs_duplicates_and_no_raw_none(
    emulator: Any, writetext_conn: str, lines: Lines
) -> None:
    job = emulator.submit_writetext()
    emulator.set_status(job, "Cancelled")
    sensor = JobCancelledSensor(
        task_id="wait", conn_id=writetext_conn, job_id=[job, job], hook_params=FAST
    )

    assert sensor.poke({}) is True
    sensor.log.info("%s", "marker")
    found = lines()
    assert _level_of(found, f"{job}: cancelled") == ["info"]
    assert not any("raw None" in m for _, m in found)


def test_callback_counts_duplicates(emulator: Any, useapi_conn: str, lines: Lines) -> None:
    job = emulator.submit_useapi()
    callback = cancel_on_failure(useapi_conn, job_ids=[job, job, job], hook_params=FAST)

    callback({"ti": _TI(), "task_instance": _TI()})

    found = lines()
    assert any(m.endswith(": 2 duplicate ids ignored") for _, m in found), found
    assert _level_of(found, f"{job}: cancelled") == ["info"]


class _TI:
    task_id = "cancel"

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed = {key: value}

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return None


def test_a_long_wait_says_how_many_ids_it_does_not_list() -> None:
    from airflow_provider_cancel.status import JobState, assess

    states = {f"job-{i}": JobState(f"job-{i}", JobStatus.RUNNING, "Running") for i in range(12)}
    message = assess(states, frozenset({JobStatus.CANCELLED})).message
    assert message.startswith("waiting for 12 job(s): 'job-0', 'job-1'")
    assert message.endswith("'job-9' and 2 more")
