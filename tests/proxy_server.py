"""A small forward proxy on plain sockets, and a TLS server to tunnel to, for the tests of the
proxy environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``).

The proxy records every request head it gets, exactly as received. A plain ``http`` request
comes in absolute form (``GET http://127.0.0.1:8765/v2/jobs/... HTTP/1.1``): it is passed to
that loopback origin in origin form and the answer relayed. A ``CONNECT host:port`` is tunnelled
to ``tunnel_to`` whatever host it names (the tests name hosts that never resolve, so only the
proxy can have reached them), or refused with 502 without one. Loopback only; every
connection ends by itself within ``MAX_SECONDS``.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

MAX_SECONDS = 20.0


def _serve_forever(
    listener: socket.socket, stop: threading.Event, handle: Callable[[socket.socket], None]
) -> None:
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except (TimeoutError, OSError):
            continue
        client.settimeout(MAX_SECONDS)
        threading.Thread(target=handle, args=(client,), daemon=True).start()


def _listener() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    return listener


def _read_head(sock: socket.socket) -> tuple[bytes, bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@dataclass
class Proxy:
    """A forward proxy on 127.0.0.1; ``heads`` holds each request head it received."""

    tunnel_to: tuple[str, int] | None = None
    heads: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = _listener()
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=_serve_forever, args=(self._listener, self._stop, self._handle), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request_lines(self) -> list[str]:
        with self._lock:
            return [head.split(b"\r\n", 1)[0].decode("latin-1") for head in self.heads]

    def header(self, name: str) -> list[str]:
        """Every value of header ``name`` in the heads received, in order."""
        found = []
        with self._lock:
            for head in self.heads:
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    key, _, value = line.partition(":")
                    if key.strip().lower() == name.lower():
                        found.append(value.strip())
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._listener.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle(self, client: socket.socket) -> None:
        with contextlib.closing(client):
            read = _read_head(client)
            if read is None:
                return
            head, rest = read
            with self._lock:
                self.heads.append(head)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if method == "CONNECT":
                self._tunnel(client, rest)
            else:
                self._forward(client, head, rest, target)

    def _tunnel(self, client: socket.socket, rest: bytes) -> None:
        if self.tunnel_to is None:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with socket.create_connection(self.tunnel_to, timeout=MAX_SECONDS) as upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join(MAX_SECONDS)

    def _forward(self, client: socket.socket, head: bytes, rest: bytes, target: str) -> None:
        url = urlsplit(target)
        if url.hostname != "127.0.0.1" or not url.port:  # loopback only
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        lines = head.split(b"\r\n")
        method = lines[0].split(b" ", 1)[0]
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = [
            line
            for line in lines[1:]
            if not line.lower().startswith((b"connection:", b"proxy-", b"keep-alive:"))
        ]
        length = 0
        for line in kept:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = rest
        while len(body) < length:
            chunk = client.recv(65536)
            if not chunk:
                break
            body += chunk
        request = b"\r\n".join(
            [method + b" " + path.encode() + b" HTTP/1.1", *kept, b"Connection: close"]
        )
        with socket.create_connection(("127.0.0.1", url.port), timeout=MAX_SECONDS) as upstream:
            upstream.sendall(request + b"\r\n\r\n" + body)
            answer = b""
            while chunk := upstream.recv(65536):
                answer += chunk
        client.sendall(answer)


@dataclass
class TlsServer:
    """A TLS server on 127.0.0.1 with a fresh self-signed certificate that answers every
    request with ``answer`` (raw bytes) and records the request heads it decrypted."""

    answer: bytes
    heads: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            cert, key = _self_signed(Path(folder))
            self._context.load_cert_chain(cert, key)
        self._listener = _listener()
        self.address = ("127.0.0.1", int(self._listener.getsockname()[1]))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_serve_forever, args=(self._listener, self._stop, self._handle), daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._listener.close()

    def __enter__(self) -> TlsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle(self, client: socket.socket) -> None:
        with contextlib.closing(client), contextlib.suppress(OSError):
            tls = self._context.wrap_socket(client, server_side=True)
            with contextlib.closing(tls):
                read = _read_head(tls)
                if read is None:
                    return
                self.heads.append(read[0])
                tls.sendall(self.answer)


def _self_signed(folder: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proxied.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)
