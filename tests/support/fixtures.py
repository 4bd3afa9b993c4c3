"""Fixtures every test folder may use (imported by tests/conftest.py).

`broker` is one embedded broker for the whole session: tests that share it use topic names and
group ids of their own. Tests that start Signal's own services (which use the fixed topic names
and consumer groups) take `module_broker`, a broker per module, so no two modules' services meet.
`sandbox` / `make_sandbox` start Marketo sandboxes on free loopback ports and stop them after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from simulators.marketo.sandbox import Sandbox, SandboxConfig
from stream.broker import EmbeddedBroker

MakeSandbox = Callable[..., Awaitable[Sandbox]]


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="module")
def module_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
async def make_sandbox() -> AsyncIterator[MakeSandbox]:
    started: list[Sandbox] = []

    async def make(**config: Any) -> Sandbox:
        sandbox = Sandbox(SandboxConfig(**config))
        await sandbox.start("127.0.0.1", 0)
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        await sandbox.stop()


@pytest.fixture
async def sandbox(make_sandbox: MakeSandbox) -> Sandbox:
    return await make_sandbox()


Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def web_server() -> AsyncIterator[Serve]:
    """Serves an aiohttp application on loopback and gives its URL: a stand-in for a server
    Signal talks to (a Marketo or Certain host that misbehaves on purpose)."""
    runners: list[web.AppRunner] = []

    async def serve(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield serve
    for runner in runners:
        await runner.cleanup()
