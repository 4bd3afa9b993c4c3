"""Control keeps the delivered-keys log in its ledger: the `delivery_marks` agent reads
`signal-delivered` (delivered keys, "sending" marks, tombstones) into `delivery_marks`, and
recovery re-seeds the topic from it on start, delivered keys and "sending" marks both, so a
worker reading the topic after a crash of everything skips what was delivered and counts a
pair that was being sent as a possible repeat.

The recorder's part runs on a real DuckDB file; the agent and the re-seed on the real embedded
broker, each test with topics of its own."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.broker import EmbeddedBroker
from stream.control.config_service import ConfigService
from stream.control.marks import IDLE_WAIT_MS, DeliveryMarksAgent
from stream.control.recorder import RawRecord, Recorder
from stream.control.recovery import Recovery, RecoveryPolicy, publish_to
from stream.control.secret_store import SecretStore
from stream.delivery_keys import delivered_value, delivery_key, sending_value
from stream.fetch_wait import FetchWait
from stream.pipeline.delivered_log import DeliveredLog
from stream.store import Store
from stream.topics import TopicSpec, declare_topics
from tests.control.test_recovery import FLOW, Config, archived, outcome
from tests.control.test_recovery_broker import started_producer
from tests.support.clock import FIXED, FakeClock, recent
from tests.support.topics import produce, read_topic
from tests.support.waiting import until

T0 = FIXED
S = timedelta(seconds=1)


def key(change_id: str, replay: str | None = None) -> bytes:
    return delivery_key(change_id, FLOW, replay).encode()


def rec(change_id: str, value: bytes | None, offset: int = 0) -> RawRecord:
    return RawRecord(value, 0, offset, key=key(change_id))


async def stored(store: Store) -> dict[str, tuple[str, Any]]:
    result = await store.query("SELECT key, state, marked_at FROM delivery_marks ORDER BY 1")
    return {k.split("\x1f")[0]: (s, at) for k, s, at in result.rows}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "signal.duckdb", reader_threads=2, threads=2)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def recorder(store: Store, tmp_path: Path) -> AsyncIterator[Recorder]:
    async def published(_: Any) -> None:
        return None

    config = ConfigService(store, SecretStore(tmp_path / "secrets.json"), publish=published)
    await config.start()
    try:
        yield Recorder(store, config)
    finally:
        await config.stop()


# -- the recorder's part -----------------------------------------------------------------------


async def test_marks_are_recorded_delivered_overrides_sending_tombstone_removes_sending(
    store: Store, recorder: Recorder
) -> None:
    assert (
        await recorder.record_marks(
            [rec("a", sending_value(T0)), rec("b", sending_value(T0)), rec("c", sending_value(T0))]
        )
        == 3
    )
    assert await stored(store) == {
        "a": ("sending", T0), "b": ("sending", T0), "c": ("sending", T0)
    }  # fmt: skip
    # a: delivered; b: refused (tombstone); c: still in flight.
    await recorder.record_marks([rec("a", delivered_value(T0 + S)), rec("b", None)])
    assert await stored(store) == {"a": ("delivered", T0 + S), "c": ("sending", T0)}
    # A tombstone never removes a delivery, a later "sending" mark never replaces it.
    await recorder.record_marks([rec("a", None), rec("a", sending_value(T0 + 5 * S))])
    assert await stored(store) == {"a": ("delivered", T0 + S), "c": ("sending", T0)}
    # Replays have keys of their own.
    replay = RawRecord(delivered_value(T0 + 2 * S), 0, 9, key=key("c", "r1"))
    await recorder.record_marks([replay])
    result = await store.query("SELECT replay_id, state FROM delivery_marks WHERE key LIKE 'c%'")
    assert sorted(result.rows, key=str) == sorted([(None, "sending"), ("r1", "delivered")], key=str)
    assert recorder.counts["marks"] == 8


async def test_unreadable_marks_are_kept_with_their_key_and_reason(
    store: Store, recorder: Recorder
) -> None:
    batch = [
        rec("ok", delivered_value(T0), 1),
        RawRecord(delivered_value(T0), 3, 2, key=None),
        RawRecord(delivered_value(T0), 3, 3, key=b"no separator"),
        RawRecord(delivered_value(T0), 3, 4, key=b"\xff\x1fflow"),
        rec("bad-value", b"soon", 5),
        rec("bad-time", b"sending:nan", 6),
        rec("empty", b"", 7),
    ]
    assert await recorder.record_marks(batch) == 1
    assert set(await stored(store)) == {"ok"}
    kept = await store.query(
        "SELECT topic, agent, kafka_offset, payload, reasons FROM rejected_records ORDER BY 3"
    )
    assert [r[:3] for r in kept.rows] == [
        ("signal-delivered", "delivery_marks", offset) for offset in range(2, 8)
    ]
    payloads = [json.loads(r[3]) for r in kept.rows]
    assert payloads[1] == {"key": "no separator", "value": repr(T0.timestamp())}
    assert payloads[3]["key"].startswith("bad-value") and payloads[3]["value"] == "soon"
    assert all(r[4] for r in kept.rows)
    assert recorder.counts["invalid_marks"] == 6
    # Read again (a restart before the commit): kept once, the ledger unchanged.
    await recorder.record_marks(batch)
    again = await store.query("SELECT count(*) FROM rejected_records")
    assert again.rows == ((6,),)


async def test_a_failing_batch_is_kept_with_its_keys(store: Store, recorder: Recorder) -> None:
    async def broken(_: Any) -> None:
        raise RuntimeError("boom")

    recorder.max_backoff_s = 0.0
    batch = [rec("t", None, 4), rec("u", sending_value(T0), 5)]
    await recorder.guarded("delivery_marks", "signal-delivered", batch, broken)
    kept = await store.query("SELECT payload, reasons FROM rejected_records ORDER BY payload")
    assert [json.loads(r[0])["value"] for r in kept.rows] == [None, sending_value(T0).decode()]
    assert all("boom" in r[1][0] for r in kept.rows)


# -- on the real broker ------------------------------------------------------------------------


async def own_topic(broker: EmbeddedBroker, what: str) -> str:
    name = f"{what}-{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(name, 8, key="delivery key", purpose="test", configs={})
    await declare_topics(broker.bootstrap_servers, [spec])
    return name


async def test_the_agent_keeps_the_log_in_the_ledger(
    broker: EmbeddedBroker, store: Store, recorder: Recorder
) -> None:
    topic = await own_topic(broker, "marks")
    agent = DeliveryMarksAgent(
        recorder, broker.bootstrap_servers, group_id=f"{topic}-group", topic=topic
    )
    agent.start()
    try:
        await produce(
            broker.bootstrap_servers,
            [
                (topic, key("a"), sending_value(T0)),
                (topic, key("b"), sending_value(T0)),
                (topic, key("c"), sending_value(T0)),
                (topic, key("a"), delivered_value(T0 + S)),
                (topic, key("b"), None),  # type: ignore[list-item]
                (topic, key("c"), None),  # type: ignore[list-item]
                (topic, key("c"), sending_value(T0 + 2 * S)),
                (topic, b"junk", b"1.0"),
            ],
        )

        async def settled() -> dict[str, tuple[str, Any]] | None:
            rejected = await store.query("SELECT count(*) FROM rejected_records")
            found = await stored(store)
            return found if rejected.rows == ((1,),) and found.get("a", ("",))[0] else None

        found = await until(settled, "the marks and the junk record in the ledger")
        assert found == {"a": ("delivered", T0 + S), "c": ("sending", T0 + 2 * S)}
    finally:
        await agent.stop()


async def test_an_idle_agent_fetches_less_often_and_a_mark_still_reaches_the_ledger(
    broker: EmbeddedBroker, store: Store, recorder: Recorder
) -> None:
    """With no mark to read, the agent asks the broker to hold its fetches longer (up to
    `IDLE_WAIT_MS`; before, a fetch every 50 ms was half of an idle control's CPU), and the
    first mark after the quiet spell is recorded all the same."""
    topic = await own_topic(broker, "idle-marks")
    agent = DeliveryMarksAgent(
        recorder, broker.bootstrap_servers, group_id=f"{topic}-group", topic=topic
    )
    agent.start()
    try:

        async def idle() -> FetchWait | None:
            wait = agent.fetch_wait
            return wait if wait is not None and wait.wait_ms == IDLE_WAIT_MS else None

        wait = await until(idle, "the agent's fetch wait at its idle bound")
        assert wait is not None
        assert wait.short_ms == 50 and wait.empty > 0
        await produce(broker.bootstrap_servers, [(topic, key("q"), sending_value(T0))])

        async def recorded() -> dict[str, tuple[str, Any]] | None:
            return await stored(store) or None

        assert await until(recorded, "the mark after the quiet spell") == {"q": ("sending", T0)}
        assert wait.fetches > wait.empty, "a fetch found the mark"
    finally:
        await agent.stop()


async def test_reseed_writes_delivered_keys_and_sending_marks_a_worker_reads(
    broker: EmbeddedBroker, store: Store, recorder: Recorder
) -> None:
    """After a crash of everything: `d1` has its delivered outcome recorded; `m1` only its
    delivered key (its outcome died with the broker); `s1` only a "sending" mark (its call was
    in flight); `d1` also has an older "sending" mark. The re-seed writes d1 and m1 delivered
    and s1 sending, and a worker that was already reading the topic has them all once synced."""
    clock = FakeClock(
        recent()
    )  # the worker forgets keys older than its retention, by the real clock
    now = clock()
    await store.archive_changes([archived(c, now - timedelta(minutes=10)) for c in ("d1", "m1")])
    delivered_at = now - timedelta(minutes=9)
    await store.record_outcomes([outcome("d1", "delivered", delivered_at, lead_result="created")])
    mark_m1, mark_s1 = now - timedelta(minutes=8), now - timedelta(minutes=7)
    await recorder.record_marks(
        [
            rec("d1", sending_value(delivered_at - S)),
            rec("m1", sending_value(mark_m1 - S)),
            rec("m1", delivered_value(mark_m1)),
            rec("s1", sending_value(mark_s1)),
            rec("old", sending_value(now - timedelta(days=30))),
        ]
    )
    topic = await own_topic(broker, "reseed")
    worker = DeliveredLog(broker.bootstrap_servers, topic=topic)
    reading = asyncio.create_task(worker.run())
    producer = await started_producer(broker.bootstrap_servers)
    try:
        await asyncio.wait_for(worker.wait_loaded(), 30)
        recovery = Recovery(
            store,
            Config(),
            publish_changes=publish_to(producer, f"{topic}-changes"),
            publish_redrives=publish_to(producer, f"{topic}-redrive"),
            publish_delivered=publish_to(producer, topic),
            policy=RecoveryPolicy(),
            clock=clock,
        )
        assert await recovery.reseed() == 3
        assert await worker.sync(timeout_s=30)
        assert key("d1").decode() in worker and key("m1").decode() in worker
        assert worker.is_sending(key("s1").decode()) and key("s1").decode() not in worker
        assert not worker.is_sending(key("old").decode())
    finally:
        await producer.stop()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
    records = await read_topic(broker.bootstrap_servers, topic, until=lambda r: len(r) >= 3)
    assert {r.key: r.value for r in records} == {
        key("d1"): delivered_value(delivered_at),
        key("m1"): delivered_value(mark_m1),
        key("s1"): sending_value(mark_s1),
    }
    # Older than the horizon: forgotten by the ledger too.
    assert set(await stored(store)) == {"d1", "m1", "s1"}
