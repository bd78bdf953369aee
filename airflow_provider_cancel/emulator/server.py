"""HTTP side of the emulator: the listening ports and the request handler.

The main port serves useapi.net (v2, v3), the WriteText token endpoint and the ``/_emulator/``
control endpoints (``control.py``); the region port serves WriteText's ``/text/...`` calls, because
a WriteText client must follow the ``region`` the token endpoint returns. What each request means
is decided by the routing table (``routes.py``); this module only reads, counts, delays, injects
faults and writes.

The servers speak HTTP/1.1 with keep-alive and always send ``Content-Length`` so that clients can
pool connections; accepted TCP connections are counted so tests and benchmarks can check pooling.
Each connection gets its own thread, so latency and ``hang`` faults overlap across connections.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

from .api import JSON_TYPE, Response, json_response
from .control import control
from .routes import answer, resolve
from .state import Fault
from .writetext import invalid_token

if TYPE_CHECKING:
    from .facade import Emulator

_FAULT_TEXT = {
    403: "Forbidden",
    410: "Gone",
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


class Server(ThreadingHTTPServer):
    """One listening port; knows its emulator and whether it is the WriteText region host."""

    daemon_threads = True
    # Clients that open a connection per request (the http provider's triggers) arrive in bursts
    # of ~1000 once a second; a short backlog drops SYNs, which costs the client a 1 s retransmit.
    request_queue_size = 2048

    def __init__(self, address: tuple[str, int], emulator: Emulator, region: bool) -> None:
        self.emulator = emulator
        self.region = region
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup ``HTTPServer`` does."""
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which can stall for
        # seconds in sandboxes; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Print a handler's traceback only when verbose."""
        if self.emulator.verbose:
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """One connection's requests: read, count, delay, inject a fault or answer, write."""

    protocol_version = "HTTP/1.1"
    server_version = "emulator/1.0"
    sys_version = ""

    @property
    def _srv(self) -> Server:
        return cast(Server, self.server)

    def setup(self) -> None:
        """Turn Nagle off and count the connection."""
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every keep-alive response.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._srv.emulator._connection_opened(self.connection)

    def finish(self) -> None:
        """Forget the connection once it closes."""
        try:
            super().finish()
        finally:
            self._srv.emulator._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Log the request line only when verbose."""
        if self._srv.emulator.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        """Serve a request (every method goes the same way)."""
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
                self._send(control(emulator, self.command, raw_path, body))
            except Exception as exc:  # a bad control call must not kill the connection
                if emulator.verbose:
                    traceback.print_exc()
                self._send(json_response(500, {"error": f"{type(exc).__name__}: {exc}"}))
            return

        route = resolve(self.command, raw_path, self._srv.region, emulator.mounts)
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
            payload: dict[str, Any] = {"error": _FAULT_TEXT[code], "code": code}
            if code == 429 and fault.retry_after_json is not None:
                payload["retryAfter"] = fault.retry_after_json
            response = json_response(code, payload, headers)
        emulator.state.set_logged_status(entry, response.status)
        self._send(response)


def _retry_after_text(value: float | int) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)
