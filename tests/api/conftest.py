"""Fixtures of the operator API tests: a real DuckDB store, a real config service publishing to a
real (embedded) broker, and the aiohttp application under aiohttp's test client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker
from stream.marketo.sandbox import Sandbox, SandboxConfig
from tests.api.api_harness import Api, prepare_data_dir, start_api, stop_api


@pytest.fixture(scope="session")
def api_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
async def api(tmp_path: Path, api_broker: EmbeddedBroker) -> AsyncIterator[Api]:
    running, producer = await start_api(prepare_data_dir(tmp_path / "var"), api_broker)
    try:
        yield running
    finally:
        await stop_api(running, producer)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(SandboxConfig())
    await box.start("127.0.0.1", 0)
    try:
        yield box
    finally:
        await box.stop()
