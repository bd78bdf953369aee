"""Job id validation and encoding (docs/statuses.md: bad input gets a clear error and no request)."""

from __future__ import annotations

import ast
from urllib.parse import unquote

import pytest

from airflow_provider_cancel.exceptions import CancelApiError, InvalidJobIdError
from airflow_provider_cancel.job_ids import (
    MAX_JOB_ID_LENGTH,
    encode_path_segment,
    encode_query_value,
    normalize_job_ids,
)

TASK = "cancel_midjourney_jobs"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("job:1", ["job:1"]),
        ("  padded  ", ["  padded  "]),  # ids are opaque: kept exactly
        (123, ["123"]),
        (0, ["0"]),
        (-7, ["-7"]),
        (["a", "b"], ["a", "b"]),
        (("a", "b"), ["a", "b"]),
        (["b", "a", "b", "a"], ["b", "a"]),  # duplicates removed, first order kept
        ([1, "1", 2], ["1", "2"]),
        ({"only"}, ["only"]),
        (frozenset({"x"}), ["x"]),
        ("['a', 'b']", ["a", "b"]),  # a Jinja-rendered list
        ('["a", "b", "a"]', ["a", "b"]),  # JSON
        ("[1, 2]", ["1", "2"]),
        ("[job:1]", ["[job:1]"]),  # looks like a list, is not one: an opaque id
        ("job:1/2?x=y#f%20 z", ["job:1/2?x=y#f%20 z"]),
        ("ジョブ-ü", ["ジョブ-ü"]),
        ("..", [".."]),
        ("x" * MAX_JOB_ID_LENGTH, ["x" * MAX_JOB_ID_LENGTH]),
    ],
)
def test_valid_ids(value, expected):
    assert normalize_job_ids(value, task=TASK) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        " ",
        "\t\n",
        "None",
        1.0,
        1.5,
        float("nan"),
        True,
        False,
        {"job_id": "a"},
        {},
        [],
        (),
        set(),
        "[]",
        "['a', ['b']]",
        [["a"]],
        ["a", ["b"]],
        ["a", ("b",)],
        ["a", {"b": 1}],
        ["a", None],
        ["a", ""],
        ["a", "  "],
        ["a", "None"],
        ["a", 1.5],
        ["a", True],
        "['a', None]",
        "['a', '']",
        b"job:1",
        object(),
        "x" * (MAX_JOB_ID_LENGTH + 1),
        "bad\udc80surrogate",
    ],
    ids=repr,
)
def test_invalid_ids_name_the_task_and_the_value(value):
    with pytest.raises(InvalidJobIdError) as caught:
        normalize_job_ids(value, task=TASK)
    message = str(caught.value)
    assert TASK in message
    shown = repr(value)
    if isinstance(value, str) and value.startswith("["):
        # a rendered list is named as the list it was read back into, or as given
        assert shown in message or repr(ast.literal_eval(value)) in message
    elif len(shown) <= 100:
        assert shown in message
    else:
        assert shown[:50] in message  # long values are shortened, not dropped
    assert len(message) < 600


def test_invalid_job_id_error_is_a_cancel_api_error_and_value_error():
    with pytest.raises(CancelApiError):
        normalize_job_ids(None, task=TASK)
    with pytest.raises(ValueError, match="None"):
        normalize_job_ids("None", task=TASK)


def test_none_string_message_points_at_the_upstream_task():
    with pytest.raises(InvalidJobIdError, match="XCom"):
        normalize_job_ids("None", task=TASK)


def test_default_task_name():
    with pytest.raises(InvalidJobIdError, match="<unknown>"):
        normalize_job_ids(None)


@pytest.mark.parametrize(
    "job_id",
    [
        "job:20241218021941022-user:1308-channel:1316-bot:midjourney",
        "a/b",
        "a?b=c&d",
        "a#b",
        "100%",
        "%2F",
        "with space",
        "plus+sign",
        "ジョブ ü",
        "..",
        ".",
        "...",
        "a/../b",
        "../../v2/account",
    ],
)
def test_encoding_round_trips_and_cannot_escape_the_segment(job_id):
    segment = encode_path_segment(job_id)
    query = encode_query_value(job_id)
    assert unquote(segment) == job_id
    assert unquote(query) == job_id
    for encoded in (segment, query):
        for forbidden in "/?#& +":
            assert forbidden not in encoded
    assert segment not in (".", "..")
    assert set(segment) != {"."}


def test_encoding_exact():
    assert encode_path_segment("job:1/2?x=y#f%20 z") == "job%3A1%2F2%3Fx%3Dy%23f%2520%20z"
    assert encode_query_value("a+b c") == "a%2Bb%20c"
    assert encode_path_segment("..") == "%2E%2E"
    assert encode_path_segment("ü") == "%C3%BC"


def test_any_sequence_is_a_list_of_ids() -> None:
    """A mapped task's XComArg resolves to a lazy sequence, not a list."""
    from collections.abc import Sequence

    class LazySequence(Sequence[str]):
        def __init__(self, items: list[str]) -> None:
            self.items = items

        def __getitem__(self, index):
            return self.items[index]

        def __len__(self) -> int:
            return len(self.items)

    assert normalize_job_ids(LazySequence(["a", "b", "a"])) == ["a", "b"]
    with pytest.raises(InvalidJobIdError, match="nested"):
        normalize_job_ids([LazySequence(["a"])], task="t")
    with pytest.raises(InvalidJobIdError, match="bytes"):
        normalize_job_ids(b"job-1", task="t")


@pytest.mark.parametrize(
    "value",
    [10**5000, -(10**5000), [1, 10**5000], 10**4200, 2**20000],
    ids=["past-str-limit", "negative", "in-a-list", "over-4096-digits", "power-of-two"],
)
def test_huge_ints_are_refused_naming_the_task(value: object) -> None:
    with pytest.raises(InvalidJobIdError, match="Task 'cancel_big'") as caught:
        normalize_job_ids(value, task="cancel_big")
    assert len(str(caught.value)) < 400  # the value is described, not printed


def test_an_int_of_4096_digits_is_still_an_id() -> None:
    assert normalize_job_ids(10**4095, task="t") == ["1" + "0" * 4095]
