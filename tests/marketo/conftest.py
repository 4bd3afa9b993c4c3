"""Marketo test helpers. The `sandbox` and `make_sandbox` fixtures live in tests/conftest.py;
`mkto` is a thin HTTP helper over the default sandbox for the sandbox's conformance tests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from simulators.marketo.sandbox import Sandbox
from tests.support.fixtures import MakeSandbox
from tests.support.marketo import CLIENT_ID, CLIENT_SECRET


class Reply:
    """One HTTP exchange: status, parsed JSON body (None when not JSON) and headers."""

    def __init__(self, status: int, body: Any, headers: Any, text: str) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.text = text

    @property
    def code(self) -> str | None:
        """The first response-level error code, if any."""
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        return errors[0]["code"] if errors else None


class MarketoHttp:
    """Plain aiohttp over real HTTP, shaped by the Marketo docs — not by any client of ours."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.token: str | None = None

    async def auth(self, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
        reply = await self.raw(
            "GET",
            "/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        )
        assert reply.status == 200, reply.text
        self.token = reply.body["access_token"]
        return self.token

    async def raw(self, method: str, path: str, **kwargs: Any) -> Reply:
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            text = await resp.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            return Reply(resp.status, body, resp.headers, text)

    async def call(
        self, method: str, path: str, *, token: str | bool = True, **kwargs: Any
    ) -> Reply:
        """A REST call with the current token as Bearer header (token=False: none)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is True:
            if self.token is None:
                await self.auth()
            headers["Authorization"] = f"Bearer {self.token}"
        elif isinstance(token, str):
            headers["Authorization"] = f"Bearer {token}"
        return await self.raw(method, path, headers=headers, **kwargs)

    async def sync(self, records: list[dict[str, Any]], **body: Any) -> Reply:
        return await self.call("POST", "/rest/v1/leads.json", json={"input": records, **body})


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def mkto(sandbox: Sandbox, http: aiohttp.ClientSession) -> MarketoHttp:
    return MarketoHttp(http, sandbox.url)


async def signed_in(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession, **config: Any
) -> tuple[Sandbox, MarketoHttp]:
    """A sandbox started with `config`, and a MarketoHttp on it already holding a token."""
    sb = await make_sandbox(**config)
    mkto = MarketoHttp(http, sb.url)
    await mkto.auth()
    return sb, mkto
