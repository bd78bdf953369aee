"""The connection form on Airflow 2.x, derived from the provider info Airflow 3 reads.

Airflow 3 builds its form from ``get_provider_info()`` (``ui-field-behaviour`` and
``conn-fields``) and, because the provider info has them, never calls a hook's form methods
(Airflow 3.2+ warns only when it does). Airflow 2.11 reads only the hook class's own
``get_ui_field_behaviour`` and ``get_connection_form_widgets``. Each hook binds the two
classmethods below, so both versions show the same fields from one description.

Example::

    class UseApiHook(JobApiHook):
        conn_type = "useapi"
        get_ui_field_behaviour = connection_form.get_ui_field_behaviour
        get_connection_form_widgets = connection_form.get_connection_form_widgets
"""

from __future__ import annotations

from typing import Any


def connection_type_info(conn_type: str) -> dict[str, Any]:
    """The provider info entry of ``conn_type`` (``KeyError`` for a type not declared)."""
    from airflow_provider_cancel import get_provider_info

    for entry in get_provider_info()["connection-types"]:
        if entry["connection-type"] == conn_type:
            return dict(entry)
    raise KeyError(conn_type)


def _ui_field_behaviour(cls: type[Any]) -> dict[str, Any]:
    behaviour = connection_type_info(cls.conn_type)["ui-field-behaviour"]
    fields = connection_type_info(cls.conn_type).get("conn-fields") or {}
    placeholders = dict(behaviour.get("placeholders", {}))
    for name, spec in fields.items():
        if "default" in spec["schema"]:
            placeholders[name] = str(spec["schema"]["default"])
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": placeholders,
    }


def _connection_form_widgets(cls: type[Any]) -> dict[str, Any]:
    # Airflow 2's web server calls this, and Airflow 3.0 and 3.1's API server (no conn-fields
    # before 3.2), which swaps wtforms' fields and ``any_of`` for stand-ins that it turns into
    # the form's fields and choices. Only Airflow 2 has flask_appbuilder and flask_babel for sure:
    # Airflow 3.0 stand-ins only the modules installed (3.1 all of them).
    from wtforms import StringField
    from wtforms.validators import Optional, any_of

    try:
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
    except ImportError:  # Airflow 3.0 without the FAB provider
        BS3TextFieldWidget, lazy_gettext = None, str

    widgets: dict[str, Any] = {}
    for name, spec in (connection_type_info(cls.conn_type).get("conn-fields") or {}).items():
        schema = spec["schema"]
        validators: list[Any] = [Optional()]
        if "enum" in schema:  # a validator on Airflow 2 (no select field there), choices on 3.0/3.1
            choices = any_of(schema["enum"])  # the stand-in takes no message argument
            choices.message = f"one of {', '.join(schema['enum'])}"
            validators.append(choices)
        widgets[name] = StringField(
            lazy_gettext(spec["label"]),
            widget=BS3TextFieldWidget() if BS3TextFieldWidget else None,
            description=spec.get("description", ""),
            default=schema.get("default"),
            validators=validators,
        )
    return widgets


get_ui_field_behaviour: classmethod[Any, [], dict[str, Any]] = classmethod(_ui_field_behaviour)
"""Airflow 2's ``get_ui_field_behaviour``: hidden, relabelled fields and placeholders."""

get_connection_form_widgets: classmethod[Any, [], dict[str, Any]] = classmethod(
    _connection_form_widgets
)
"""Airflow 2's ``get_connection_form_widgets``: one text field per ``conn-fields`` entry."""
