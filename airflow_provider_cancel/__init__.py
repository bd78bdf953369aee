"""Cancel jobs on remote APIs from Airflow DAGs and wait until they are really cancelled.

This module stays import-light on purpose: Airflow calls :func:`get_provider_info` while it
discovers providers, and every DAG file that imports an operator imports this package first.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_PACKAGE = "airflow-provider-cancel"
_INTEGRATIONS = ("useapi.net", "WriteText.ai")


def _connection_type(
    conn_type: str,
    hook_class: str,
    hook_name: str,
    secret_label: str,
    host_placeholder: str,
    extra_fields: dict[str, Any],
) -> dict[str, Any]:
    return {
        "connection-type": conn_type,
        "hook-class-name": hook_class,
        "hook-name": hook_name,
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login"],
            "relabeling": {"password": secret_label, "host": "Base URL (optional)"},
            "placeholders": {"host": host_placeholder, "password": secret_label},
        },
        "conn-fields": {
            **extra_fields,
            "timeout": {
                "label": "Timeout (seconds)",
                "description": "Read timeout of one HTTP request.",
                "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
            },
            "retry_limit": {
                "label": "Retry limit",
                "description": "Retries after connection errors, timeouts, 429 and 5xx.",
                "schema": {"type": ["integer", "null"], "minimum": 0},
            },
        },
    }


def get_provider_info() -> dict[str, Any]:
    """Describe this provider to Airflow (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": _PACKAGE,
        "name": "Cancel (useapi.net, WriteText.ai)",
        "description": "Cancel remote jobs from DAGs and wait until they are cancelled.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": name, "external-doc-url": url, "tags": ["service"]}
            for name, url in zip(
                _INTEGRATIONS,
                ("https://useapi.net/docs", "https://writetext.ai/api/docs"),
                strict=True,
            )
        ],
        "hooks": [
            {
                "integration-name": "useapi.net",
                "python-modules": ["airflow_provider_cancel.hooks.useapi"],
            },
            {
                "integration-name": "WriteText.ai",
                "python-modules": ["airflow_provider_cancel.hooks.writetext"],
            },
        ],
        "operators": [
            {
                "integration-name": name,
                "python-modules": ["airflow_provider_cancel.operators.cancel"],
            }
            for name in _INTEGRATIONS
        ],
        "sensors": [
            {
                "integration-name": name,
                "python-modules": ["airflow_provider_cancel.sensors.cancelled"],
            }
            for name in _INTEGRATIONS
        ],
        "triggers": [
            {
                "integration-name": name,
                "python-modules": ["airflow_provider_cancel.triggers.status"],
            }
            for name in _INTEGRATIONS
        ],
        "connection-types": [
            _connection_type(
                "useapi",
                "airflow_provider_cancel.hooks.useapi.UseApiHook",
                "useapi.net",
                "API token",
                "https://api.useapi.net",
                {
                    "api_version": {
                        "label": "API version",
                        "description": "Midjourney API version: v2 (default) or v3.",
                        "schema": {"type": ["string", "null"], "enum": ["v2", "v3", None]},
                    },
                },
            ),
            _connection_type(
                "writetext",
                "airflow_provider_cancel.hooks.writetext.WriteTextHook",
                "WriteText.ai",
                "API key",
                "https://api.writetext.ai",
                {
                    "region": {
                        "label": "Region host",
                        "description": "e.g. api-eu.writetext.ai; empty = use the region "
                        "the token endpoint returns.",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            ),
        ],
    }
