"""Fixtures of the retry-queue tests: a real DuckDB store, a real embedded broker with a
per-test redrive topic, and a fake clock (the schedule is hours long)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from retry_helpers import FakeClock, RedriveTopic

from stream.broker import EmbeddedBroker
from stream.store import Store


@pytest.fixture(scope="session")
def retry_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "signal.duckdb", reader_threads=2, threads=2)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def redrive(retry_broker: EmbeddedBroker) -> AsyncIterator[RedriveTopic]:
    topic = RedriveTopic(retry_broker.bootstrap_servers)
    await topic.start()
    try:
        yield topic
    finally:
        await topic.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
