"""Reading and writing topics of the embedded broker directly, as a test stands in for a
producer (ingest API, pipeline worker) or looks at what a service published."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.support.waiting import DEADLINE_S


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Any]], bool] = bool,
    within: float = DEADLINE_S,
    settle: float = 0.0,
) -> list[Any]:
    """Every record of `topic` from the start (aiokafka `ConsumerRecord`s), read until
    `until(records)` holds, then for `settle` more seconds to catch anything extra.

    Gives up after `within` seconds and returns what it read: the caller's assertion names what
    is missing. `until=lambda records: True` with a `settle` reads for that long and no more,
    for tests that check that nothing (more) arrives.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + within
        satisfied_at: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for messages in batch.values():
                records.extend(messages)
            if satisfied_at is None and until(records):
                satisfied_at = time.monotonic()
            if satisfied_at is not None and time.monotonic() - satisfied_at >= settle:
                break
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return records


async def produce(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]]) -> None:
    """Send `(topic, key, value)` records and wait until the broker acknowledged all of them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
