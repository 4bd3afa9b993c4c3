"""Connection secrets through the real services (issue 11, items 1 and 3): `csignal control` and
`csignal pipeline` as processes on an embedded broker, the Marketo sandbox, and a local HTTP
listener standing in for a host an operator (or someone holding the API token) points a
connection at.

- A worker authenticates against the sandbox with the secret control sealed on `signal-config`,
  while a plain consumer of every topic finds no byte of the secret.
- Changing the service URL, the access token URL or the client id without a new secret clears
  the stored secret (the answer says so); Save & Test then refuses, the next snapshot carries no
  secret for the connection, the worker's deliveries fail for want of one, and the listener never
  receives a request, let alone the secret.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from apiclient.client import ApiClient
from stream.broker import EmbeddedBroker
from stream.topics import ALL_TOPICS
from tests.retry.retry_helpers import account_yaml, event_dict
from tests.retry.retry_helpers import registration_dict as reg
from tests.support.clock import now as clock_now
from tests.support.clock import recent
from tests.support.fixtures import MakeSandbox
from tests.support.processes import (
    ControlProcess,
    ServiceProcess,
    start_control,
    start_pipeline,
    until_running,
)
from tests.support.waiting import DEADLINE_S

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SECRET = "lit-7f3c-sandbox-secret-b91e"
"""The sandbox's client secret, entered literally through the API (a stored secret)."""
CLEARED_URL = "the client secret was cleared because the identity URL changed; enter it again"
CLEARED_CLIENT = "the client secret was cleared because the client id changed; enter it again"
OTHER_VAR = "SIGNAL_SECRET_E2E_OTHER"


def account_text(sandbox_url: str) -> str:
    """This folder's retry account, its connection `mkto` without a secret (its ${VAR} is
    unset: the test enters one literally), plus `mkto-other` to the same sandbox with its secret
    from the environment and a flow `nurture-other` on it that nothing in the test changes: its
    outcome shows when the worker has handled a change."""
    raw = yaml.safe_load(account_yaml(sandbox_url))
    other = dict(raw["connections"][0], id="mkto-other", name="Other", primary=False)
    other["client_secret"] = f"${{{OTHER_VAR}}}"
    raw["connections"].append(other)
    flow = json.loads(json.dumps(raw["flows"][0]))
    flow.update(id="nurture-other", name="Nurture (other connection)")
    flow["destination"]["connection"] = "mkto-other"
    raw["flows"].append(flow)
    return yaml.safe_dump(raw, sort_keys=False)


@dataclass
class Listener:
    """Any HTTP request to it, recorded whole (method, path and query, headers, body)."""

    url: str = ""
    seen: list[bytes] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
        self.seen.append(f"{request.method} {request.path_qs}\n{headers}\n\n".encode() + body)
        return web.json_response({"access_token": "t", "expires_in": 3600, "token_type": "bearer"})

    def received_secret(self) -> bool:
        return any(SECRET.encode() in raw or b"client_secret" in raw for raw in self.seen)


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    recorded = Listener()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorded.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    recorded.url = str(server.make_url("")).rstrip("/")
    try:
        yield recorded
    finally:
        await server.close()


@dataclass
class Services:
    control: ControlProcess
    pipeline: ServiceProcess
    api: ApiClient
    http: aiohttp.ClientSession
    broker: EmbeddedBroker

    async def wait(self, check: Any, what: str, within: float = DEADLINE_S) -> Any:
        return await until_running(
            check, what, self.control, self.pipeline, within=within, every=0.2
        )

    async def put_connection(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = f"{self.control.url}/api/v1/connections/mkto"
        async with self.http.put(url, json=body, headers=self.control.auth()) as response:
            return response.status, await response.json()

    async def connection(self) -> dict[str, Any]:
        url = f"{self.control.url}/api/v1/connections/mkto"
        async with self.http.get(url, headers=self.control.auth()) as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body

    async def test_connection(self) -> tuple[int, dict[str, Any]]:
        url = f"{self.control.url}/api/v1/connections/mkto/test"
        async with self.http.post(url, headers=self.control.auth()) as response:
            return response.status, await response.json()

    async def status_of(
        self, change_id: str, flow_id: str = "nurture"
    ) -> tuple[str, str | None] | None:
        rows = await self.control.sql(
            self.http,
            "SELECT status, reason FROM outcomes "
            f"WHERE change_id = '{change_id}' AND flow_id = '{flow_id}' AND status <> 'queued'",
        )
        return (str(rows[0][0]), rows[0][1]) if rows else None

    async def applied(self, version: int) -> None:
        """Wait until the worker applied snapshot `version` or a later one."""

        async def done() -> bool:
            found = re.findall(r"configuration snapshot (\d+) applied", self.pipeline.log())
            return any(int(v) >= version for v in found)

        await self.wait(done, f"the pipeline applying snapshot {version} or later")


@pytest.fixture
async def services(
    tmp_path: Path, module_broker: EmbeddedBroker, make_sandbox: MakeSandbox
) -> AsyncIterator[tuple[Services, str]]:
    sandbox = await make_sandbox(client_secret=SecretStr(SECRET))
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    (data_dir / "account.yaml").write_text(account_text(sandbox.url), encoding="utf-8")
    control = await asyncio.to_thread(
        start_control, module_broker, data_dir, env={OTHER_VAR: SECRET}
    )
    pipeline = start_pipeline(module_broker, tmp_path, config_key=data_dir / "config-key")
    api = ApiClient(control.url, control.token)
    http = aiohttp.ClientSession()
    try:
        yield Services(control, pipeline, api, http, module_broker), sandbox.url
    finally:
        await http.close()
        await api.close()
        pipeline.stop()
        control.stop()


async def every_record(bootstrap: str) -> list[bytes]:
    """Keys and values of every record of every Signal topic, read as any plain consumer can."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    raw: list[bytes] = []
    try:
        partitions = [
            TopicPartition(spec.name, p) for spec in ALL_TOPICS for p in range(spec.partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                raw.extend((r.key or b"") + b"\x00" + (r.value or b"") for r in records)
    finally:
        await consumer.stop()
    return raw


async def newest_snapshot(bootstrap: str) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition("signal-config", 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, max(0, end - 1))
        batch = await consumer.getmany(tp, timeout_ms=5000)
        records = batch.get(tp, [])
        assert records, "no snapshot on signal-config"
        snapshot: dict[str, Any] = json.loads(records[-1].value)
        return snapshot
    finally:
        await consumer.stop()


async def test_a_stored_secret_stays_with_its_destination_and_is_sealed_on_the_topic(
    services: tuple[Services, str], listener: Listener
) -> None:
    s, sandbox_url = services
    base = await s.connection()
    base = {k: v for k, v in base.items() if k not in ("version",)}

    # --- a literal secret; the worker authenticates with it, sealed on the topic -------------
    status, body = await s.put_connection({**base, "client_secret": SECRET})
    assert status == 200 and body["secret_set"] and body["secret_source"] == "stored", body
    summit = event_dict(occurred_at=recent(days=1))
    assert (await s.api.post_changes([summit])).accepted == 1

    async def catalog_published() -> int | None:
        snapshot = await newest_snapshot(s.broker.bootstrap_servers)
        has_event = summit["eventCode"] in snapshot["catalog"].get("events", {})
        return int(snapshot["version"]) if has_event and "mkto" in snapshot["secrets"] else None

    await s.applied(await s.wait(catalog_published, "a snapshot with the event and the secret"))
    assert (await s.api.post_changes([reg("d1", occurred_at=clock_now())])).accepted == 1
    delivered = await s.wait(lambda: s.status_of("d1"), "the first delivery's outcome", 120)
    assert delivered[0] == "delivered", delivered

    records = await every_record(s.broker.bootstrap_servers)
    assert records, "nothing read from the topics"
    assert not [r for r in records if SECRET.encode() in r], "a topic carries the secret"
    assert (await newest_snapshot(s.broker.bootstrap_servers))["secrets"]["mkto"].startswith(
        "sealed:v1:"
    )

    # --- the service URL moves to another host: the secret is cleared, never sent ------------
    status, body = await s.put_connection({**base, "service_url": listener.url})
    assert status == 200, body
    assert body["secret_set"] is False and body["secret_cleared"] == CLEARED_URL, body
    assert (await s.connection())["secret_cleared"] == CLEARED_URL
    status, refused = await s.test_connection()
    assert status == 422, refused
    assert CLEARED_URL in json.dumps(refused)

    async def moved() -> int | None:
        snapshot = await newest_snapshot(s.broker.bootstrap_servers)
        connection = snapshot["account"]["connections"][0]
        at_listener = connection["service_url"].startswith(listener.url)
        return int(snapshot["version"]) if at_listener else None

    version = await s.wait(moved, "the snapshot with the moved connection")
    snapshot = await newest_snapshot(s.broker.bootstrap_servers)
    assert "mkto" not in snapshot["secrets"], "the moved connection's snapshot carries a secret"
    assert "mkto-other" in snapshot["secrets"]
    await s.applied(version)
    # The flow on the moved connection lacks a secret now, so it no longer runs; the other
    # connection's flow shows the worker handled the change.
    assert (await s.api.post_changes([reg("d2", occurred_at=clock_now())])).accepted == 1
    other = await s.wait(
        lambda: s.status_of("d2", "nurture-other"), "the other flow's outcome", 120
    )
    assert other[0] == "delivered", other
    nurture = await s.status_of("d2")
    assert nurture is None or nurture[0] == "failed", nurture
    assert listener.seen == [], "a request reached the new host"

    # --- the token URL alone moves, then the client id: cleared each time ----------------------
    status, body = await s.put_connection({**base, "client_secret": SECRET})
    assert status == 200 and body["secret_set"] and body["secret_cleared"] is None, body
    status, tested = await s.test_connection()
    assert status == 200 and tested["ok"], tested
    token_url = f"{listener.url}/identity/oauth/token"
    status, body = await s.put_connection({**base, "access_token_url": token_url})
    assert body["secret_set"] is False and body["secret_cleared"] == CLEARED_URL, body
    assert (await s.test_connection())[0] == 422

    status, body = await s.put_connection({**base, "client_secret": SECRET})
    assert status == 200 and body["secret_set"], body
    status, body = await s.put_connection({**base, "client_id": "someone-else"})
    assert body["secret_set"] is False and body["secret_cleared"] == CLEARED_CLIENT, body
    assert (await s.test_connection())[0] == 422

    # A change that keeps the destination keeps the secret.
    status, body = await s.put_connection({**base, "client_secret": SECRET})
    status, body = await s.put_connection({**base, "name": "Renamed", "rate_share": 0.5})
    assert status == 200 and body["secret_set"] and body["secret_cleared"] is None, body

    assert listener.seen == [] and not listener.received_secret()
    assert sandbox_url.startswith("http://127.0.0.1")
    records = await every_record(s.broker.bootstrap_servers)
    assert not [r for r in records if SECRET.encode() in r], "a topic carries the secret"
