"""The operator API under aiohttp's test client over a real store, config service and broker.

A module of its own (not `conftest`) so test files can import it by its package path.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer

from config.models import Connection, Mapping
from stream.api import ApiDeps, create_app
from stream.broker import EmbeddedBroker
from stream.control.config_service import ConfigService
from stream.control.secret_store import SecretStore
from stream.control.token import load_or_create_token
from stream.messages import ConfigSnapshot
from stream.store import Store
from tests.api.api_helpers import ACCOUNT_YAML, SECRET, SECRET_VAR
from tests.support.waiting import until


@dataclass
class Api:
    client: TestClient[Any, Any]
    store: Store
    config: ConfigService
    token: str
    data_dir: Path
    bootstrap: str
    changes_topic: str
    config_topic: str
    delivered_topic: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def headers(self, actor: str | None = None) -> dict[str, str]:
        return {**self.auth, **({"X-Signal-Actor": actor} if actor else {})}

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.client.get(path, headers=kw.pop("headers", self.auth), **kw)

    async def post(self, path: str, **kw: Any) -> Any:
        return await self.client.post(path, headers=kw.pop("headers", self.auth), **kw)

    async def put(self, path: str, **kw: Any) -> Any:
        return await self.client.put(path, headers=kw.pop("headers", self.auth), **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.client.delete(path, headers=kw.pop("headers", self.auth), **kw)

    def connection(self, connection_id: str) -> Connection:
        """The connection as the config service holds it now (which the test expects to exist)."""
        found = self.config.account.connection(connection_id)
        assert found is not None, f"no connection {connection_id!r}"
        return found

    def mapping(self, mapping_id: str) -> Mapping:
        """The mapping as the config service holds it now (which the test expects to exist)."""
        found = self.config.account.mapping(mapping_id)
        assert found is not None, f"no mapping {mapping_id!r}"
        return found

    @property
    def published_version(self) -> int:
        """The version of the snapshot the config service published last."""
        published = self.config.published
        assert published is not None, "no snapshot published yet"
        return published.version

    async def settled_version(self) -> int:
        """The published version once no change waits to be published: what startup marked
        dirty (the catalog from archived events, say) may go out a moment after the first
        snapshot, and a test comparing versions around a refused request must not count it."""

        async def idle() -> bool:
            return not self.config.publish_pending

        await until(idle, "the configuration published")
        return self.published_version


def prepare_data_dir(data_dir: Path, account_yaml: str | None = ACCOUNT_YAML) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    if account_yaml is not None:
        (data_dir / "account.yaml").write_text(account_yaml, encoding="utf-8")
    return data_dir


async def start_api(data_dir: Path, broker: EmbeddedBroker) -> tuple[Api, AIOKafkaProducer]:
    suffix = uuid.uuid4().hex[:8]
    changes_topic = f"certain-changes-{suffix}"
    config_topic = f"signal-config-{suffix}"
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()

    async def publish(snapshot: ConfigSnapshot) -> None:
        await (await producer.send(config_topic, snapshot.dumps(), key=b"snapshot"))

    async def produce(records: Sequence[tuple[bytes, bytes]]) -> None:
        futures = [await producer.send(changes_topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)

    async def broker_ok() -> bool:
        await producer.client.force_metadata_update()
        return True

    delivered_topic = f"signal-delivered-{suffix}"

    async def tombstones(keys: Sequence[str]) -> dict[str, int]:
        futures = [await producer.send(delivered_topic, None, key=k.encode()) for k in keys]
        await asyncio.gather(*futures)
        return {delivered_topic: len(keys)}

    store = await Store.open(data_dir / "signal.duckdb", reader_threads=2, threads=2)
    config = ConfigService(
        store, SecretStore(data_dir / "secrets.json"), publish=publish, env={SECRET_VAR: SECRET}
    )
    await config.start(data_dir / "account.yaml")
    token = load_or_create_token(data_dir / "api-token")
    deps = ApiDeps(
        store=store,
        config=config,
        produce_changes=produce,
        token=token,
        broker_ok=broker_ok,
        tombstones=tombstones,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    api = Api(
        client,
        store,
        config,
        token,
        data_dir,
        broker.bootstrap_servers,
        changes_topic,
        config_topic,
        delivered_topic,
    )
    return api, producer


async def stop_api(api: Api, producer: AIOKafkaProducer) -> None:
    await api.client.close()
    await api.config.stop()
    await api.store.close()
    await producer.stop()
