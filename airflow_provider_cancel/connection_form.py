"""The connection form of an API on Airflow 3 and on Airflow 2.11, both from its description.

Airflow 3 builds its form from ``get_provider_info()`` (``ui-field-behaviour`` and
``conn-fields``: :func:`provider_entry`) and, because the provider info has them, never calls a
hook's form methods (Airflow 3.2+ warns only when it does). Airflow 2.11 reads only the hook
class's own ``get_ui_field_behaviour`` and ``get_connection_form_widgets``:
:class:`~airflow_provider_cancel.hooks.base.JobApiHook` binds the two classmethods below, which
read the class's ``api``, so both versions show the same fields from one
:class:`~airflow_provider_cancel.hooks.apis.ApiDescription`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_cancel.hooks.apis import ApiDescription

HIDDEN_FIELDS = ("schema", "port", "login")
"""Standard connection fields no API uses."""


def provider_entry(api: ApiDescription) -> dict[str, Any]:
    """``api``'s entry in provider info's ``connection-types`` (what Airflow 3's form shows)."""
    # Airflow 3's form stores every conn-field in the extra, an empty one as null: only fields
    # that always have a value (a choice with a default) are form fields. Tuning settings
    # (timeout, retry_limit, region, ...) stay optional keys of the Extra JSON (docs).
    entry: dict[str, Any] = {
        "connection-type": api.conn_type,
        "hook-class-name": api.hook_class,
        "hook-name": api.hook_name,
        "ui-field-behaviour": {
            "hidden-fields": list(HIDDEN_FIELDS),
            "relabeling": {"password": api.secret_label, "host": "Base URL (optional)"},
            "placeholders": {"host": api.default_host, "password": api.secret_placeholder},
        },
    }
    if api.form_fields:
        entry["conn-fields"] = {name: dict(spec) for name, spec in api.form_fields.items()}
    return entry


def _ui_field_behaviour(cls: type[Any]) -> dict[str, Any]:
    entry = provider_entry(cls.api)
    behaviour = entry["ui-field-behaviour"]
    placeholders = dict(behaviour["placeholders"])
    for name, spec in (entry.get("conn-fields") or {}).items():
        if "default" in spec["schema"]:
            placeholders[name] = str(spec["schema"]["default"])
    return {
        "hidden_fields": list(behaviour["hidden-fields"]),
        "relabeling": dict(behaviour["relabeling"]),
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
    for name, spec in (provider_entry(cls.api).get("conn-fields") or {}).items():
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
