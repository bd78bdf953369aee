"""A scripted fake HTTP API for hook tests, active for ``requests`` (through ``responses``) and
``aiohttp`` (by standing in for ``ClientSession.request``, the one call the async transport
makes) at once, so one script serves the sync and the async path. URLs are matched exactly as
sent (already percent-encoded), which is how tests assert encoding."""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import requests
import responses
from requests.structures import CaseInsensitiveDict

USEAPI = "https://api.useapi.net"
WRITETEXT = "https://api.writetext.ai"
WRITETEXT_REGION = "https://api-eu.writetext.ai"
TOKEN_URL = f"{WRITETEXT}/web/apitoken/accesstoken"

DROP = object()
"""Put in a script instead of a status code: the connection fails (no answer)."""


@dataclass
class Call:
    method: str
    url: str
    headers: CaseInsensitiveDict[str]
    body: bytes


@dataclass
class FakeApi:
    scripts: dict[tuple[str, str], list[tuple[Any, bytes, dict[str, str]]]] = field(
        default_factory=dict
    )
    calls: list[Call] = field(default_factory=list)

    def add(
        self,
        method: str,
        url: str,
        status: Any = 200,
        *,
        json: Any = None,
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Script the next answer to ``method url``; the last answer repeats forever."""
        if json is not None:
            content = jsonlib.dumps(json).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        elif isinstance(body, str):
            content = body.encode()
        else:
            content = body or b""
        self.scripts.setdefault((method.upper(), url), []).append(
            (status, content, dict(headers or {}))
        )

    def token(
        self,
        token: str = "access-token-0123456789",
        *,
        region: str | None = "api-eu.writetext.ai",
        status: int = 200,
        **fields: Any,
    ) -> None:
        body: dict[str, Any] = {"access_token": token, "expires_in": 3600, **fields}
        if region is not None:
            body["region"] = region
        body = {k: v for k, v in body.items() if v is not None}
        self.add("GET", TOKEN_URL, status, json=body)

    def answer(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Any:
        self.calls.append(Call(method, url, CaseInsensitiveDict(headers), body))
        script = self.scripts.get((method, url))
        if not script:
            raise AssertionError(
                f"unexpected request {method} {url}; scripted: {list(self.scripts)}"
            )
        return script.pop(0) if len(script) > 1 else script[0]

    def urls(self, method: str | None = None) -> list[str]:
        return [c.url for c in self.calls if method is None or c.method == method]

    def count(self, url: str, method: str | None = None) -> int:
        return sum(1 for c in self.calls if c.url == url and method in (None, c.method))


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi()

    def sync_callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        status, content, headers = api.answer(
            request.method or "", request.url or "", dict(request.headers), body
        )
        if status is DROP:
            raise requests.ConnectionError("Connection reset by peer")
        return status, headers, content

    class FakeAnswer:
        """What ``async with session.request(...) as answer`` yields, as far as hooks read it."""

        def __init__(self, method: str, url: Any, headers: Any, json: Any) -> None:
            self.request = (method.upper(), str(url), dict(headers or {}), json)

        async def __aenter__(self) -> FakeAnswer:
            method, url, headers, json = self.request
            body = jsonlib.dumps(json).encode() if json is not None else b""
            status, content, answer_headers = api.answer(method, url, headers, body)
            if status is DROP:
                raise aiohttp.ServerDisconnectedError("Connection reset by peer")
            self.status, self.body = status, content
            self.headers = CaseInsensitiveDict(answer_headers)
            self.charset = None
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        async def read(self) -> bytes:
            return self.body

        @property
        def content(self) -> FakeAnswer:
            return self

        async def iter_chunked(self, size: int) -> AsyncIterator[bytes]:
            for start in range(0, len(self.body), size):
                yield self.body[start : start + size]

    def fake_request(
        session: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any
    ) -> FakeAnswer:
        return FakeAnswer(method, url, kwargs.get("headers"), kwargs.get("json"))

    with (
        responses.RequestsMock(assert_all_requests_are_fired=False) as rsps,
        pytest.MonkeyPatch.context() as patch,
    ):
        for method in ("GET", "POST", "DELETE", "PUT", "PATCH"):
            rsps.add_callback(method, re.compile(r".*"), callback=sync_callback)
        patch.setattr(aiohttp.ClientSession, "request", fake_request)
        yield api
