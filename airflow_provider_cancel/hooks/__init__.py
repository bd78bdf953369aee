"""One hook per API, all on :class:`~airflow_provider_cancel.hooks.base.JobApiHook`; each API
declared once in :mod:`~airflow_provider_cancel.hooks.apis`.

:func:`hook_for_connection` picks the hook from the connection's type through Airflow's own
hook registry, so the operator, sensor, trigger and callbacks never name an API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_cancel.hooks.base import JobApiHook


def supported_conn_types() -> list[str]:
    """The connection types this provider declares (one per API, :mod:`.apis`)."""
    from airflow_provider_cancel.hooks.apis import APIS

    return [api.conn_type for api in APIS]


def hook_from_connection(conn: Any, hook_params: dict[str, Any] | None = None) -> JobApiHook:
    """The hook for an already fetched connection (the async path fetches it itself)."""
    from airflow_provider_cancel.exceptions import ConnectionConfigError
    from airflow_provider_cancel.hooks.base import JobApiHook

    supported = supported_conn_types()
    if conn.conn_type not in supported:
        raise ConnectionConfigError(
            f"Connection {conn.conn_id!r} has type {conn.conn_type!r}, which this provider "
            f"cannot cancel jobs on; supported types: {', '.join(supported)}"
        )
    hook = conn.get_hook(hook_params=dict(hook_params or {}))
    if not isinstance(hook, JobApiHook):  # another provider registered the same type name
        raise ConnectionConfigError(
            f"Connection type {conn.conn_type!r} resolves to {type(hook).__name__}, "
            "not a hook of airflow-provider-cancel"
        )
    hook.use_connection(conn)  # already fetched: not looked up again
    return hook


def hook_for_connection(conn_id: str, hook_params: dict[str, Any] | None = None) -> JobApiHook:
    """The hook for ``conn_id``, chosen by the connection's type.

    Raises :class:`~airflow_provider_cancel.exceptions.ConnectionConfigError` for a
    connection of a type this provider does not handle, listing the supported types.
    """
    from airflow.providers.common.compat.sdk import BaseHook

    return hook_from_connection(BaseHook.get_connection(conn_id), hook_params)
