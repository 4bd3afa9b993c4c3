"""Fixtures of the retry-queue tests: a real DuckDB store, the shared embedded broker with a
per-test redrive topic, and a fake clock (the schedule is hours long)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from stream.api import ApiDeps, create_app
from stream.broker import EmbeddedBroker
from stream.control.config_service import ConfigService
from stream.control.operations import Operations
from stream.control.secret_store import SecretStore
from stream.control.token import load_or_create_token
from stream.store import Store
from tests.retry.retry_helpers import SECRET, SECRET_VAR, OpsApi, RedriveTopic, account_yaml, event
from tests.support.clock import FakeClock


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "signal.duckdb", reader_threads=2, threads=2)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def redrive(broker: EmbeddedBroker) -> AsyncIterator[RedriveTopic]:
    topic = RedriveTopic(broker.bootstrap_servers)
    await topic.start()
    try:
        yield topic
    finally:
        await topic.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def ops_api(tmp_path: Path, redrive: RedriveTopic, clock: FakeClock) -> AsyncIterator[OpsApi]:
    """The operator API app (the API's own factory and middleware) with the retry, replay and
    preview routes, over a real store and config service; redrives go to the test's topic."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    (data_dir / "account.yaml").write_text(account_yaml(), encoding="utf-8")
    store = await Store.open(data_dir / "signal.duckdb", reader_threads=2, threads=2)
    config = ConfigService(store, SecretStore(data_dir / "secrets.json"), env={SECRET_VAR: SECRET})
    await config.start(data_dir / "account.yaml")
    config.apply_changes([event()])
    token = load_or_create_token(data_dir / "api-token")

    async def produce(records: Any) -> None:
        raise AssertionError("no change is ingested here")

    deps = ApiDeps(store=store, config=config, produce_changes=produce, token=token)
    ops = Operations.build(store, config, redrive.publish, clock=clock)
    app = create_app(deps, ops)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield OpsApi(client, store, config, ops, token)
    finally:
        await client.close()
        await ops.close()
        await config.stop()
        await store.close()
