"""Configuration snapshots are authenticated (`stream.sealing`): the embedded broker lets any local
user produce to `signal-config`, so a worker applies only a snapshot tagged with the config key.

Unit: the tag and its verification. Real broker: the snapshot reader refuses a forged snapshot
(no tag, another key's tag, an authentic tag over altered content), counts it and keeps the
configuration it has; a real worker process keeps delivering by the authentic configuration
while forged snapshots that switch the flow off arrive, and says why in its log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.broker import EmbeddedBroker
from stream.messages import ConfigSnapshot
from stream.pipeline.snapshot import ConfigView, SnapshotReader
from stream.sealing import AUTH_LABEL, AuthError, KeyFile, SecretBox, authenticate
from stream.topics import ALL_TOPICS, CONFIG, OUTCOMES, declare_topics
from tests.pipeline.pipeline_support import (
    BOX,
    event_json,
    registration_json,
    snapshot,
    write_key,
)
from tests.support.processes import ServiceProcess, start_pipeline, until_running
from tests.support.waiting import until

if TYPE_CHECKING:
    from simulators.marketo.sandbox import Sandbox

NURTURE = "registered-to-nurture"


def _switched_off(version: int) -> ConfigSnapshot:
    """A snapshot with the nurture flow inactive: what a forger would publish."""
    made = snapshot("http://127.0.0.1:9", version=version)
    (flow,) = [f for f in made.account["flows"] if f["id"] == NURTURE]
    flow["active"] = False
    return made


def forgeries(version: int) -> list[tuple[str, ConfigSnapshot]]:
    """(what, snapshot) for each way a local user might forge one."""
    untagged = _switched_off(version).model_copy(update={"auth": None})
    other_key = authenticate(_switched_off(version + 1), SecretBox.generate())
    authentic_tag = snapshot("http://127.0.0.1:9", version=version + 2).auth
    altered = _switched_off(version + 2).model_copy(update={"auth": authentic_tag})
    return [
        ("it carries no tag", untagged),
        ("tagged with another key", other_key),
        ("its tag does not match its content", altered),
    ]


# --- the tag -------------------------------------------------------------------------------------


def test_a_tag_verifies_its_bytes_and_nothing_else() -> None:
    data = b'["signal-config-snapshot",{"version":1}]'
    tag = BOX.tag(data)
    assert tag.startswith(f"hmac-sha256:v1:{BOX.key_id}:")
    BOX.verify(data, tag)
    for wrong, why in [
        (None, "carries no tag"),
        ("", "carries no tag"),
        ("sealed:v1:abc:def", "not an hmac-sha256:v1 tag"),
        ("hmac-sha256:v1:", "damaged"),
        (tag[:-8] + "AAAAAAA=", "does not match"),
        (SecretBox.generate().tag(data), "another key"),
    ]:
        with pytest.raises(AuthError, match=why):
            BOX.verify(data, wrong)
    with pytest.raises(AuthError, match="does not match"):
        BOX.verify(data.replace(b"1", b"2"), tag)


def test_the_tag_key_is_derived_apart_from_the_sealing_key() -> None:
    """A tag is not an HMAC under the AES key itself: the two uses do not share a key."""
    key = bytes(range(32))
    raw = SecretBox(key)
    data = b"snapshot bytes"
    plain = hmac.new(key, data, hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(plain).decode() not in raw.tag(data)
    assert AUTH_LABEL.startswith(b"signal-config snapshot")


def test_a_tagged_snapshot_survives_the_wire_and_an_edit_does_not() -> None:
    made = snapshot("http://127.0.0.1:9", version=7)
    wire = ConfigSnapshot.loads(made.dumps())
    BOX.verify(wire.authenticated_bytes(), wire.auth)
    for what, forged in forgeries(8):
        again = ConfigSnapshot.loads(forged.dumps())
        with pytest.raises(AuthError, match=what):
            BOX.verify(again.authenticated_bytes(), again.auth)


# --- the reader on a real broker -----------------------------------------------------------------


@pytest.fixture
async def producer(module_broker: EmbeddedBroker) -> AsyncIterator[AIOKafkaProducer]:
    await declare_topics(module_broker.url, ALL_TOPICS)
    made = AIOKafkaProducer(bootstrap_servers=module_broker.bootstrap_servers, acks="all")
    await made.start()
    yield made
    await made.stop()


async def publish(producer: AIOKafkaProducer, made: ConfigSnapshot) -> None:
    await producer.send_and_wait(CONFIG.name, made.dumps(), key=b"snapshot")


@pytest.mark.integration
async def test_the_reader_refuses_forged_snapshots_and_keeps_the_authentic_one(
    module_broker: EmbeddedBroker,
    producer: AIOKafkaProducer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("ERROR", logger="signal.pipeline.snapshot")
    view = ConfigView()
    reader = SnapshotReader(module_broker.url, view, KeyFile(write_key(tmp_path / "config-key")))
    task = asyncio.create_task(reader.run())
    try:
        await publish(producer, snapshot("http://127.0.0.1:9", version=100))
        await until(_async(lambda: view.version == 100), "the authentic snapshot applied")
        forged = forgeries(101)
        for _, made in forged:
            await publish(producer, made)
        await until(_async(lambda: view.snapshots_refused == 3), "three snapshots refused")
        assert view.version == 100 and view.snapshots_applied == 1
        (flow,) = [f for f in view.account.flows if f.id == NURTURE]
        assert flow.active
        messages = [r.getMessage() for r in caplog.records]
        for (what, made), message in zip(forged, messages, strict=True):
            assert message.startswith(f"refusing configuration snapshot {made.version} on ")
            assert what in message and "kept (version 100)" in message
        # The next authentic snapshot applies as before.
        await publish(producer, snapshot("http://127.0.0.1:9", version=200))
        await until(_async(lambda: view.version == 200), "the next authentic snapshot applied")
        assert view.snapshots_refused == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _async(check: Any) -> Any:
    async def run() -> Any:
        return check()

    return run


# --- a worker process ----------------------------------------------------------------------------


async def outcomes_of(servers: str, change_id: str) -> dict[str, list[str]]:
    """Flow id → the statuses on signal-outcomes for `change_id` (`queued` included: route
    publishes it with each delivery request, beside the other flows' outcomes)."""
    consumer = AIOKafkaConsumer(
        OUTCOMES.name, bootstrap_servers=servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found: dict[str, list[str]] = {}
    try:
        while batches := await consumer.getmany(timeout_ms=300):
            for messages in batches.values():
                for message in messages:
                    record = json.loads(message.value)
                    if record["change_id"] == change_id:
                        found.setdefault(record["flow_id"], []).append(record["status"])
        return found
    finally:
        await consumer.stop()


@pytest.mark.integration
@pytest.mark.e2e
async def test_a_worker_keeps_delivering_by_the_authentic_configuration(
    module_broker: EmbeddedBroker,
    producer: AIOKafkaProducer,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    await publish(producer, snapshot(sandbox.url, version=1))
    worker: ServiceProcess = start_pipeline(
        module_broker, tmp_path, name="worker", config_key=write_key(tmp_path / "config-key")
    )
    try:

        async def applied(version: int) -> bool:
            found = re.findall(r"configuration snapshot (\d+) applied", worker.log())
            return str(version) in found

        await until_running(lambda: applied(1), "snapshot 1 applied", worker, within=90)
        for _, made in forgeries(2):
            await publish(producer, made)

        async def handled() -> bool:
            """The last forgery (version 4) read, refused or (were it trusted) applied."""
            return bool(re.search(r"configuration snapshot 4 (applied|on )", worker.log()))

        await until_running(handled, "the forged snapshots read", worker, within=60)
        # The event first (its catalog entry activates the flow), then a registration.
        event = event_json()
        await producer.send_and_wait("certain-changes", json.dumps(event).encode(), key=b"EVT")
        servers = module_broker.bootstrap_servers

        async def event_seen() -> dict[str, list[str]]:
            return await outcomes_of(servers, event["changeId"])

        await until_running(event_seen, "the event's outcomes", worker, within=90)
        change = registration_json(1)
        await producer.send_and_wait(
            "certain-changes",
            json.dumps(change).encode(),
            key=change["registration"]["registrationCode"].encode(),
        )

        async def routed() -> dict[str, list[str]] | None:
            found = await outcomes_of(servers, change["changeId"])
            return found if len(found) >= 2 else None

        # Routing answers every active flow at once (the nurture flow with `queued`).
        flows = await until_running(routed, "the registration routed", worker, within=90)
        assert flows is not None and NURTURE in flows, f"a forged snapshot switched it off: {flows}"

        async def delivered() -> bool:
            found = await outcomes_of(servers, change["changeId"])
            return "delivered" in found.get(NURTURE, [])

        await until_running(delivered, "the registration delivered", worker, within=90)
        log = worker.log()
        assert not re.search(r"configuration snapshot [234] applied", log)
        assert len(re.findall(r"refusing configuration snapshot [234] on", log)) == 3
        assert "its tag does not match its content" in log and "carries no tag" in log
    finally:
        worker.stop()
