"""Lag arithmetic and the heartbeat count as plain code, then the lag probe against a real
embedded broker, where ListOffsets under-reports a partition's end and the probe must not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream import topics
from stream.broker import EmbeddedBroker
from stream.control.runtime import ControlSettings
from stream.heartbeats import EVERY_S, MISSED_BEATS, LiveWorkers, beat_bytes, parse_beat
from stream.metrics.consumer_lag import CONTROL_GROUP, PIPELINE_GROUP, LagProbe
from stream.metrics.lag import GroupLag, LagReading, lag_of
from stream.pipeline.app import APP_ID
from tests.support.clock import FIXED

A, B = ("t", 0), ("t", 1)


def test_lag_counts_what_the_group_has_not_committed() -> None:
    ends = {A: 10, B: 7}
    assert lag_of(ends, {}, {A: 4, B: 7}) == 6
    # No commit (absent or -1): everything from the partition's start.
    assert lag_of(ends, {}, {A: -1}) == 17
    assert lag_of(ends, {A: 3}, {}) == 7 + 7
    # A commit below the start (retention passed it) counts from the start, one ahead of the
    # end (a broker that forgot its data) counts 0, never below.
    assert lag_of(ends, {A: 5}, {A: 2, B: 9}) == 5
    assert lag_of({}, {}, {A: 3}) == 0


def test_a_topic_lags_as_its_slowest_reader_and_the_total_adds_topics() -> None:
    reading = LagReading(
        (
            GroupLag("certain-changes", "signal-pipeline", 30),
            GroupLag("certain-changes", "signal-control", 2),
            GroupLag("signal-deliveries", "signal-pipeline", 5),
            GroupLag("signal-outcomes", "signal-control", 0),
        )
    )
    assert reading.by_topic() == {
        "certain-changes": 30,
        "signal-deliveries": 5,
        "signal-outcomes": 0,
    }
    assert reading.total() == 35
    assert LagReading().total() == 0 and LagReading().by_topic() == {}


def test_group_names_follow_the_apps() -> None:
    assert PIPELINE_GROUP == APP_ID
    assert ControlSettings(broker_url="kafka://x:1", data_dir=Path()).app_id == CONTROL_GROUP


def test_live_workers_drop_out_after_missed_beats_or_a_stopping_beat() -> None:
    live = LiveWorkers()
    window = MISSED_BEATS * EVERY_S
    a = parse_beat(beat_bytes("host:1:a", FIXED))
    b = parse_beat(beat_bytes("host:2:b", FIXED))
    assert a is not None and b is not None
    live.saw(a, seen_at=100.0, sent_at=100.0)
    live.saw(b, seen_at=100.0, sent_at=99.0)
    assert live.count(100.0 + window) == 2
    live.saw(b, seen_at=103.0)
    assert live.count(100.0 + window + 0.1) == 1  # a missed three beats, b did not
    assert live.count(103.0 + window + 0.1) == 0

    live.saw(a, seen_at=200.0)
    stopping = parse_beat(beat_bytes("host:1:a", FIXED, stopping=True))
    assert stopping is not None and stopping.stopping
    live.saw(stopping, seen_at=200.5)
    assert live.count(200.5) == 0

    # Catching up after a start: a beat sent long before it was read is a dead worker's.
    live.saw(b, seen_at=300.0, sent_at=300.0 - window - 1)
    assert live.count(300.0) == 0


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"not json",
        b"[]",
        b'{"at": "x"}',
        b'{"worker": ""}',
        b'{"worker": 3}',
        b'{"worker": "w", "every_s": 0}',
        b'{"worker": "w", "every_s": "x"}',
    ],
)
def test_anything_but_a_beat_is_ignored(value: bytes | None) -> None:
    assert parse_beat(value) is None


# -- against the embedded broker ---------------------------------------------------------------


@pytest.fixture
async def lag_broker(module_broker: EmbeddedBroker) -> AsyncIterator[EmbeddedBroker]:
    await topics.declare_topics(
        module_broker.url, [topics.CHANGES, topics.DELIVERIES, topics.OUTCOMES]
    )
    yield module_broker


async def test_probe_reads_true_ends_where_list_offsets_under_reports(
    lag_broker: EmbeddedBroker,
) -> None:
    servers = lag_broker.bootstrap_servers
    probe = LagProbe(lag_broker.url, max_age_s=0.0)
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        group_id=PIPELINE_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await producer.start()
    try:
        before = await probe.reading()
        assert before is not None
        base = before.by_topic()["certain-changes"]
        tp = TopicPartition(topics.CHANGES.name, 0)
        for i in range(10):
            await producer.send_and_wait(tp.topic, b"one", partition=0, key=b"k%d" % i)
        sent = [await producer.send(tp.topic, b"batched", partition=0) for _ in range(200)]
        await asyncio.gather(*sent)

        await consumer.start()
        consumer.assign([tp])
        listed = (await consumer.end_offsets([tp]))[tp]
        reading = await probe.reading()
        assert reading is not None
        by_group = {(g.topic, g.group): g.lag for g in reading.groups}
        assert by_group[(tp.topic, PIPELINE_GROUP)] == base + 210
        assert by_group[(tp.topic, CONTROL_GROUP)] == base + 210
        print(f"ListOffsets answered {listed} for a partition holding {base + 210} or more")

        # The pipeline's group commits 100 of them: only its lag falls.
        committed = (await consumer.committed(tp)) or 0
        await consumer.commit({tp: committed + 100})
        reading = await probe.reading()
        assert reading is not None
        by_group = {(g.topic, g.group): g.lag for g in reading.groups}
        assert by_group[(tp.topic, PIPELINE_GROUP)] == base + 110
        assert by_group[(tp.topic, CONTROL_GROUP)] == base + 210
        assert reading.by_topic()[tp.topic] == base + 210
    finally:
        await consumer.stop()
        await producer.stop()
        await probe.close()


async def test_probe_reports_unknown_when_the_broker_does_not_answer() -> None:
    broker = EmbeddedBroker()
    await broker.start_async()
    url = broker.url
    await broker.stop_async()
    probe = LagProbe(url, max_age_s=0.0, timeout_s=3.0)
    try:
        assert await probe.reading() is None
    finally:
        await probe.close()
