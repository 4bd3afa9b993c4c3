"""Fixtures of the operator API tests: a real DuckDB store, a real config service publishing to
the shared embedded broker (on topics of the test's own), and the aiohttp application under
aiohttp's test client. `broker` and `sandbox` come from `tests.support.fixtures`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker
from tests.api.api_harness import Api, prepare_data_dir, start_api, stop_api


@pytest.fixture
async def api(tmp_path: Path, broker: EmbeddedBroker) -> AsyncIterator[Api]:
    running, producer = await start_api(prepare_data_dir(tmp_path / "var"), broker)
    try:
        yield running
    finally:
        await stop_api(running, producer)
