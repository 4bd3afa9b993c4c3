"""Fixtures every test folder may use: a running Marketo sandbox on a free loopback port.

`sandbox` yields a started `Sandbox` with the default configuration (`.url`, `.state`, fault
methods); `make_sandbox(**config)` starts one with `SandboxConfig` overrides, e.g.
`await make_sandbox(token_lifetime_s=5, clock=ManualClock(...))`. Both are stopped afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from stream.marketo.sandbox import Sandbox, SandboxConfig

MakeSandbox = Callable[..., Awaitable[Sandbox]]


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
