"""The fault matrix under pytest: one test per cell (fault x call x API x sync/async).

The cells a session selects run once, in parallel on several emulators (see
:func:`fault_matrix.run_all`); each test then checks its own cell, so a failure names the
fault, the API, the call and the path, and says what happened instead.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.apis import APIS

from . import fault_matrix as fm

CELLS = fm.cells()


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest) -> dict[str, fm.Outcome]:
    wanted = [
        cell
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and getattr(item, "callspec", None) is not None
        and item.module is request.module
        and isinstance(cell := item.callspec.params.get("cell"), fm.Cell)
    ]
    return {outcome.cell.id: outcome for outcome in fm.run_all(wanted or CELLS)}


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
def test_cell(cell: fm.Cell, outcomes: dict[str, fm.Outcome]) -> None:
    outcome = outcomes[cell.id]
    assert outcome.passed, (
        f"{cell.id}: expected {cell.expected.label}; got {outcome.got} in {outcome.seconds:.2f}s: "
        + "; ".join(outcome.problems)
    )


def test_matrix_covers_every_fault_call_api_and_path() -> None:
    kinds = {fault.kind for fault in fm.FAULTS if fault.kind}
    assert kinds >= {
        "429", "500", "502", "503", "504", "596", "html", "html200", "malformed", "empty",
        "drop", "hang", "expired_token", "403", "410",
    }  # fmt: skip
    assert {fault.network for fault in fm.FAULTS if fault.network} == {
        "refused",
        "blackhole",
        "dns",
    }
    seen: set[tuple[Any, ...]] = {(c.api, c.call, c.mode) for c in CELLS}
    for api in APIS:
        for call in fm.CALLS:
            for mode in fm.MODES:
                assert ((api.name, call, mode) in seen) is fm.has_call(api, call), (api, call)
    assert {c.api for c in CELLS} == set(fm.APIS)
    # Every retryable fault is tried both once (must recover) and always (must fail typed).
    for kind in fm.RETRYABLE:
        counts = {f.persistent for f in fm.FAULTS if f.kind == kind}
        assert counts == {False, True}, kind


def test_the_printed_table_counts_cells() -> None:
    cells = [c for c in CELLS if c.fault.name == "500 once" and c.api == fm.APIS[0]]
    outcomes = [fm.Outcome(cell, True, "ok", 0.01) for cell in cells]
    text = fm.table(outcomes)
    assert "500 once" in text
    assert "ok/ok" in text
    assert fm.summary(outcomes).startswith(f"cells passed: {len(cells)} / {len(cells)}")
