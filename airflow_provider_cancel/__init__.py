"""Cancel jobs on remote APIs from Airflow DAGs and wait until they are really cancelled.

This module stays import-light on purpose: Airflow calls :func:`get_provider_info` while it
discovers providers, and every DAG file that imports an operator imports this package first.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_PACKAGE = "airflow-provider-cancel"


def get_provider_info() -> dict[str, Any]:
    """Describe this provider to Airflow (entry point ``apache_airflow_provider``), from the
    API descriptions of :mod:`airflow_provider_cancel.hooks.apis`."""
    from airflow_provider_cancel.connection_form import provider_entry
    from airflow_provider_cancel.hooks.apis import APIS

    def per_api(modules: list[str]) -> list[dict[str, Any]]:
        return [{"integration-name": api.hook_name, "python-modules": modules} for api in APIS]

    return {
        "package-name": _PACKAGE,
        "name": f"Cancel ({', '.join(api.hook_name for api in APIS)})",
        "description": "Cancel remote jobs from DAGs and wait until they are cancelled.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": api.hook_name,
                "external-doc-url": api.docs_url,
                "tags": ["service"],
            }
            for api in APIS
        ],
        "hooks": [
            {"integration-name": api.hook_name, "python-modules": [api.hook_module]} for api in APIS
        ],
        "operators": per_api(["airflow_provider_cancel.operators.cancel"]),
        "sensors": per_api(["airflow_provider_cancel.sensors.cancelled"]),
        "triggers": per_api(["airflow_provider_cancel.triggers.status"]),
        "connection-types": [provider_entry(api) for api in APIS],
    }
