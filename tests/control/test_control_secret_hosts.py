"""Allow-list entries bound to hosts (`NAME@HOST`), through a real `csignal control` process and a
local HTTP listener reachable by two names (127.0.0.1 and localhost): the API token can point a
connection anywhere, but a bound variable's value only goes to its hosts. Moving the service
URL or the identity URL elsewhere with the same `${VAR}` is refused (422 naming the host) on
save, on Save & Test and on import, and the listener receives nothing; at the bound host the
value is sent (the binding allows, not only refuses)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from stream.broker import EmbeddedBroker
from tests.support.processes import ControlProcess, start_control

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

LOCAL_VAR = "SIGNAL_SECRET_LOCAL"
LOCAL_VALUE = "local-4e1f-value"
MARKETO_VAR = "MARKETO_BOUND_SECRET"
MARKETO_VALUE = "mkto-9a7c-value"
ALLOWLIST = f"{MARKETO_VAR}@*.mktorest.com, {LOCAL_VAR}@127.0.0.1"


@dataclass
class Listener:
    port: int = 0
    seen: list[bytes] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(f"{request.method} {request.path_qs}\n".encode() + await request.read())
        return web.json_response({"access_token": "t", "expires_in": 3600, "token_type": "bearer"})

    def received(self, value: str) -> bool:
        return any(value.encode() in raw for raw in self.seen)


@dataclass
class Rig:
    control: ControlProcess
    http: aiohttp.ClientSession
    listener: Listener

    async def call(
        self, method: str, path: str, body: Any = None, *, text: str | None = None
    ) -> tuple[int, Any]:
        kw: dict[str, Any] = {"data": text.encode()} if text is not None else {"json": body}
        url = f"{self.control.url}{path}"
        async with self.http.request(method, url, headers=self.control.auth(), **kw) as response:
            return response.status, await response.json()


@pytest.fixture
async def rig(tmp_path: Path, module_broker: EmbeddedBroker) -> AsyncIterator[Rig]:
    listener = Listener()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", listener.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    assert server.port is not None
    listener.port = server.port
    env = {
        "SIGNAL_SECRET_ENV_ALLOWLIST": ALLOWLIST,
        LOCAL_VAR: LOCAL_VALUE,
        MARKETO_VAR: MARKETO_VALUE,
    }
    control = await asyncio.to_thread(start_control, module_broker, tmp_path / "var", env=env)
    http = aiohttp.ClientSession()
    try:
        yield Rig(control, http, listener)
    finally:
        await http.close()
        control.stop()
        await server.close()


def _connection(id_: str, service_url: str, var: str, **more: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "name": id_,
        "service_url": service_url,
        "client_id": "cid",
        "client_secret": f"${{{var}}}",
        **more,
    }


def _refused(status: int, body: Any, var: str, host: str) -> None:
    assert status == 422, body
    [error] = body["errors"]
    assert error["path"].endswith("client_secret"), error
    assert f"environment variable {var} may not be sent to host {host}" in error["message"]
    assert "SIGNAL_SECRET_ENV_ALLOWLIST binds it to" in error["message"]


async def test_a_bound_variable_goes_only_to_its_hosts(rig: Rig) -> None:
    port = rig.listener.port
    here, there = f"http://127.0.0.1:{port}", f"http://localhost:{port}"

    # At the bound host the value resolves and is sent.
    status, body = await rig.call(
        "POST", "/api/v1/connections", _connection("local", here, LOCAL_VAR)
    )
    assert status == 201, body
    assert body["secret_set"] is True and body["secret_source"] == f"env:{LOCAL_VAR}"
    status, _ = await rig.call("POST", "/api/v1/connections/local/test")
    assert status == 200
    assert rig.listener.received(LOCAL_VALUE)
    rig.listener.seen.clear()

    # The same listener by another name: refused on save, on Save & Test, via the identity URL.
    moved = _connection("local", there, LOCAL_VAR)
    _refused(*await rig.call("PUT", "/api/v1/connections/local", moved), LOCAL_VAR, "localhost")
    _refused(*await rig.call("POST", "/api/v1/connections/test", moved), LOCAL_VAR, "localhost")
    token_elsewhere = _connection(
        "local", here, LOCAL_VAR, access_token_url=f"{there}/identity/oauth/token"
    )
    _refused(
        *await rig.call("PUT", "/api/v1/connections/local", token_elsewhere),
        LOCAL_VAR,
        "localhost",
    )
    status, kept = await rig.call("GET", "/api/v1/connections/local")
    assert kept["service_url"].rstrip("/") == here and kept.get("access_token_url") is None

    # A Marketo-bound variable cannot follow a connection to the listener.
    mkto = _connection("mkto", "https://1-2-3.mktorest.com", MARKETO_VAR)
    status, body = await rig.call("POST", "/api/v1/connections", mkto)
    assert status == 201 and body["secret_set"] is True, body
    hijack = _connection("mkto", here, MARKETO_VAR)
    _refused(*await rig.call("PUT", "/api/v1/connections/mkto", hijack), MARKETO_VAR, "127.0.0.1")
    _refused(*await rig.call("POST", "/api/v1/connections/test", hijack), MARKETO_VAR, "127.0.0.1")

    # Nor through a configuration import.
    status, exported = await rig.call("GET", "/api/v1/config?format=json")
    assert status == 200, exported
    text = json.dumps(exported).replace("https://1-2-3.mktorest.com", here)
    status, body = await rig.call("PUT", "/api/v1/config?format=json", text=text)
    assert status == 422, body
    assert any(
        f"{MARKETO_VAR} may not be sent to host 127.0.0.1" in e["message"] for e in body["errors"]
    ), body

    assert rig.listener.seen == [], "a refused destination was contacted"
    log = rig.control.log()
    assert LOCAL_VALUE not in log and MARKETO_VALUE not in log
