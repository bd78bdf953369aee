"""One deadline for a whole answer on the sync path.

requests and urllib3 time each socket read on its own, so a server that sends its status line,
its headers or its body a byte at a time could hold a task for as long as it likes. Sessions
built with :class:`DeadlineAdapter` read every answer through a socket reader that gives up
when the deadline of the current attempt passes (:func:`deadline`, set per thread by the
transport); urllib3 then raises its usual ``ReadTimeoutError``, which requests turns into
``requests.ReadTimeout``. The async path needs none of this: aiohttp bounds a whole attempt.

The same answers skip 1xx interim answers (``103 Early Hints``, ``102 Processing``) as RFC 9110
and aiohttp do; http.client alone skips only ``100 Continue`` and would hand the 103 over as
the answer.

This module imports requests and urllib3: import it only when a request is about to be sent.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from http.client import HTTPResponse, parse_headers
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


@contextlib.contextmanager
def deadline(at: float) -> Iterator[None]:
    """Answers read by this thread inside the block must be complete by ``at``
    (``time.monotonic()``)."""
    _current.at = at
    try:
        yield
    finally:
        _current.at = None


class _DeadlineReader(io.RawIOBase):
    """A socket's reader whose every read waits at most until the deadline."""

    def __init__(self, raw: Any, sock: socket.socket, at: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._at = at
        self._per_read = sock.gettimeout()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not arrive within the timeout")
        self._sock.settimeout(left if self._per_read is None else min(left, self._per_read))
        return self._raw.readinto(buffer)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineResponse(HTTPResponse):
    """An answer read under the deadline, past any 1xx interim answers."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        at = getattr(_current, "at", None)
        if at is not None:
            # detach: the socket file is handed over, not closed (it holds the socket open)
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, at))

    def _read_status(self) -> tuple[str, int, str]:
        # http.client skips only "100 Continue"; RFC 9110 says a client skips every interim
        # answer (102 Processing, 103 Early Hints...) and reads the one after it. 101 is not
        # interim: the server switched protocols, which the caller must see (and refuse).
        # Any number of them, as aiohttp: the attempt's deadline bounds the time they take, and
        # each one's headers are read (bounded by http.client) and dropped.
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            parse_headers(self.fp)


class _HTTPConnection(HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections read answers under :func:`deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Make the direct connections' pools read under the deadline."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Make an HTTP proxy's pools read under the deadline too."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS managers bring their own pools
            manager.pool_classes_by_scheme = _POOLS
        return manager
