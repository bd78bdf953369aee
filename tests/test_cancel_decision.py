"""``answers.decide_cancel``: a cancel's outcome from its answer, the API's codes and, when it
asks for one, the read of the job that followed. Pure, so tested without any HTTP."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_cancel.answers import (
    CancelAnswer,
    CancelCodes,
    FollowUpRead,
    Next,
    decide_cancel,
)
from airflow_provider_cancel.status import CancelOutcome, CancelResult, JobState, JobStatus

CODES = CancelCodes(
    cancelled=frozenset({204}), missing=frozenset({404}), unclear_refusals=frozenset({409})
)
UNTRACKED = CancelCodes(untracked=frozenset({200, 204}), missing=frozenset({404}))


def state(status: JobStatus, raw: str | None = None) -> JobState:
    return JobState("j", status, raw or status.value)


def answer(code: int, *, yes: bool | None = None, body: JobState | None = None) -> CancelAnswer:
    is_yes = 200 <= code < 300 if yes is None else yes
    return CancelAnswer(code, is_yes, body, "" if is_yes else "server text")


def outcome(decided: CancelResult | Next) -> CancelOutcome | Next:
    return decided.outcome if isinstance(decided, CancelResult) else decided


@pytest.mark.parametrize(
    ("given_answer", "codes", "read", "expected"),
    [
        (answer(204), CODES, None, CancelOutcome.CANCELLED),
        (answer(200, body=state(JobStatus.CANCELLED)), CODES, None, CancelOutcome.CANCELLED),
        (answer(200, body=state(JobStatus.CANCELLING)), CODES, None, CancelOutcome.CANCELLING),
        (answer(200, body=state(JobStatus.COMPLETED)), CODES, None, CancelOutcome.ALREADY_FINISHED),
        (answer(200), CODES, None, Next.READ),  # says nothing: read once
        (answer(200), CODES, FollowUpRead(state(JobStatus.CANCELLED)), CancelOutcome.CANCELLED),
        (answer(200), CODES, FollowUpRead(missing="gone"), CancelOutcome.CANCELLING),
        (answer(200), CODES, FollowUpRead(failure="timeout"), CancelOutcome.CANCELLING),
        (
            answer(200, yes=False),
            CODES,
            FollowUpRead(state(JobStatus.RUNNING)),
            CancelOutcome.ERROR,
        ),
        (answer(404), CODES, None, CancelOutcome.NOT_FOUND),
        (answer(409), CODES, None, Next.READ),
        (
            answer(409),
            CODES,
            FollowUpRead(state(JobStatus.COMPLETED)),
            CancelOutcome.ALREADY_FINISHED,
        ),
        (answer(409), CODES, FollowUpRead(state(JobStatus.RUNNING)), CancelOutcome.ERROR),
        (answer(409), CODES, FollowUpRead(missing="gone"), CancelOutcome.NOT_FOUND),
        (answer(409), CODES, FollowUpRead(failure="timeout"), Next.READ_FAILED),
        (answer(500), CODES, None, Next.ERROR),
        (answer(401), CODES, None, Next.ERROR),
        (answer(200), UNTRACKED, None, CancelOutcome.UNTRACKED),
        (answer(200, yes=False), UNTRACKED, None, CancelOutcome.ERROR),  # a login page
    ],
)
def test_decide_cancel(given_answer, codes, read, expected) -> None:
    assert outcome(decide_cancel("j", given_answer, codes, confirm=True, read=read)) == expected


def test_without_confirm_an_answer_that_says_nothing_is_not_read() -> None:
    decided = decide_cancel("j", answer(200), CODES, confirm=False)
    assert isinstance(decided, CancelResult)
    assert (decided.outcome, decided.status) == (CancelOutcome.CANCELLING, JobStatus.CANCELLING)


def test_messages_carry_what_the_server_and_the_read_said() -> None:
    missing = decide_cancel("j", answer(404), CODES, confirm=True)
    assert isinstance(missing, CancelResult)
    assert missing.message == "server text"
    refused = decide_cancel(
        "j", answer(409), CODES, confirm=True, read=FollowUpRead(state(JobStatus.RUNNING, "busy"))
    )
    assert isinstance(refused, CancelResult)
    assert "HTTP 409: server text" in refused.message
    assert "'busy'" in refused.message


_codes = st.frozensets(st.sampled_from([200, 202, 204, 400, 404, 409, 422, 500]), max_size=3)
_statuses = st.sampled_from(list(JobStatus))
_reads = st.one_of(
    st.builds(lambda s: FollowUpRead(state(s)), _statuses),
    st.just(FollowUpRead(missing="gone")),
    st.just(FollowUpRead(failure="timeout")),
)


@settings(max_examples=200, deadline=None)
@given(
    code=st.sampled_from([200, 202, 204, 400, 401, 404, 409, 422, 429, 500, 503]),
    yes=st.booleans(),
    body=st.one_of(st.none(), _statuses),
    codes=st.builds(CancelCodes, _codes, _codes, _codes, _codes),
    read=_reads,
    confirm=st.booleans(),
)
def test_cancelled_only_on_the_apis_word(code, yes, body, codes, read, confirm) -> None:
    """``cancelled`` needs a documented code, a body or read saying so after the API's yes;
    with a read given the decision never asks for another one."""
    given_answer = CancelAnswer(code, yes and 200 <= code < 300, body and state(body))
    first = decide_cancel("j", given_answer, codes, confirm=confirm)
    decided = decide_cancel("j", given_answer, codes, confirm=confirm, read=read)
    assert decided is not Next.READ
    if first is not Next.READ:
        assert decided == first  # a read is used only when asked for
    if outcome(decided) is CancelOutcome.CANCELLED and code not in codes.cancelled:
        assert given_answer.is_api_answer
        said = [given_answer.state, read.state if first is Next.READ else None]
        assert any(s is not None and s.status is JobStatus.CANCELLED for s in said)
