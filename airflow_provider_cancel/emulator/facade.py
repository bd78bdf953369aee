"""The :class:`Emulator` facade: start and stop both ports, create and inspect jobs, inject faults.

Tests use it in-process; ``__main__.py`` runs it as its own process, and ``control.py`` exposes
the same methods over HTTP.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from .catalog import DEFAULT_SERVICE, job_key, service_names
from .routes import MOUNTS, Mount, job_models
from .server import Server
from .state import EmulatorState, Fault


class Emulator:
    """Local stand-in for useapi.net (Midjourney v2/v3 and the services of ``catalog.py``) and
    WriteText.ai.

    Use in-process (``with Emulator() as emu:``) or as a separate process
    (``python -m airflow_provider_cancel.emulator``) driven through ``/_emulator/`` endpoints.
    All methods are thread-safe.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        region_port: int = 0,
        *,
        seed: int | None = 0,
        verbose: bool = False,
        mounts: Sequence[Mount] = (),
        **settings: Any,
    ) -> None:
        """Bind nothing yet (see :meth:`start`); ``settings`` are :class:`~.state.Config` fields.

        ``port`` and ``region_port`` 0 take free ports; ``seed`` makes rate-based faults
        repeatable; ``verbose`` logs every request to stderr. ``mounts`` serve more APIs
        (:class:`~.routes.Mount`, before the emulator's own): an API a test defines, with its
        jobs, faults and counters like any other.
        """
        self.host = host
        self.port = port
        self.region_port = region_port
        self.verbose = verbose
        self.mounts: tuple[Mount, ...] = (*mounts, *MOUNTS)
        self.state = EmulatorState(models=job_models(self.mounts), seed=seed)
        self.state.configure(**settings)
        self._servers: list[Server] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Emulator:
        """Bind both ports and serve them from daemon threads."""
        if self._servers:
            return self
        self._stopping.clear()
        main = Server((self.host, self.port), self, region=False)
        try:
            region = Server((self.host, self.region_port), self, region=True)
        except BaseException:
            main.server_close()
            raise
        self._servers = [main, region]
        self.port = main.server_port
        self.region_port = region.server_port
        for server in self._servers:
            name = "emulator-region" if server.region else "emulator-main"
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping requests and close open keep-alive connections."""
        self._stopping.set()
        # shutdown() waits for the next poll of serve_forever; do both ports at once.
        stoppers = [threading.Thread(target=server.shutdown) for server in self._servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in self._servers:
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._servers = []
        self._threads = []

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _connection_opened(self, sock: socket.socket) -> None:
        self.state.count_connection()
        with self._open_lock:
            self._open.add(sock)

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(sock)

    # ------------------------------------------------------------------ addresses
    @property
    def _advertised_host(self) -> str:
        if self.host in ("", "0.0.0.0"):
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def url(self) -> str:
        """Base URL of the main port (useapi, WriteText token endpoint, control endpoints)."""
        self._require_started()
        return f"http://{self._advertised_host}:{self.port}"

    @property
    def region(self) -> str:
        """Bare ``host:port`` of the region port, as the token endpoint returns it."""
        self._require_started()
        return f"{self._advertised_host}:{self.region_port}"

    @property
    def region_url(self) -> str:
        """``http://`` URL of the region port."""
        return f"http://{self.region}"

    def _require_started(self) -> None:
        if not self._servers:
            raise RuntimeError("Emulator is not started; call start() first")

    # ------------------------------------------------------------------ jobs
    def submit_useapi(
        self, prompt: str = "x", version: str = "v2", service: str = DEFAULT_SERVICE
    ) -> str:
        """Create a job of a useapi.net service (Midjourney's as ``POST .../imagine`` would);
        ``version`` matters where the service has two (Midjourney, PixVerse). Returns its id."""
        try:
            key = job_key(service, version)
        except KeyError:
            raise ValueError(
                f"useapi.net service {service!r} {version!r} is not emulated "
                f"(services: {', '.join(service_names())})"
            ) from None
        return self.state.create_job(key, prompt=prompt).id

    def submit_writetext(self, name: str = "x") -> str:
        """Create a WriteText request as ``POST /text/Generate`` would; returns its id."""
        return self.state.create_job("writetext", prompt=name).id

    def create_job(self, api: str, job_id: str | None = None, status: str | None = None) -> None:
        """Create a job with any id (ids with ``/``, ``%``, unicode... test encoding)."""
        self.state.create_job(api, job_id, status)

    def set_status(self, job_id: str, raw_status: str, error: str | None = None) -> None:
        """Pin a job's raw status (and error text, e.g. v3's "Job cancelled by user")."""
        self.state.set_status(job_id, raw_status, error)

    def job(self, job_id: str) -> dict[str, Any]:
        """``{"id","api","status","normalized","error","cancel_calls","tracked","created"}``.

        ``status`` is the raw status as the API would show it now; ``tracked`` turns false when
        a useapi scheduler service stopped tracking the job. KeyError if unknown.
        """
        job = self.state.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return self.state.describe(job)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, as :meth:`job` shows it."""
        with self.state.lock:
            return [self.state.describe(job) for job in self.state.jobs.values()]

    # ------------------------------------------------------------------ faults and config
    def inject(self, kind: str, **options: Any) -> None:
        """Serve fault ``kind`` to matching API requests; ``options`` are :class:`~.state.Fault`
        fields: ``count`` (the next N requests, default 1) or ``rate`` (a random share until
        :meth:`clear_faults`), ``call``, ``api``, ``retry_after`` (a header),
        ``retry_after_json`` (``retryAfter`` in a 429's body), ``hang_seconds``."""
        self.state.add_fault(Fault(kind, **options))

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self.state.clear_faults()

    def reset(self) -> None:
        """Drop jobs, counters, faults, tokens and the request log (settings are kept)."""
        self.state.reset()

    def expire_tokens(self) -> None:
        """Invalidate every issued WriteText access token (next use answers 401)."""
        self.state.expire_tokens()

    def configure(self, **settings: Any) -> None:
        """Change settings at runtime (:class:`~.state.Config` fields): latency, start_delay,
        job_duration, cancel_delay, finished_cancel_answer, token_fields, token_ttl,
        useapi_token, writetext_api_key."""
        self.state.configure(**settings)

    @property
    def config(self) -> dict[str, Any]:
        """Every setting by name."""
        with self.state.lock:
            return self.state.config.as_dict()

    # ------------------------------------------------------------------ inspection
    @property
    def counters(self) -> dict[str, Any]:
        """Snapshot of request counters (API requests only; control endpoints are not counted)."""
        return self.state.snapshot_counters()

    @property
    def requests_log(self) -> list[dict[str, Any]]:
        """The last 10,000 API requests, oldest first (copies)."""
        return self.state.snapshot_log()
