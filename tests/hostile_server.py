"""A small HTTP server on plain sockets, scripted byte by byte: the faults a real network or a
hostile server can make and the emulator cannot (a head trickled a byte at a time, a body
without end, redirects, a bad status line, JSON nested past any parser, secrets echoed back in
every encoding).

It is written independently of the emulator and of the hooks: it parses just enough of a
request to route it, and every answer is raw bytes. With ``forward_to`` it is a proxy in front
of the emulator that faults only the calls a test picks and passes every other request through
unchanged, so the emulator's job states and counters still tell what really happened.
Loopback only; every connection ends by itself within ``max_seconds``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

MAX_SECONDS = 20.0


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    raw: bytes
    """The request exactly as received (head and body)."""

    @property
    def call(self) -> str:
        """``token``, ``cancel`` or ``status``: what the request is for, by its shape."""
        path = self.path.lower()
        if path.startswith("/web/apitoken/accesstoken"):
            return "token"
        if "/cancel" in path or self.method == "DELETE":
            return "cancel"
        return "status"

    @property
    def secrets(self) -> list[str]:
        """The credentials the client sent (token, API key, access token)."""
        found = [self.headers.get("writetextai-token", "")]
        found.append(self.headers.get("authorization", "").removeprefix("Bearer "))
        return [s for s in found if s]


Answer = Callable[[Request, socket.socket], None]
"""Writes an answer (any bytes, at any pace) to the client's socket."""


# ---------------------------------------------------------------------- answers


def head_bytes(status: int, headers: dict[str, str], reason: str = "Whatever") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def reply(status: int, body: bytes | str = b"", headers: dict[str, str] | None = None) -> Answer:
    """A complete, well-formed answer."""
    data = body.encode() if isinstance(body, str) else body

    def answer(request: Request, sock: socket.socket) -> None:
        all_headers = {"Content-Length": str(len(data)), "Connection": "close", **(headers or {})}
        sock.sendall(head_bytes(status, all_headers) + data)

    return answer


def reply_json(status: int, payload: object) -> Answer:
    return reply(status, json.dumps(payload), {"Content-Type": "application/json"})


def trickled_head(every: float = 0.05) -> Answer:
    """Status line and headers one byte at a time: each byte well inside any read timeout,
    the whole head never inside any sane deadline."""

    def answer(request: Request, sock: socket.socket) -> None:
        data = head_bytes(200, {"Content-Type": "application/json", "X-Pad": "p" * 400})
        data += b'{"status": "cancelled"}'
        for byte in data:
            sock.sendall(bytes([byte]))
            time.sleep(every)

    return answer


def endless_body(chunked: bool = True) -> Answer:
    """A 200 whose body never ends (as fast as the client reads)."""

    def answer(request: Request, sock: socket.socket) -> None:
        headers = {"Content-Type": "application/json"}
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        sock.sendall(head_bytes(200, headers))
        block = b'{"status": "' + b"x" * 65000
        piece = (f"{len(block):x}\r\n".encode() + block + b"\r\n") if chunked else block
        deadline = time.monotonic() + MAX_SECONDS
        while time.monotonic() < deadline:
            sock.sendall(piece)

    return answer


def redirect(code: int, location: str | None) -> Answer:
    headers = {"Location": location} if location else {}
    return reply(code, "", headers)


def bad_status_line() -> Answer:
    def answer(request: Request, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 OK-ish maybe\r\nContent-Length: 2\r\n\r\n{}")

    return answer


def deep_json(depth: int = 100_000) -> Answer:
    return reply(200, "[" * depth + "]" * depth, {"Content-Type": "application/json"})


# Hostile text and numbers (issue 18): answers whose text or numbers no parser should trust.
FORGED_LINE = "\n[2026-12-08T00:00:00.000+0000] {cancel.py:1} INFO - job-2: cancelled"
"""A line a status or an error would forge in a task log if its line break were kept."""


def backslash_error(count: int = 450_000, status: int = 400) -> Answer:
    """An error whose JSON message is a run of ``count`` backslashes (``count * 2`` bytes of
    ``\\\\``): the run every per-character secret pattern with ``\\+`` backtracks on."""
    return reply(
        status, '{"error": "' + "\\\\" * count + '"}', {"Content-Type": "application/json"}
    )


def forged_status(size: int = 400_000) -> Answer:
    """A 200 whose status and error forge a log line (line break, NEL, U+2028, ANSI erase
    line, a bidi override) and go on for ``size`` characters."""
    forged = "Running" + FORGED_LINE + "\r\x85\u2028\x1b[2K\x1b[1A\u202e\u200b" + "x" * size
    body = json.dumps({"status": forged, "error": forged})
    return reply(200, body, {"Content-Type": "application/json"})


def rate_limited(headers: dict[str, str] | None = None, body: str = "") -> Answer:
    """A 429 whose ``Retry-After`` header or JSON body carries a number (written by hand: a
    400-digit integer is valid JSON)."""
    return reply(429, body, {"Content-Type": "application/json", **(headers or {})})


def echo_secret(form: str, status: int = 400) -> Answer:
    """An error whose body quotes the credentials the client sent, in one encoding."""

    def answer(request: Request, sock: socket.socket) -> None:
        secrets = request.secrets
        if form == "html":
            body = "<html><body>bad token " + " ".join(secrets) + "</body></html>"
            reply(status, body, {"Content-Type": "text/html"})(request, sock)
            return
        quoted = " ".join(encode_secret(secret, form) for secret in secrets)
        key = "unexpected_key" if form == "unknown key" else "error"
        # written by hand: the encoded forms must reach the client exactly as made here
        body = f'{{"{key}": "token {quoted} is not valid"}}'
        reply(status, body, {"Content-Type": "application/json"})(request, sock)

    return answer


ECHO_FORMS = ("raw", "json \\/", "json \\u", "percent", "unknown key", "html")


def encode_secret(secret: str, form: str) -> str:
    """``secret`` as a server might echo it inside a JSON string."""
    if form == "json \\/":  # PHP's json_encode: "/" as "\/"
        return json.dumps(secret)[1:-1].replace("/", "\\/")
    if form == "json \\u":  # every non-alphanumeric character as \\uXXXX (upper-case hex)
        return "".join(c if c.isalnum() else f"\\u{ord(c):04X}" for c in secret)
    if form == "percent":
        return quote(secret, safe="")
    return json.dumps(secret)[1:-1]  # raw and unknown key: plain JSON string escaping


def secret_forms(secret: str) -> list[str]:
    """Every form of ``secret`` a test must never find in a message (the server's encodings,
    plus the whole secret as Python's repr would show it)."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1]}
    forms.update(encode_secret(secret, form) for form in ECHO_FORMS)
    return [f for f in forms if f]


# ---------------------------------------------------------------------- the server


@dataclass
class HostileServer:
    """Answers each request with ``route(request)`` (an :data:`Answer`), or, with
    ``forward_to=(host, port)``, passes requests for which ``route`` returns ``None`` through to
    that server unchanged."""

    route: Callable[[Request], Answer | None]
    forward_to: tuple[str, int] | None = None
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def seen(self, call: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (call is None or r.call == call) and (path is None or r.path == path)
            )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._listener.close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(MAX_SECONDS)
        with contextlib.closing(client):
            while not self._stop.is_set():  # keep-alive: one request after another
                request = _read_request(client)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                answer = self.route(request)
                try:
                    if answer is not None:
                        answer(request, client)
                        return  # a scripted answer ends the connection
                    if self.forward_to is None:
                        reply(404, "no route")(request, client)
                        return
                    if not _forward(request, client, self.forward_to):
                        return
                except OSError:  # the client gave up (as it should)
                    return


def _read_request(sock: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(method, path, headers, body, head + b"\r\n\r\n" + body)


def _forward(request: Request, client: socket.socket, target: tuple[str, int]) -> bool:
    """Pass the request through (over a new connection, closed after the answer) and relay the
    answer; True if the client's connection may carry another request."""
    head = request.raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    head = [line for line in head if not line.lower().startswith((b"connection:", b"keep-alive:"))]
    raw = b"\r\n".join([*head, b"Connection: close"]) + b"\r\n\r\n" + request.body
    with socket.create_connection(target, timeout=MAX_SECONDS) as upstream:
        upstream.sendall(raw)
        answer = b""
        while chunk := upstream.recv(65536):
            answer += chunk
    answer_head, _, body = answer.partition(b"\r\n\r\n")
    kept = [
        line
        for line in answer_head.split(b"\r\n")
        if not line.lower().startswith((b"connection:", b"keep-alive:"))
    ]
    client.sendall(b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n" + body)
    return False


@contextlib.contextmanager
def hostile(
    route: Callable[[Request], Answer | None], forward_to: tuple[str, int] | None = None
) -> Iterator[HostileServer]:
    server = HostileServer(route, forward_to)
    try:
        yield server
    finally:
        server.close()
