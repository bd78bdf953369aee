"""The one stand-in for a task instance, for tests that call ``execute``, ``poke`` or a
callback outside a task runner (no Airflow DB). Tests about Airflow itself use real Airflow
(tests/dags, tests/e2e); this is only the slice of a task instance our code touches."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

_RUN_IDS = itertools.count()


class FakeTI:
    """XCom (``xcoms`` keyed by task id, or by ``(task id, key)``), what was pushed and pulled,
    the keys a sensor reads, and in reschedule mode the date of the first reschedule
    (``None``: this is the first try).

    Airflow 3 asks the task instance for that date (``get_first_reschedule_date``); Airflow 2
    reads ``max_tries`` and the TI's keys and looks the date up in the DB (see
    ``tests/sensors/conftest.py``)."""

    def __init__(self, xcoms: Mapping[Any, Any] | None = None, task_id: str = "cancel") -> None:
        self.task_id = task_id
        self.dag_id = "fake_dag"
        self.run_id = f"fake_run_{next(_RUN_IDS)}"
        self.map_index = -1
        self.try_number = 1
        self.max_tries = 0
        self.xcoms = dict(xcoms or {})
        self.pushed: dict[str, Any] = {}
        self.pulls: list[tuple[Any, str]] = []
        self.first_reschedule_date: Any = None

    def get_first_reschedule_date(self, context: Any) -> Any:
        return self.first_reschedule_date

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        """As Airflow's: one task id answers its value, a list of ids a list of every
        instance's value (each map index's, for a value given as :class:`MapIndexes`)."""
        if isinstance(task_ids, list):
            values: list[Any] = []
            for task_id in task_ids:
                value = self.xcom_pull(task_id, key)
                values.extend(value if isinstance(value, MapIndexes) else [value])
            return values
        self.pulls.append((task_ids, key))
        if (task_ids, key) in self.xcoms:
            return self.xcoms[(task_ids, key)]
        return self.xcoms.get(task_ids) if key == "return_value" else None


class MapIndexes(list[Any]):
    """A :class:`FakeTI` XCom value: what each map index of a mapped task pushed."""


class FakeTaskStateStore:
    """``context["task_state_store"]`` (Airflow >= 3.3) without a supervisor: a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)
