"""Recovery against the real embedded broker and a real DuckDB file: a queued-overdue pair and an
unrouted change are re-driven to the redrive topic with kind `recovery`, an unpublished api
change is published to the changes topic, and the ledger's delivered keys are written to the
delivered-keys topic first. A broker that is gone fails the scan within its publish timeout.

The topics are this test's own (the session broker is shared), produced through the same
`publish_to` the control runtime uses for `certain-changes`, `signal-redrive` and
`signal-delivered`."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from stream.broker import EmbeddedBroker
from stream.control.recovery import Recovery, RecoveryPolicy, publish_to
from stream.messages import RedriveRequest
from stream.store import Store
from tests.control.test_recovery import FLOW, Config, archived, outcome
from tests.support.clock import FIXED, FakeClock
from tests.support.topics import read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "signal.duckdb", reader_threads=2, threads=2)
    try:
        yield s
    finally:
        await s.close()


async def started_producer(bootstrap: str, **options: Any) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **options)
    await producer.start()
    return producer


async def test_recovery_redrives_publishes_and_reseeds_on_the_real_broker(
    broker: EmbeddedBroker, store: Store
) -> None:
    clock = FakeClock(FIXED)
    now = clock()
    await store.archive_changes(
        [
            archived("q1", now - timedelta(minutes=10)),
            archived("u1", now - timedelta(minutes=10)),
            archived("d1", now - timedelta(hours=1)),
        ]
    )
    api = archived("a1", now - timedelta(minutes=3))
    await store.accept_changes([dataclasses.replace(api, source="api", published_at=None)])
    delivered_at = now - timedelta(minutes=50)
    await store.record_outcomes(
        [
            outcome("q1", "queued", now - timedelta(minutes=5)),
            outcome("d1", "delivered", delivered_at, lead_result="created"),
        ]
    )
    suffix = uuid.uuid4().hex[:8]
    names = {k: f"recovery-{k}-{suffix}" for k in ("changes", "redrive", "delivered")}
    producer = await started_producer(broker.bootstrap_servers)
    try:
        recovery = Recovery(
            store,
            Config(),
            publish_changes=publish_to(producer, names["changes"]),
            publish_redrives=publish_to(producer, names["redrive"]),
            publish_delivered=publish_to(producer, names["delivered"]),
            policy=RecoveryPolicy(),
            clock=clock,
            started_at=now - timedelta(hours=1),
        )
        result = await recovery.scan()
    finally:
        await producer.stop()
    assert (result.published, result.redriven_queued, result.redriven_unrouted) == (1, 1, 1)

    # publish_to returns once the broker acknowledged: every record is there to read
    redrives = await read_topic(
        broker.bootstrap_servers, names["redrive"], until=lambda r: len(r) >= 2
    )
    requests = [(r.key, RedriveRequest.loads(r.value)) for r in redrives]
    assert {
        (key, req.change["changeId"], req.redrive.flow_id, req.redrive.kind)
        for key, req in requests
    } == {(b"R-q1", "q1", FLOW, "recovery"), (b"R-u1", "u1", FLOW, "recovery")}

    changes = await read_topic(broker.bootstrap_servers, names["changes"])
    assert [(r.key, json.loads(r.value)["changeId"]) for r in changes] == [(b"R-a1", "a1")]

    keys = await read_topic(broker.bootstrap_servers, names["delivered"])
    assert [(r.key, r.value) for r in keys] == [
        (f"d1\x1f{FLOW}".encode(), repr(delivered_at.timestamp()).encode())
    ]
    published = await store.query("SELECT published_at FROM changes WHERE change_id = 'a1'")
    assert published.rows == ((now,),)
    status = recovery.status()
    assert (status.reseeded_keys, status.redriven_total, status.unpublished) == (1, 2, 0)


async def test_a_scan_fails_when_the_broker_is_gone(store: Store) -> None:
    clock = FakeClock(FIXED)
    now = clock()
    await store.archive_changes([archived("q1", now - timedelta(minutes=10))])
    await store.record_outcomes([outcome("q1", "queued", now - timedelta(minutes=5))])
    lost = EmbeddedBroker()
    lost.start()
    try:
        producer = await started_producer(lost.bootstrap_servers, request_timeout_ms=3000)
    except BaseException:
        lost.stop()
        raise
    lost.stop()
    try:
        recovery = Recovery(
            store,
            Config(),
            publish_changes=publish_to(producer, "recovery-gone-changes"),
            publish_redrives=publish_to(producer, "recovery-gone-redrive"),
            publish_delivered=publish_to(producer, "recovery-gone-delivered"),
            policy=RecoveryPolicy(publish_timeout_s=3.0),
            clock=clock,
            started_at=now - timedelta(hours=1),
        )
        with pytest.raises(Exception) as failure:
            await recovery.scan()
    finally:
        await producer.stop()
    status = recovery.status()
    assert status.failed_scans == 1 and status.last_error, failure.value
    assert status.queued_overdue == 1, "still waiting for the next scan"
    logged = await store.query("SELECT count(*) FROM recovery_log")
    assert logged.rows == ((0,),)


async def test_a_change_no_broker_can_take_is_set_aside_and_the_outbox_flows_on(
    broker: EmbeddedBroker, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A ledger from before every way in bounded a change's size holds an accepted change of
    over a megabyte, never published, oldest in the outbox. The broker refuses it; before, every
    scan failed on it and the changes behind it were never published. Now it moves to
    `rejected_changes` with its reason, and the rest are published and marked."""
    clock = FakeClock(FIXED)
    now = clock()
    huge = archived("big", now - timedelta(minutes=5), profile={"firstName": "x" * 1_100_000})
    small = archived("a2", now - timedelta(minutes=4))
    later = archived("a3", now - timedelta(minutes=3))
    await store.accept_changes(
        [dataclasses.replace(r, source="api", published_at=None) for r in (huge, small, later)]
    )
    topic = f"recovery-oversize-{uuid.uuid4().hex[:8]}"
    producer = await started_producer(broker.bootstrap_servers)
    try:
        recovery = Recovery(
            store,
            Config(),
            publish_changes=publish_to(producer, topic),
            publish_redrives=publish_to(producer, f"{topic}-redrive"),
            publish_delivered=publish_to(producer, f"{topic}-delivered"),
            policy=RecoveryPolicy(publish_timeout_s=30.0),
            clock=clock,
            started_at=now - timedelta(hours=1),
        )
        result = await recovery.scan()
        again = await recovery.scan()
    finally:
        await producer.stop()
    assert result.published == 2 and again.published == 0
    changes = await read_topic(broker.bootstrap_servers, topic, until=lambda r: len(r) >= 2)
    assert sorted(json.loads(r.value)["changeId"] for r in changes) == ["a2", "a3"]
    stored = await store.query("SELECT change_id, published_at FROM changes ORDER BY 1")
    assert stored.rows == (("a2", now), ("a3", now)), "the big one left the outbox"
    rejected = await store.query(
        "SELECT change_id, source, received_at, reasons, length(payload) FROM rejected_changes"
    )
    [(change_id, source, received_at, reasons, size)] = rejected.rows
    assert (change_id, source, received_at) == ("big", "api", huge.received_at)
    assert size == len(huge.payload), "kept whole, as accepted"
    [reason] = reasons
    assert "set aside from the outbox" in reason and "at most 1,000,000 bytes" in reason, reason
    assert recovery.status().unpublished == 0
    # The operator learns it from the log, since the rejected row keeps the change's own time.
    [named] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "'big' moved to rejected_changes" in named.getMessage(), named.getMessage()
    assert "1,000,000 bytes" in named.getMessage()
