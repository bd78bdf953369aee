"""Every Python block of the README and the user pages is compiled, and run unless marked as a
fragment: inside an open DAG (so operators are built and their parse-time checks run), with
``useapi_default`` and ``writetext_default`` pointing at the emulator."""

from __future__ import annotations

import ast
import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_cancel._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_VERSION
from tests.conftest import USEAPI_TOKEN, WRITETEXT_KEY
from tests.docs.pages import Block, python_blocks, user_pages

BLOCKS = python_blocks(user_pages())
HAS_DEADLINES = AIRFLOW_V_3_0_PLUS and tuple(map(int, AIRFLOW_VERSION.split(".")[:2])) >= (3, 1)


def _compile(block: Block) -> Any:
    return compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_the_pages_have_python_blocks_and_most_run() -> None:
    assert len(BLOCKS) >= 10
    assert sum(not b.compile_only for b in BLOCKS) >= len(BLOCKS) - 3


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_every_python_block_compiles(block: Block) -> None:
    _compile(block)


RUNNABLE = [b for b in BLOCKS if not b.compile_only]


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the blocks import airflow.sdk (Airflow 3)")
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
def test_every_runnable_python_block_runs(
    block: Block, emulator: Any, set_connection: Callable[..., str]
) -> None:
    if "DeadlineAlert" in block.code and not HAS_DEADLINES:
        pytest.skip("deadline alerts came with Airflow 3.1")
    from airflow.sdk import DAG

    set_connection("useapi_default", "useapi", host=emulator.url, password=USEAPI_TOKEN)
    set_connection("writetext_default", "writetext", host=emulator.url, password=WRITETEXT_KEY)
    namespace: dict[str, Any] = {"__name__": "docs_block"}
    dag_id = "docs_" + block.where.replace("/", "_").replace(".", "_").replace(":", "_")
    with DAG(dag_id=dag_id, schedule=None):
        result = eval(_compile(block), namespace)
        if inspect.iscoroutine(result):
            asyncio.run(result)
