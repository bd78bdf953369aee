"""The connection forms Airflow builds from this provider, on Airflow 3 and on Airflow 2.11.

Airflow 3 reads ``get_provider_info()`` (``conn-fields``, ``ui-field-behaviour``); Airflow 2.11
reads the hook classes' ``get_ui_field_behaviour`` / ``get_connection_form_widgets``. Both must
show the same fields. What the Airflow 3 UI really shows and stores is checked in a browser by
``make ui-test`` (tests/ui/run_ui.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_provider_cancel import get_provider_info
from airflow_provider_cancel._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_VERSION
from airflow_provider_cancel.hooks.useapi import UseApiHook
from airflow_provider_cancel.hooks.writetext import WriteTextHook

HAS_CONN_FIELDS = tuple(int(n) for n in AIRFLOW_VERSION.split(".")[:2]) >= (3, 2)
"""Airflow >= 3.2 builds the connection form from the provider info's ``conn-fields``."""

# What a user sees in either version's form, written out here (not derived from the code).
SERVICES = [
    "midjourney",
    "faceswap",
    "flowmusic",
    "gemini-notebook",
    "kling",
    "minimax",
    "pixverse",
    "tempolor",
]
EXTRA_FIELDS = {
    "useapi": {
        "service": ("Service", "midjourney", SERVICES),
        "api_version": (
            "API version (Midjourney, PixVerse)",
            "default",
            ["default", "v1", "v2", "v3"],
        ),
    },
    "writetext": {},
}
VERSION_CHOICES_SHOWN = {
    "default": "Service default (v2)",
    "v1": "v1 (PixVerse)",
    "v2": "v2 (Midjourney, PixVerse)",
    "v3": "v3 (Midjourney)",
}
HIDDEN = {"schema", "port", "login"}
LABELS = {"useapi": "API token", "writetext": "API key"}
PLACEHOLDERS = {
    "useapi": {"host": "https://api.useapi.net", "password": "user:1234-…"},
    "writetext": {"host": "https://api.writetext.ai", "password": "your WriteText.ai API key"},
}


def _types() -> dict[str, dict]:
    return {c["connection-type"]: c for c in get_provider_info()["connection-types"]}


@pytest.mark.parametrize("conn_type", sorted(EXTRA_FIELDS))
def test_no_form_field_can_store_null(conn_type):
    """Airflow 3's form stores every conn-field, an untouched one as null (seen in a browser):
    so every field has a default, no type admits null and no choice is null."""
    fields = _types()[conn_type].get("conn-fields", {})
    assert {name: spec["label"] for name, spec in fields.items()} == {
        name: label for name, (label, _, _) in EXTRA_FIELDS[conn_type].items()
    }
    for name, spec in fields.items():
        schema = spec["schema"]
        _, default, choices = EXTRA_FIELDS[conn_type][name]
        assert schema["default"] == default, name
        assert "null" not in json.dumps(schema["type"]), name
        assert schema.get("enum") == choices, name


_AIRFLOW3_FORM = r"""
import json, warnings
import wtforms  # without it Airflow 3 never reaches a hook's form methods: nothing to prove
from airflow.providers_manager import ProvidersManager
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")  # after Airflow's imports, which set their own filters
    pm = ProvidersManager()
    hooks = {t: pm.hooks[t] for t in ("useapi", "writetext")}
    widgets = {k: v.field for k, v in pm.connection_form_widgets.items()
               if k.startswith(("extra__useapi__", "extra__writetext__"))}
    behaviours = {t: pm.field_behaviours.get(t) for t in ("useapi", "writetext")}
print(json.dumps({
    "testable": {t: h.connection_testable for t, h in hooks.items()},
    "widgets": widgets,
    "behaviours": behaviours,
    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
}, default=str))
"""


@pytest.mark.skipif(
    not HAS_CONN_FIELDS,
    reason="needs Airflow >= 3.2: the form from the provider info's conn-fields",
)
def test_airflow3_form_fields_without_deprecation_warnings():
    """A fresh ProvidersManager (its own process) loads our form with no warning about it,
    although the hooks also carry Airflow 2's form methods."""
    done = subprocess.run(
        [sys.executable, "-c", _AIRFLOW3_FORM], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    ours = [w for w in found["warnings"] if "UseApiHook" in w or "WriteTextHook" in w]
    assert ours == []
    assert found["testable"] == {"useapi": True, "writetext": True}
    expected_widgets = {
        f"extra__{t}__{name}" for t, fields in EXTRA_FIELDS.items() for name in fields
    }
    assert set(found["widgets"]) == expected_widgets
    api_version = found["widgets"]["extra__useapi__api_version"]
    assert api_version["value"] == "default"
    assert api_version["schema"]["enum"] == ["default", "v1", "v2", "v3"]
    assert api_version["schema"]["title"] == "API version (Midjourney, PixVerse)"
    assert api_version["schema"]["values_display"] == VERSION_CHOICES_SHOWN
    for conn_type, behaviour in found["behaviours"].items():
        assert set(behaviour["hidden_fields"]) == HIDDEN
        assert behaviour["relabeling"]["password"] == LABELS[conn_type]
        assert behaviour["placeholders"] == PLACEHOLDERS[conn_type]


@pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS,
    reason="Airflow 2 only: its web server's own form class (make test-compat-2.11)",
)
def test_airflow2_connection_form_shows_the_same_fields():
    """Airflow 2.11's own form class, built as its web server builds it."""
    from airflow.providers_manager import ProvidersManager
    from airflow.www.forms import create_connection_form_class
    from flask import Flask
    from flask_babel import Babel
    from werkzeug.datastructures import MultiDict

    manager = ProvidersManager()
    for conn_type in EXTRA_FIELDS:
        behaviour = manager.field_behaviours[conn_type]
        assert set(behaviour["hidden_fields"]) == HIDDEN
        assert behaviour["relabeling"] == {
            "password": LABELS[conn_type],
            "host": "Base URL (optional)",
        }
        for field, placeholder in PLACEHOLDERS[conn_type].items():
            assert behaviour["placeholders"][field] == placeholder
    form_class = create_connection_form_class()
    ours = {name for name in dir(form_class) if name.startswith(("extra__useapi", "extra__wri"))}
    assert ours == {"extra__useapi__api_version", "extra__useapi__service"}

    app = Flask(__name__)
    app.config.update(WTF_CSRF_ENABLED=False, SECRET_KEY="test")
    Babel(app)
    with app.test_request_context():
        form = form_class(data={"conn_id": "u", "conn_type": "useapi"})
        field = form["extra__useapi__api_version"]
        assert field.label.text == "API version (Midjourney, PixVerse)"
        assert field.data == "default"
        assert "v3" in field.description

        def errors(value: str) -> list[str]:
            posted = {"conn_id": "u", "conn_type": "useapi", "extra__useapi__api_version": value}
            form = form_class(formdata=MultiDict(posted))  # as the browser posts it
            form.validate()
            return list(form.errors.get("extra__useapi__api_version", []))

        assert errors("v3") == []
        assert errors("") == []
        assert errors("default") == []
        assert errors("v4") == ["one of default, v1, v2, v3"]


_OLD_FORM = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
out = {}
for m in HookMetaService.hook_meta_data():
    if m.connection_type in ("useapi", "writetext"):
        out[m.connection_type] = {
            "extra": {
                name.rsplit("__", 1)[-1]: [f["schema"]["title"], f["value"], f["schema"].get("enum")]
                for name, f in (m.extra_fields or {}).items()
            },
            "password": [m.standard_fields.password.title, m.standard_fields.password.placeholder],
            "login_hidden": m.standard_fields.login.hidden,
        }
print(json.dumps(out))
"""


@pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS or HAS_CONN_FIELDS,
    reason="Airflow 3.0 and 3.1 only: Airflow >= 3.2 reads conn-fields, 2.11 has its own form",
)
def test_airflow_3_0_and_3_1_forms_come_from_the_hooks_form_methods():
    """Before conn-fields (Airflow 3.2) the API server builds the form from the hooks' form
    methods, with stand-ins for wtforms and flask_appbuilder: the same fields and choices. In a
    fresh process, as an API server builds it (the suite's own ProvidersManager is shared)."""
    done = subprocess.run(
        [sys.executable, "-c", _OLD_FORM], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metas = json.loads(done.stdout.strip().splitlines()[-1])
    for conn_type, fields in EXTRA_FIELDS.items():
        meta = metas[conn_type]
        shown = {name: tuple(v) for name, v in meta["extra"].items()}
        assert shown == fields, conn_type
        assert meta["password"] == [LABELS[conn_type], PLACEHOLDERS[conn_type]["password"]]
        assert meta["login_hidden"]


# What the docs list of these forms is checked against get_provider_info() in
# tests/docs/test_connection_fields.py.


def test_the_service_choices_are_the_services_the_hook_knows():
    from airflow_provider_cancel.hooks.useapi_services import service_names

    assert sorted(SERVICES) == service_names()


def test_the_version_choices_mean_something_for_a_versioned_service():
    """Each version offered is a version of Midjourney or PixVerse (the services with two), and
    the help text says which; "default" is each service's default."""
    from airflow_provider_cancel.hooks.useapi_services import find_service, versions_of

    versioned = {name: versions_of(name) for name in SERVICES if len(versions_of(name)) > 1}
    assert versioned == {"midjourney": ["v2", "v3"], "pixverse": ["v1", "v2"]}
    offered = EXTRA_FIELDS["useapi"]["api_version"][2]
    assert set(offered) - {"default"} == {v for versions in versioned.values() for v in versions}
    for name in versioned:
        assert find_service(name, "default") == find_service(name, None)
    spec = _types()["useapi"]["conn-fields"]["api_version"]
    assert spec["description"].startswith(
        "Only Midjourney and PixVerse have API versions; other services ignore this."
    )
    assert "Extra Fields JSON" not in spec["description"]


def test_the_form_default_version_works_for_every_service(tmp_path, monkeypatch):
    """What a saved form stores (``api_version: default``) is accepted by every service."""
    from airflow_provider_cancel.hooks.useapi import UseApiHook

    for name in SERVICES:
        monkeypatch.setenv(
            "AIRFLOW_CONN_FORM_SAVED",
            json.dumps(
                {
                    "conn_type": "useapi",
                    "password": "t",
                    "extra": {"service": name, "api_version": "default"},
                }
            ),
        )
        hook = UseApiHook("form_saved")
        hook.check_connection()
        assert hook.service.name == name


@pytest.mark.parametrize("hook_class", [UseApiHook, WriteTextHook])
def test_each_hook_class_has_its_own_form_methods(hook_class):
    # Airflow 2.11, 3.0 and 3.1 read the form methods only from the hook class's own __dict__
    # (providers_manager): inherited ones are never called, and the form loses its fields.
    assert "get_connection_form_widgets" in hook_class.__dict__
    assert "get_ui_field_behaviour" in hook_class.__dict__
