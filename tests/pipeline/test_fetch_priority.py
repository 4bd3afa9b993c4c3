"""The worker's consumer hands over buffered delivery requests before changes, and at most a
route batch of changes per poll, without skipping or repeating a record (`fetch_priority.py`).

Real embedded broker and a real aiokafka consumer; the poll is Faust's own `_fetch_records` as
the worker's consumer thread calls it, on topics of this test's own.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from stream.broker import EmbeddedBroker
from stream.faust_settings import faust_settings
from stream.pipeline.fetch_priority import FetchPriority, split_poll, use_fetch_priority
from stream.topics import TopicSpec, declare_topics
from tests.support.topics import produce
from tests.support.waiting import DEADLINE_S, until

CHANGES = 2_000
DELIVERIES = 30
CAP = 100


def _app(tmp_path: Path, name: str) -> faust.App:
    return faust.App(name, broker="kafka://127.0.0.1:1", **faust_settings(data_dir=tmp_path))


async def _setup(broker: EmbeddedBroker) -> tuple[str, str, AIOKafkaConsumer, set[TopicPartition]]:
    tag = uuid.uuid4().hex[:8]
    changes, deliveries = f"prio-changes-{tag}", f"prio-deliveries-{tag}"
    await declare_topics(
        broker.url, [TopicSpec(changes, 4, "n", "test"), TopicSpec(deliveries, 1, "n", "test")]
    )
    await produce(
        broker.bootstrap_servers,
        [(changes, f"k{n}".encode(), b"c" * 200) for n in range(CHANGES)]
        + [(deliveries, b"conn", f"d{n}".encode()) for n in range(DELIVERIES)],
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    active = {TopicPartition(changes, p) for p in range(4)} | {TopicPartition(deliveries, 0)}
    consumer.assign(sorted(active))
    await consumer.seek_to_beginning()
    return changes, deliveries, consumer, active


async def _buffered(consumer: AIOKafkaConsumer, active: set[TopicPartition]) -> None:
    """Until aiokafka has fetched every partition once (what a busy worker's consumer holds)."""
    records = consumer._fetcher._records

    async def fetched() -> bool:
        return active <= set(records)

    await until(fetched, "every partition buffered")


def _poll(app: faust.App, consumer: AIOKafkaConsumer, active: set[Any], timeout: float) -> Any:
    thread = SimpleNamespace(app=app, consumer=SimpleNamespace(flow_active=True))
    return AIOKafkaConsumerThread._fetch_records(
        thread,  # type: ignore[arg-type]
        consumer,
        active,
        timeout=timeout,
    )


async def test_deliveries_first_then_a_capped_share_of_changes_nothing_skipped(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    app = _app(tmp_path, f"signal-prio-{uuid.uuid4().hex[:6]}")
    changes, deliveries, consumer, active = await _setup(broker)
    use_fetch_priority(app, FetchPriority(frozenset({deliveries}), CAP))
    try:
        await _buffered(consumer, active)
        first = await _poll(app, consumer, active, 0)
        by_topic: dict[str, int] = defaultdict(int)
        for tp, records in first.items():
            by_topic[tp.topic] += len(records)
        # Every buffered delivery request, and no more than a route batch of changes.
        assert by_topic[deliveries] == DELIVERIES
        assert 0 < by_topic[changes] <= CAP

        offsets: dict[Any, list[int]] = defaultdict(list)
        for tp, records in first.items():
            offsets[tp].extend(r.offset for r in records)
        deadline = time.monotonic() + DEADLINE_S
        while sum(len(v) for tp, v in offsets.items() if tp.topic == changes) < CHANGES:
            assert time.monotonic() < deadline, "changes not all polled"
            polled = await _poll(app, consumer, active, 0.5)
            assert sum(len(r) for tp, r in polled.items() if tp.topic == changes) <= CAP
            for tp, records in polled.items():
                offsets[tp].extend(r.offset for r in records)
        # Nothing skipped, nothing twice: each partition's offsets run on from 0.
        for tp, seen in offsets.items():
            assert seen == list(range(len(seen))), tp

        # A request produced while nothing is buffered comes within the poll's wait.
        await produce(broker.bootstrap_servers, [(deliveries, b"conn", b"late")])
        late: list[Any] = []
        deadline = time.monotonic() + DEADLINE_S
        while not late and time.monotonic() < deadline:
            polled = await _poll(app, consumer, active, 1.0)
            late = [r.value for tp, rs in polled.items() if tp.topic == deliveries for r in rs]
        assert late == [b"late"]
    finally:
        await consumer.stop()


async def test_an_app_without_priority_polls_as_faust_does(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prioritised = _app(tmp_path, f"signal-prio-{uuid.uuid4().hex[:6]}")
    plain = _app(tmp_path, f"signal-plain-{uuid.uuid4().hex[:6]}")
    changes, deliveries, consumer, active = await _setup(broker)
    use_fetch_priority(prioritised, FetchPriority(frozenset({deliveries}), CAP))
    try:
        await _buffered(consumer, active)
        polled = await _poll(plain, consumer, active, 0)
        # Faust takes everything buffered in one poll: far more than the cap of changes.
        assert sum(len(r) for tp, r in polled.items() if tp.topic == changes) > CAP
    finally:
        await consumer.stop()


def test_split_poll_names_the_priority_partitions() -> None:
    priority = FetchPriority(frozenset({"d"}), 10)
    first, rest = split_poll(priority, [TopicPartition("d", 0), TopicPartition("c", 1)])
    assert first == {TopicPartition("d", 0)}
    assert rest == {TopicPartition("c", 1)}
    assert split_poll(priority, []) == (set(), set())
