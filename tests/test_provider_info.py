"""``get_provider_info()`` and the entry point Airflow discovers it through."""

from __future__ import annotations

import importlib
import importlib.metadata
import json

import pytest

import airflow_provider_cancel
from airflow_provider_cancel import get_provider_info
from airflow_provider_cancel.hooks.base import JobApiHook

DISTRIBUTION = "airflow-provider-cancel"


@pytest.fixture(scope="module")
def info():
    return get_provider_info()


def _import(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_package_name_is_the_distribution(info):
    assert info["package-name"] == DISTRIBUTION
    dist = importlib.metadata.distribution(DISTRIBUTION)
    assert dist.metadata["Name"] == DISTRIBUTION
    assert airflow_provider_cancel.__version__ in info["versions"]
    assert dist.version == airflow_provider_cancel.__version__


def test_entry_point_points_at_get_provider_info():
    eps = importlib.metadata.entry_points(group="apache_airflow_provider")
    ours = [ep for ep in eps if ep.dist is not None and ep.dist.name == DISTRIBUTION]
    assert len(ours) == 1
    assert ours[0].load() is get_provider_info


def test_provider_info_is_json_and_has_required_keys(info):
    json.dumps(info)
    for key in ("package-name", "name", "description", "versions", "connection-types"):
        assert info[key]


def test_both_connection_types_declared(info):
    types = {ct["connection-type"]: ct for ct in info["connection-types"]}
    assert set(types) == {"useapi", "writetext"}
    assert types["useapi"]["hook-class-name"] == "airflow_provider_cancel.hooks.useapi.UseApiHook"
    assert (
        types["writetext"]["hook-class-name"]
        == "airflow_provider_cancel.hooks.writetext.WriteTextHook"
    )


@pytest.mark.parametrize("conn_type", ["useapi", "writetext"])
def test_connection_type_fields(info, conn_type):
    (ct,) = [c for c in info["connection-types"] if c["connection-type"] == conn_type]
    hook_class = _import(ct["hook-class-name"])
    assert issubclass(hook_class, JobApiHook)
    assert hook_class.conn_type == conn_type
    assert hook_class.default_conn_name == f"{conn_type}_default"
    assert callable(hook_class.test_connection)
    assert ct["hook-name"]

    behaviour = ct["ui-field-behaviour"]
    assert set(behaviour) >= {"hidden-fields", "relabeling"}
    assert "password" not in behaviour["hidden-fields"]
    assert "host" not in behaviour["hidden-fields"]
    assert "password" in behaviour["relabeling"]

    for name, spec in ct.get("conn-fields", {}).items():
        assert spec["label"], name
        assert "schema" in spec, name


def test_listed_hook_modules_import(info):
    for hook in info["hooks"]:
        for module in hook["python-modules"]:
            importlib.import_module(module)
