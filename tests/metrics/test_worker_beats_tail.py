"""Control reads only the recent tail of `signal-workers`, not the whole topic, at start.

The embedded broker never prunes the topic, so a control started after days would otherwise
read every beat ever sent before it counts anything.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from stream import topics
from stream.broker import EmbeddedBroker
from stream.heartbeats import beat_bytes
from stream.metrics.live_workers import WorkerBeats, tail_start
from tests.support.clock import FIXED
from tests.support.waiting import until

pytestmark = [pytest.mark.integration]


def test_the_start_is_the_tail_but_never_before_the_log_start() -> None:
    assert tail_start(0, 100, 10) == 90
    assert tail_start(95, 100, 10) == 95  # retention already dropped the older ones
    assert tail_start(0, 5, 10) == 0
    assert tail_start(0, 0, 10) == 0


async def test_control_counts_from_the_tail_only(module_broker: EmbeddedBroker) -> None:
    """Beats all stamped at one instant (the reader's clock is fixed to it), so a reader of the
    whole topic would count every worker; reading the tail counts only the last ones."""
    await topics.declare_topics(module_broker.url, [topics.WORKERS])
    at = FIXED
    producer = AIOKafkaProducer(bootstrap_servers=module_broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for name in [f"early-{i}" for i in range(40)] + [f"late-{i}" for i in range(5)]:
            await producer.send_and_wait(
                topics.WORKERS.name,
                beat_bytes(name, at),
                partition=0,
                timestamp_ms=int(at.timestamp() * 1000),
            )
    finally:
        await producer.stop()

    beats = WorkerBeats(module_broker.url, clock=at.timestamp, tail_records=5)
    beats.start()
    try:

        async def counted() -> bool:
            return (beats.count() or 0) >= 5

        await until(counted, "the last workers counted")
        await asyncio.sleep(1.0)  # anything read later (an earlier start) would show now
        assert beats.count() == 5
        assert beats.started_at is not None and beats.started_at >= 40
    finally:
        await beats.stop()
