"""The connection fields the docs list are the ones the forms have: the *Form field* table of
docs/connections.md and the README's *Extra, on the form* row, against ``get_provider_info()``
(what Airflow 3 builds its form from, and Airflow 2's form through ``connection_form``)."""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_cancel import get_provider_info
from tests.docs.pages import DOCS, README, table

CONNECTIONS = DOCS / "connections.md"


def _types() -> dict[str, dict[str, Any]]:
    return {entry["connection-type"]: entry for entry in get_provider_info()["connection-types"]}


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_form_table_lists_each_types_fields_labels_choices_and_defaults() -> None:
    rows = table(CONNECTIONS, "| Form field |")
    header, body = rows[0], rows[1:]
    types = _types()
    columns = {
        conn_type: header.index(f"`{entry['hook-name']}`") for conn_type, entry in types.items()
    }
    for conn_type, entry in types.items():
        column = columns[conn_type]
        behaviour = entry["ui-field-behaviour"]
        shown = {row[0]: row[column] for row in body if row[column] not in ("—", "-", "")}
        # the standard fields it shows, relabelled, with their placeholders
        for field in ("host", "password"):
            label = behaviour["relabeling"][field]
            row = next((r for r in shown if label in r), None)
            assert row is not None, f"{conn_type}: no row for the {label!r} field"
            assert f"`{behaviour['placeholders'][field]}`" in shown[row], (conn_type, field)
        # the extra fields, each with its choices and the preselected one
        fields = entry.get("conn-fields", {})
        listed = {row.removesuffix(" (extra)") for row in shown if row.endswith(" (extra)")}
        assert listed == {spec["label"] for spec in fields.values()}, conn_type
        for spec in fields.values():
            cell = shown[f"{spec['label']} (extra)"]
            schema = spec["schema"]
            if "enum" in schema:
                assert set(_ticked(cell)) == set(schema["enum"]), (conn_type, spec["label"])
            if "default" in schema:
                assert f"`{schema['default']}` (preselected" in cell, (conn_type, spec["label"])
    hidden = {row[0].split()[0].lower() for row in body}
    for entry in types.values():
        for field in entry["ui-field-behaviour"]["hidden-fields"]:
            assert field not in hidden, f"{field} is hidden on the form but listed"


def test_the_readme_names_the_form_fields_and_their_choices() -> None:
    rows = {row[0]: row for row in table(README, "| | `useapi` | `writetext` |")}
    header = table(README, "| | `useapi` | `writetext` |")[0]
    form = rows["Extra, on the form"]
    for conn_type, entry in _types().items():
        cell = form[header.index(f"`{conn_type}`")]
        fields = entry.get("conn-fields", {})
        named = {m for m in re.findall(r"`(\w+)`:", cell)}
        assert named == set(fields), conn_type
        for key, spec in fields.items():
            after = cell.split(f"`{key}`:", 1)[1].split(";")[0]
            for choice in spec["schema"].get("enum", []):
                assert f"`{choice}`" in after, (conn_type, key, choice)
            if "default" in spec["schema"]:
                assert f"`{spec['schema']['default']}` (default" in after, (conn_type, key)
