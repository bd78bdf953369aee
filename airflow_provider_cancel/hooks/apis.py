"""Every API this provider cancels jobs on, each declared once as an :class:`ApiDescription`.

Provider info (:func:`airflow_provider_cancel.get_provider_info`), both Airflow versions'
connection forms (:mod:`airflow_provider_cancel.connection_form`) and the hook class (its
``conn_type``, ``hook_name``, ``default_host``... come from its ``api``) all read these
descriptions. Cheap to import on purpose: Airflow reads the provider info while it discovers
providers, and no description imports ``requests`` or ``aiohttp``.

Adding an API is a hook module (``hooks/<api>.py``, a subclass of
:class:`~airflow_provider_cancel.hooks.base.JobApiHook` whose ``api`` is its description) and
its description in :data:`APIS` (``docs/architecture.md``, "Adding an API").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from airflow_provider_cancel.hooks import useapi_services

WaitRefusal = Callable[[Mapping[str, Any], frozenset[str]], "str | None"]
"""``(hook_params, success_statuses) -> why they can never be waited on, or None``."""


@dataclass(frozen=True)
class ApiDescription:
    """What Airflow and a user see of one API, and where its hook is.

    Example::

        ApiDescription(
            conn_type="jobsapi",
            hook_class="my_package.hooks.jobsapi.JobsApiHook",
            hook_name="Jobs API",
            secret_label="API key",
            secret_placeholder="sk-…",
            default_host="https://api.example.com",
            docs_url="https://example.com/docs",
        )
    """

    conn_type: str
    """The Airflow connection type (``useapi``); its default connection is ``<type>_default``."""
    hook_class: str
    """The hook's dotted path; the class's ``api`` is this description."""
    hook_name: str
    """The API's name: the integration, the form's type list, every message (``useapi.net``)."""
    secret_label: str
    """What the connection's password is called, in the form and in messages (``API token``)."""
    secret_placeholder: str
    """The password field's placeholder."""
    default_host: str
    """The base URL when the connection has no host."""
    docs_url: str
    """The API's documentation (provider info's ``external-doc-url``)."""
    form_fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Airflow 3 ``conn-fields``: extra fields of the form, each ``{"label", "description",
    "schema"}``; every one has a default (Airflow 3 stores an untouched field as null)."""
    hook_params: tuple[str, ...] = ()
    """The hook's own parameters (beyond the shared settings), which ``hook_params`` may set."""
    wait_refusal: WaitRefusal | None = None
    """Why literal ``hook_params`` make a wait for ``success_statuses`` pointless, known when the
    DAG is parsed (the hook's :meth:`~.contract.JobApi.wait_refusal` says it when it runs)."""

    @property
    def default_conn_name(self) -> str:
        """The connection a hook uses when given no ``conn_id``."""
        return f"{self.conn_type}_default"

    @property
    def hook_module(self) -> str:
        """The module holding the hook class."""
        return self.hook_class.rpartition(".")[0]


USEAPI = ApiDescription(
    conn_type="useapi",
    hook_class="airflow_provider_cancel.hooks.useapi.UseApiHook",
    hook_name="useapi.net",
    secret_label="API token",
    secret_placeholder="user:1234-…",
    default_host="https://api.useapi.net",
    docs_url="https://useapi.net/docs",
    form_fields=MappingProxyType(useapi_services.FORM_FIELDS),
    hook_params=("service", "api_version"),
    wait_refusal=useapi_services.wait_refusal_at_parse,
)

WRITETEXT = ApiDescription(
    conn_type="writetext",
    hook_class="airflow_provider_cancel.hooks.writetext.WriteTextHook",
    hook_name="WriteText.ai",
    secret_label="API key",
    secret_placeholder="your WriteText.ai API key",
    default_host="https://api.writetext.ai",
    docs_url="https://writetext.ai/api/docs",
)

APIS: tuple[ApiDescription, ...] = (USEAPI, WRITETEXT)
"""Every API of this provider, in the order Airflow lists them."""


def find_api(conn_type: str) -> ApiDescription | None:
    """The description of ``conn_type``, or None when no API of this provider has it."""
    return next((api for api in APIS if api.conn_type == conn_type), None)


def wait_refusal_at_parse(
    conn_id: Any, hook_params: Mapping[str, Any], success_statuses: frozenset[str]
) -> str | None:
    """Why a sensor's wait is pointless, if the DAG file alone tells: only when ``conn_id`` is
    an API's default connection (its type is known without looking the connection up, which a
    DAG file must not do). Otherwise the hook tells when the task runs."""
    api = next((api for api in APIS if api.default_conn_name == conn_id), None)
    if api is None or api.wait_refusal is None:
        return None
    return api.wait_refusal(hook_params, success_statuses)
