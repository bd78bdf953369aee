"""HTTP side of the emulator: two ``ThreadingHTTPServer`` instances and the :class:`Emulator` API.

The main port serves useapi.net (v2, v3), the WriteText token endpoint and the ``/_emulator/``
control endpoints; the region port serves WriteText's ``/text/...`` calls, because a WriteText
client must follow the ``region`` the token endpoint returns.

The servers speak HTTP/1.1 with keep-alive and always send ``Content-Length`` so that clients can
pool connections; accepted TCP connections are counted so tests and benchmarks can check pooling.
Each connection gets its own thread, so latency and ``hang`` faults overlap across connections.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

from .routes import JSON_TYPE, Response, answer, invalid_token, json_response, resolve, split_target
from .state import Config, EmulatorState, Fault

_FAULT_TEXT = {
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
    596: "Pending moderation",
}
_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_CONFIG_KEYS = frozenset(Config.__dataclass_fields__)


class _Server(ThreadingHTTPServer):
    """One listening port; knows its emulator and whether it is the WriteText region host."""

    daemon_threads = True
    # Clients that open a connection per request (the http provider's triggers) arrive in bursts
    # of ~1000 once a second; a short backlog drops SYNs, which costs the client a 1 s retransmit.
    request_queue_size = 2048

    def __init__(self, address: tuple[str, int], emulator: Emulator, region: bool) -> None:
        self.emulator = emulator
        self.region = region
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which can stall for
        # seconds in sandboxes; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.emulator.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "emulator/1.0"
    sys_version = ""

    @property
    def _srv(self) -> _Server:
        return cast(_Server, self.server)

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every keep-alive response.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._srv.emulator._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._srv.emulator._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        if self._srv.emulator.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    # ------------------------------------------------------------------ plumbing
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, response: Response) -> None:
        self.send_response(response.status, _FAULT_TEXT.get(response.status))
        for name, value in response.headers:
            self.send_header(name, value)
        if response.content_type is not None:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _abort(self) -> None:
        """Close the connection without a response (what a crashed proxy looks like)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        emulator = self._srv.emulator
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self._send(json_response(400, {"error": "Bad request body"}))
            self.close_connection = True
            return
        raw_path = self.path
        headers = {name.lower(): value for name, value in self.headers.items()}
        if not self._srv.region and raw_path.startswith("/_emulator"):
            try:
                self._send(_control(emulator, self.command, raw_path, body))
            except Exception as exc:  # a bad control call must not kill the connection
                if emulator.verbose:
                    traceback.print_exc()
                self._send(json_response(500, {"error": f"{type(exc).__name__}: {exc}"}))
            return

        route = resolve(self.command, raw_path, self._srv.region)
        state = emulator.state
        entry: dict[str, Any] = {
            "method": self.command,
            "raw_path": raw_path,
            "path_job_id": route.job_id,
            "port": self._srv.server_port,
            "api": route.api,
            "call": route.call,
            "route": route.name,
            "status": None,
            "fault": None,
        }
        state.record_request(entry, route.name, route.call)
        latency = state.config.latency
        if latency > 0:
            emulator._stopping.wait(latency)
        fault = state.take_fault(route.api, route.call, self._srv.region)
        if fault is not None:
            entry["fault"] = fault.kind
            self._serve_fault(fault, entry)
            return
        try:
            response = answer(state, route, self.command, headers, body, emulator.region)
        except Exception as exc:
            if emulator.verbose:
                traceback.print_exc()
            response = json_response(500, {"error": f"Emulator error: {type(exc).__name__}"})
        state.set_logged_status(entry, response.status)
        self._send(response)

    def _serve_fault(self, fault: Fault, entry: dict[str, Any]) -> None:
        emulator = self._srv.emulator
        kind = fault.kind
        if kind == "drop":
            self._abort()
            return
        if kind == "hang":
            emulator._stopping.wait(fault.hang_seconds)
            self._abort()
            return
        response: Response
        if kind == "expired_token":
            response = invalid_token()
        elif kind == "html":
            response = Response(502, _HTML, "text/html; charset=utf-8")
        elif kind == "html200":
            response = Response(200, _HTML, "text/html; charset=utf-8")
        elif kind == "malformed":
            response = Response(200, b'{"jobid": "abc', JSON_TYPE)
        elif kind == "empty":
            response = Response(200, b"", JSON_TYPE)
        else:
            code = int(kind)
            headers = []
            if code == 429 and fault.retry_after is not None:
                headers.append(("Retry-After", _retry_after_text(fault.retry_after)))
            response = json_response(code, {"error": _FAULT_TEXT[code], "code": code}, headers)
        emulator.state.set_logged_status(entry, response.status)
        self._send(response)


def _retry_after_text(value: float | int) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


# ---------------------------------------------------------------------- control endpoints


def _control(emulator: Emulator, method: str, raw_path: str, body: bytes) -> Response:
    """``/_emulator/...``: drive and inspect an emulator that runs in another process."""
    segments, _ = split_target(raw_path)
    rest = segments[1:]
    if rest and rest[-1] == "" and len(rest) > 1:
        rest = rest[:-1]
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        return json_response(400, {"error": "Body is not JSON"})
    if not isinstance(payload, dict):
        return json_response(400, {"error": "Body must be a JSON object"})
    try:
        return _control_route(emulator, method, rest, payload)
    except KeyError as exc:
        return json_response(404, {"error": f"Unknown job {exc.args[0]!r}"})
    except (ValueError, TypeError) as exc:
        return json_response(400, {"error": str(exc)})


def _control_route(
    emulator: Emulator, method: str, rest: list[str], payload: dict[str, Any]
) -> Response:
    ok = json_response(200, {"ok": True})
    if rest == ["health"] and method == "GET":
        return json_response(200, {"ok": True, "url": emulator.url, "region": emulator.region})
    if rest == ["counters"] and method == "GET":
        return json_response(200, emulator.counters)
    if rest == ["requests"] and method == "GET":
        return json_response(200, emulator.requests_log)
    if rest == ["jobs"] and method == "GET":
        return json_response(200, emulator.jobs())
    if rest == ["jobs"] and method == "POST":
        api = payload.get("api")
        if not isinstance(api, str):
            raise ValueError("api is required")
        job_id = emulator.state.create_job(
            api, payload.get("job_id"), payload.get("status"), error=payload.get("error")
        ).id
        return json_response(200, emulator.job(job_id))
    if len(rest) == 2 and rest[0] == "jobs" and method == "GET":
        return json_response(200, emulator.job(rest[1]))
    if len(rest) == 3 and rest[0] == "jobs" and rest[2] == "status" and method == "POST":
        status = payload.get("status")
        if not isinstance(status, str):
            raise ValueError("status is required")
        emulator.set_status(rest[1], status, payload.get("error"))
        return json_response(200, emulator.job(rest[1]))
    if rest == ["faults"] and method == "POST":
        emulator.inject(**payload)
        return ok
    if rest == ["faults"] and method == "DELETE":
        emulator.clear_faults()
        return ok
    if rest == ["reset"] and method == "POST":
        emulator.reset()
        return ok
    if rest == ["expire_tokens"] and method == "POST":
        emulator.expire_tokens()
        return ok
    if rest == ["config"] and method == "POST":
        emulator.configure(**payload)
        return ok
    if rest == ["config"] and method == "GET":
        return json_response(200, emulator.config)
    return json_response(404, {"error": "Unknown control endpoint"})


# ---------------------------------------------------------------------- public API


class Emulator:
    """Local stand-in for useapi.net Midjourney (v2, v3) and WriteText.ai.

    Use in-process (``with Emulator() as emu:``) or as a separate process
    (``python -m airflow_provider_cancel.emulator``) driven through ``/_emulator/`` endpoints.
    All methods are thread-safe.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        region_port: int = 0,
        latency: float = 0.0,
        job_duration: float = 300.0,
        start_delay: float = 0.2,
        cancel_delay: float = 1.0,
        token_ttl: int = 86400,
        useapi_token: str = "emulator-useapi-token",
        writetext_api_key: str = "emulator-writetext-key",
        finished_cancel_answer: str = "200",
        token_fields: tuple[str, str | None] = ("access_token", "expires_in"),
        seed: int | None = 0,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.region_port = region_port
        self.verbose = verbose
        self.state = EmulatorState(seed=seed)
        self.state.configure(
            latency=latency,
            job_duration=job_duration,
            start_delay=start_delay,
            cancel_delay=cancel_delay,
            token_ttl=token_ttl,
            useapi_token=useapi_token,
            writetext_api_key=writetext_api_key,
            finished_cancel_answer=finished_cancel_answer,
            token_fields=token_fields,
        )
        self._servers: list[_Server] = []
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
        main = _Server((self.host, self.port), self, region=False)
        try:
            region = _Server((self.host, self.region_port), self, region=True)
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
        return f"http://{self.region}"

    def _require_started(self) -> None:
        if not self._servers:
            raise RuntimeError("Emulator is not started; call start() first")

    # ------------------------------------------------------------------ jobs
    def submit_useapi(self, prompt: str = "x", version: str = "v2") -> str:
        """Create a useapi job as ``POST .../imagine`` would; returns the jobid."""
        if version not in ("v2", "v3"):
            raise ValueError("version must be 'v2' or 'v3'")
        return self.state.create_job(f"useapi_{version}", prompt=prompt).id

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
        """``{"id","api","status","normalized","error","cancel_calls","created"}``.

        ``status`` is the raw status as the API would show it now. KeyError if unknown.
        """
        job = self.state.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return self.state.describe(job)

    def jobs(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [self.state.describe(job) for job in self.state.jobs.values()]

    # ------------------------------------------------------------------ faults and config
    def inject(
        self,
        kind: str,
        *,
        count: int | None = None,
        rate: float | None = None,
        call: str | None = None,
        api: str | None = None,
        retry_after: float | int | None = None,
        hang_seconds: float = 30.0,
    ) -> None:
        """Serve fault ``kind`` to the next ``count`` matching API requests (default 1), or to a
        random ``rate`` share of them until :meth:`clear_faults`."""
        self.state.inject(
            kind,
            count=count,
            rate=rate,
            call=call,
            api=api,
            retry_after=retry_after,
            hang_seconds=hang_seconds,
        )

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def reset(self) -> None:
        """Drop jobs, counters, faults, tokens and the request log (settings are kept)."""
        self.state.reset()

    def expire_tokens(self) -> None:
        """Invalidate every issued WriteText access token (next use answers 401)."""
        self.state.expire_tokens()

    def configure(self, **kwargs: Any) -> None:
        """Change settings at runtime: latency, start_delay, job_duration, cancel_delay,
        finished_cancel_answer, token_fields, token_ttl, useapi_token, writetext_api_key."""
        unknown = set(kwargs) - _CONFIG_KEYS
        if unknown:
            raise ValueError(f"unknown emulator setting(s): {sorted(unknown)}")
        self.state.configure(**kwargs)

    @property
    def config(self) -> dict[str, Any]:
        with self.state.lock:
            cfg = self.state.config
            return {name: getattr(cfg, name) for name in sorted(_CONFIG_KEYS)}

    # ------------------------------------------------------------------ inspection
    @property
    def counters(self) -> dict[str, Any]:
        """Snapshot of request counters (API requests only; control endpoints are not counted)."""
        return self.state.snapshot_counters()

    @property
    def requests_log(self) -> list[dict[str, Any]]:
        """The last 10,000 API requests, oldest first (copies)."""
        return self.state.snapshot_log()
