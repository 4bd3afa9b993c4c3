"""`stream.fetch_wait` on the embedded broker: an idle consumer's fetches grow to the idle wait
(so it asks the broker far less often), and a record brings the short wait back at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.broker import EmbeddedBroker
from stream.faust_settings import FETCH_MAX_WAIT_MS, faust_settings
from stream.fetch_wait import IDLE_WAIT_MS, FetchWait, adapt_fetch_wait
from stream.topics import TopicSpec, declare_topics
from tests.support.waiting import until

pytestmark = pytest.mark.integration

SHORT_MS = 20


async def test_an_idle_consumer_backs_off_and_a_record_brings_the_short_wait_back(
    broker: EmbeddedBroker,
) -> None:
    topic = f"fetch-wait-{uuid.uuid4().hex[:8]}"
    await declare_topics(broker.url, [TopicSpec(topic, 1, "none", "a test's idle topic")])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers, fetch_max_wait_ms=SHORT_MS
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await consumer.start()
    await producer.start()
    try:
        wait = adapt_fetch_wait(consumer, SHORT_MS)
        assert wait.wait_ms == SHORT_MS
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)

        async def idle() -> bool:
            return wait.wait_ms == IDLE_WAIT_MS

        await until(idle, "the wait grown to the idle wait", every=0.05)
        # 20, 40, 80, 160, then 250: four empty fetches, not one every 20 ms.
        assert wait.empty >= 4

        # Idle for a second: at 250 ms a fetch, at most a few (the broker holds each one).
        started, before = time.monotonic(), wait.fetches
        await until(lambda: _after(started, 1.0), "a second", every=0.05)
        assert wait.fetches - before <= 1.0 / (IDLE_WAIT_MS / 1000) + 1

        await producer.send_and_wait(topic, b"hello", partition=0)
        got = await consumer.getmany(partition, timeout_ms=5_000)
        assert [r.value for r in got.get(partition, [])] == [b"hello"]
        assert wait.wait_ms == SHORT_MS, "a fetch that found a record sets the short wait back"
    finally:
        await producer.stop()
        await consumer.stop()


async def _after(started: float, seconds: float) -> bool:
    return time.monotonic() - started >= seconds


async def test_adapting_a_consumer_that_has_not_started_is_refused(
    broker: EmbeddedBroker,
) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    try:
        with pytest.raises(RuntimeError, match="started consumer"):
            adapt_fetch_wait(consumer, SHORT_MS)
    finally:
        await consumer.stop()


def test_the_idle_wait_is_never_shorter_than_the_short_one() -> None:
    class Fetcher:
        _fetch_max_wait_ms = 0

    wait = FetchWait(Fetcher(), short_ms=500, idle_ms=250)
    assert wait.wait_ms == 500
    wait.answered(found=False)
    assert wait.wait_ms == 500
    wait.answered(found=True)
    assert (wait.fetches, wait.empty, wait.wait_ms) == (2, 1, 500)


async def test_fausts_consumer_adapts_once_its_thread_starts_it(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    app = faust.App(
        f"signal-fetch-wait-{uuid.uuid4().hex[:6]}",
        broker=broker.url,
        **faust_settings(data_dir=tmp_path),
    )
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    consumer = thread._create_consumer(asyncio.get_running_loop())
    assert not hasattr(consumer, "signal_fetch_wait")
    await consumer.start()
    try:
        wait = consumer.signal_fetch_wait
        assert (wait.short_ms, wait.idle_ms) == (FETCH_MAX_WAIT_MS, IDLE_WAIT_MS)
    finally:
        await consumer.stop()
