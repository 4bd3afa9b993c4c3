""" "Save & Test" and "Refresh Target Fields": messages an administrator can act on."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from simulators.marketo.sandbox import Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.connection_test import refresh_target_fields
from stream.marketo.connection_test import test_connection as save_and_test
from stream.marketo.errors import FailureClass, MarketoError
from stream.marketo.settings import MarketoSettings
from tests.support.marketo import settings_at as default_settings


def settings_at(url: str, **overrides: Any) -> MarketoSettings:
    """The shared settings with one attempt per call: a connection test reports, never retries."""
    return default_settings(url, **{"max_attempts": 1, **overrides})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_good_connection(sandbox: Sandbox) -> None:
    result = await save_and_test(settings_at(sandbox.url))
    assert result.ok
    assert result.failure is None
    assert result.message.startswith(f"connected to {sandbox.url} as apis@sandbox.example.com")
    assert [c.name for c in result.checks] == ["credentials", "lead fields", "campaigns"]
    assert all(c.ok for c in result.checks)
    assert "email" in {f.name for f in result.fields}
    assert result.campaigns == 2


async def test_bad_secret(sandbox: Sandbox) -> None:
    result = await save_and_test(settings_at(sandbox.url, client_secret=SecretStr("nope")))
    assert not result.ok
    assert result.message.startswith("bad client id or secret")
    assert result.failure is not None and result.failure.kind is FailureClass.AUTH
    assert "nope" not in repr(result)


async def test_bad_client_id(sandbox: Sandbox) -> None:
    result = await save_and_test(settings_at(sandbox.url, client_id="someone-else"))
    assert not result.ok
    assert result.message.startswith("bad client id or secret")


async def test_nothing_listening() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = await save_and_test(settings_at(url))
    assert not result.ok
    assert result.message == f"cannot reach {url}: connection refused"
    assert result.failure is not None and result.failure.kind is FailureClass.TECHNICAL


async def test_permission_missing_on_lead_fields(sandbox: Sandbox) -> None:
    sandbox.inject_error("603", message="Access denied", endpoint="leads.describe")
    result = await save_and_test(settings_at(sandbox.url))
    assert not result.ok
    assert result.message.startswith("the API user lacks permission to read lead fields")
    assert "603" in result.message
    assert [c.ok for c in result.checks] == [True, False]


async def test_permission_missing_on_campaigns(sandbox: Sandbox) -> None:
    sandbox.inject_error("603", message="Access denied", endpoint="campaigns.list")
    result = await save_and_test(settings_at(sandbox.url))
    assert not result.ok
    assert result.message.startswith("the API user lacks permission to read campaigns")
    assert result.fields  # what could be read is still handed back


async def test_a_web_site_is_not_a_marketo_endpoint(
    web_server: Callable[[web.Application], Awaitable[str]],
) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Welcome</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    url = await web_server(app)
    result = await save_and_test(settings_at(url))
    assert not result.ok
    assert result.message.startswith("that URL answers but is not a Marketo REST endpoint")


async def test_a_404_server_is_not_a_marketo_endpoint(
    web_server: Callable[[web.Application], Awaitable[str]],
) -> None:
    url = await web_server(web.Application())
    result = await save_and_test(settings_at(url))
    assert not result.ok
    assert result.message.startswith("that URL answers but is not a Marketo REST endpoint")


async def test_identity_elsewhere_but_rest_url_wrong(
    sandbox: Sandbox, web_server: Callable[[web.Application], Awaitable[str]]
) -> None:
    url = await web_server(web.Application())
    settings = settings_at(url, identity_url=f"{sandbox.url}/identity/oauth/token")
    result = await save_and_test(settings)
    assert not result.ok
    assert [c.ok for c in result.checks] == [True, False]
    assert result.message.startswith("that URL answers but is not a Marketo REST endpoint")


async def test_refresh_target_fields_reads_again(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_at(sandbox.url)) as client:
        before = await client.describe()
        after = await refresh_target_fields(client)
        assert before == after
        sandbox.inject_error("603", message="Access denied", endpoint="leads.describe")
        with pytest.raises(MarketoError):
            await refresh_target_fields(client)
    assert len(sandbox.calls("leads.describe")) == 3
