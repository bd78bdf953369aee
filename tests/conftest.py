"""Shared fixtures: the in-process emulator, Airflow connections through env vars, a helper that
runs a hook method on the sync or the async path, and capture of every log line.

Connections are ``AIRFLOW_CONN_<ID>`` env vars in JSON form (no Airflow DB needed).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_cancel.hooks import hook_for_connection, writetext

USEAPI_TOKEN = "emulator-useapi-token"
WRITETEXT_KEY = "emulator-writetext-key"
FAST: dict[str, Any] = {"retry_delay": 0.01, "max_retry_wait": 1.0, "timeout": 5.0}
"""Hook arguments (``hook_params``) that keep tests fast: short backoff, Retry-After capped at
1 s, no request longer than 5 s. Import it: ``from tests.conftest import FAST``."""


PROXY_VARIABLES = tuple(
    name
    for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    for name in (base, base.upper())
)


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator and the test servers are on 127.0.0.1: a proxy set where the suite runs
    (a CI runner's) must not carry their requests. Proxy tests set their own."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _clear_token_cache() -> Iterator[None]:
    writetext.TOKEN_CACHE.clear()
    yield
    writetext.TOKEN_CACHE.clear()


# ---------------------------------------------------------------------- connections


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """``set_connection(conn_id, conn_type, host=..., password=..., extra={...})`` -> conn_id."""

    def _set(
        conn_id: str,
        conn_type: str,
        *,
        host: str | None = None,
        password: str | None = None,
        port: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        data: dict[str, Any] = {"conn_type": conn_type}
        if host is not None:
            data["host"] = host
        if password is not None:
            data["password"] = password
        if port is not None:
            data["port"] = port
        if extra:
            data["extra"] = extra
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(data))
        return conn_id

    return _set


def cancel(conn_id: str, *job_ids: str) -> None:
    """Cancel jobs through a hook of ``conn_id``, as someone else would while a test waits."""
    hook = hook_for_connection(conn_id, dict(FAST))
    try:
        for job_id in job_ids:
            hook.cancel_job(job_id)
    finally:
        hook.close()


# ---------------------------------------------------------------------- emulator


@pytest.fixture(scope="session")
def _emulator_server() -> Iterator[Any]:
    from airflow_provider_cancel.emulator import Emulator
    from tests.apis import MOUNTS

    emu = Emulator(start_delay=0.05, cancel_delay=0.2, mounts=MOUNTS)
    emu.start()
    baseline = emu.config
    emu._test_baseline = baseline  # type: ignore[attr-defined]
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator(_emulator_server: Any) -> Iterator[Any]:
    """A running emulator (``start_delay=0.05``, ``cancel_delay=0.2``), fresh for each test:
    jobs, counters, faults, tokens and request log are reset, settings restored."""
    emu = _emulator_server
    emu.configure(**emu._test_baseline)
    emu.reset()
    yield emu
    emu.clear_faults()


@pytest.fixture
def useapi_conn(emulator: Any, set_connection: Callable[..., str]) -> str:
    """``useapi_default``: useapi v2 on the emulator."""
    return set_connection("useapi_default", "useapi", host=emulator.url, password=USEAPI_TOKEN)


@pytest.fixture
def useapi_v3_conn(emulator: Any, set_connection: Callable[..., str]) -> str:
    """``useapi_v3``: useapi v3 on the emulator."""
    return set_connection(
        "useapi_v3",
        "useapi",
        host=emulator.url,
        password=USEAPI_TOKEN,
        extra={"api_version": "v3"},
    )


@pytest.fixture
def writetext_conn(emulator: Any, set_connection: Callable[..., str]) -> str:
    """``writetext_default``: WriteText on the emulator (region = the emulator's second port)."""
    return set_connection(
        "writetext_default", "writetext", host=emulator.url, password=WRITETEXT_KEY
    )


# ---------------------------------------------------------------------- sync / async


class HookRunner:
    """Calls ``hook.<name>(...)`` or ``asyncio.run(hook.a<name>(...))``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __repr__(self) -> str:
        return f"HookRunner({self.mode})"

    def __call__(self, hook: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "sync":
            return getattr(hook, name)(*args, **kwargs)

        async def run() -> Any:
            try:
                return await getattr(hook, f"a{name}")(*args, **kwargs)
            finally:
                await hook.aclose()

        return asyncio.run(run())


@pytest.fixture(params=["sync", "async"])
def run_hook(request: pytest.FixtureRequest) -> HookRunner:
    """Parametrises a test over the sync and the async path of the hooks."""
    return HookRunner(request.param)


@pytest.fixture
def both_paths() -> tuple[HookRunner, HookRunner]:
    """The sync and the async runner, for tests comparing the two paths directly."""
    return HookRunner("sync"), HookRunner("async")


# ---------------------------------------------------------------------- logs


@pytest.fixture
def all_logs(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> Iterator[Callable[[], str]]:
    """Capture every log line at DEBUG: structlog events (before any masking), stdlib records
    and whatever reaches stdout/stderr. Yields a function returning all of it as one string."""
    capture: LogCapture | None = None
    old: dict[str, Any] | None = None
    try:
        import structlog
        from structlog.testing import LogCapture
    except ImportError:  # Airflow 2 logs through the stdlib only
        pass
    else:
        old = structlog.get_config()
        capture = LogCapture()
        structlog.configure(
            processors=[capture],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            cache_logger_on_first_use=False,
        )
    caplog.set_level(logging.DEBUG)
    # Airflow 2's logging config sets the ``airflow.task`` logger (the parent of every hook's
    # and operator's ``self.log``) to INFO, which drops DEBUG records before they propagate.
    caplog.set_level(logging.DEBUG, logger="airflow.task")

    def text() -> str:
        out, err = capfd.readouterr()
        events = "\n".join(repr(entry) for entry in capture.entries) if capture else ""
        records = "\n".join(
            f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records
        )
        text.seen += "\n".join((events, records, out, err))  # type: ignore[attr-defined]
        if capture:
            capture.entries.clear()
        caplog.clear()
        return text.seen  # type: ignore[attr-defined]

    text.seen = ""  # type: ignore[attr-defined]
    try:
        yield text
    finally:
        if old is not None:
            structlog.configure(**old)
