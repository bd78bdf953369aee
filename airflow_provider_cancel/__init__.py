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
    secret_placeholder: str,
    host_placeholder: str,
    extra_fields: dict[str, Any],
) -> dict[str, Any]:
    # Airflow 3's form stores every conn-field in the extra, an empty one as null: only fields
    # that always have a value (a choice with a default) are form fields. Tuning settings
    # (timeout, retry_limit, region, ...) stay optional keys of the Extra JSON (docs).
    entry: dict[str, Any] = {
        "connection-type": conn_type,
        "hook-class-name": hook_class,
        "hook-name": hook_name,
        "ui-field-behaviour": {
            "hidden-fields": list(HIDDEN_FIELDS),
            "relabeling": {"password": secret_label, "host": "Base URL (optional)"},
            "placeholders": {"host": host_placeholder, "password": secret_placeholder},
        },
    }
    if extra_fields:
        entry["conn-fields"] = extra_fields
    return entry


HIDDEN_FIELDS = ("schema", "port", "login")
"""Standard connection fields neither API uses."""

USEAPI_SERVICES = [
    "midjourney",
    "faceswap",
    "flowmusic",
    "gemini-notebook",
    "kling",
    "minimax",
    "pixverse",
    "tempolor",
]
"""The ``service`` choices (``hooks/useapi_services.py`` describes each; a test keeps the two
lists equal without importing the hooks here)."""

USEAPI_EXTRA_FIELDS: dict[str, Any] = {
    "service": {
        "label": "Service",
        "description": "The useapi.net service whose jobs this connection cancels "
        "(docs/useapi-services.md).",
        "schema": {"type": "string", "enum": USEAPI_SERVICES, "default": "midjourney"},
    },
    "api_version": {
        "label": "API version",
        "description": "Midjourney API version: v2 (default) or v3 (PixVerse: v2, or v1 "
        "in Extra Fields JSON).",
        "schema": {"type": "string", "enum": ["v2", "v3"], "default": "v2"},
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
                "user:1234-…",
                "https://api.useapi.net",
                USEAPI_EXTRA_FIELDS,
            ),
            _connection_type(
                "writetext",
                "airflow_provider_cancel.hooks.writetext.WriteTextHook",
                "WriteText.ai",
                "API key",
                "your WriteText.ai API key",
                "https://api.writetext.ai",
                {},
            ),
        ],
    }
