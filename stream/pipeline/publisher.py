"""The worker's own producer: records published and acknowledged before a batch is acked.

Apart from the stages because publishing has one rule of its own that both stages depend on:
`publish` returns only once the broker acknowledged every record, sending the ones that failed
again (holding the partition) for as long as it takes, since moving on would let an offset be
committed without them. Marketo call records (`signal-api-calls`) are queued as calls happen and
awaited with the batch's outcomes (`flush_calls`); losing one is logged, never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from stream.broker import bootstrap_servers
from stream.messages import ApiCallRecord, Message
from stream.topics import API_CALLS

__all__ = ["PRODUCER_OPTIONS", "Record", "RecordPublisher", "send_batched"]

log = logging.getLogger("signal.pipeline")

Record = tuple[str, str, Message | bytes | None]
"""(topic, key, value); a value of None is a tombstone."""

PRODUCER_OPTIONS: dict[str, Any] = {
    "acks": "all",
    "linger_ms": 2,
    "max_batch_size": 256 * 1024,
    "request_timeout_ms": 30_000,
}
"""The pipeline's own producer for outcomes, deliveries and API call records.

A route batch publishes three outcomes per change at once and then waits for every ack. Through
Faust's producer (one `topic.send` per record, 16 KiB batches) that took about 0.7 ms per record
and capped a worker near 1,000 changes/s (bench/pipeline_throughput.py); a plain aiokafka
producer with large batches sends them in a few round trips. `acks=all` as everywhere in Signal.
"""

MAX_RETRY_S = 30.0


async def send_batched(
    producer: AIOKafkaProducer, records: Sequence[Record]
) -> list[BaseException | None]:
    """Send records a batch per topic partition and wait for the broker: the answer of each
    record (None when acknowledged), in order.

    Each record goes to the partition the producer's own partitioner gives its key, and keeps
    its order there. One `send` per record cost about 15 µs of the worker's CPU and a future
    each, three records per routed change (bench.pipeline_throughput); a batch is one.
    """
    partitioner = DefaultPartitioner()
    partitions: dict[str, list[int]] = {}
    placed: dict[tuple[str, bytes], int] = {}
    groups: dict[tuple[str, int], list[tuple[int, bytes, bytes | None]]] = {}
    for index, (topic, key, value) in enumerate(records):
        raw_key = key.encode()
        partition = placed.get((topic, raw_key))
        if partition is None:
            if topic not in partitions:
                partitions[topic] = list(await producer.partitions_for(topic))
            every = partitions[topic]
            partition = placed[(topic, raw_key)] = partitioner(raw_key, every, every)
        raw = value if value is None or isinstance(value, bytes) else value.dumps()
        groups.setdefault((topic, partition), []).append((index, raw_key, raw))
    sent: list[tuple[list[int], Any]] = []
    for (topic, partition), items in groups.items():
        batch = producer.create_batch()
        indexes: list[int] = []
        for index, raw_key, raw in items:
            if batch.append(key=raw_key, value=raw, timestamp=None) is None:
                if indexes:  # full: send it and start the next one
                    sent.append(
                        (indexes, await producer.send_batch(batch, topic, partition=partition))
                    )
                    batch, indexes = producer.create_batch(), []
                if batch.append(key=raw_key, value=raw, timestamp=None) is None:
                    # Larger than a batch: the producer's own send says why.
                    sent.append(
                        ([index], await producer.send(topic, raw, key=raw_key, partition=partition))
                    )
                    continue
            indexes.append(index)
        if indexes:
            sent.append((indexes, await producer.send_batch(batch, topic, partition=partition)))
    outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
    answers: list[BaseException | None] = [None] * len(records)
    for (indexes, _), outcome in zip(sent, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            for index in indexes:
                answers[index] = outcome
    return answers


class RecordPublisher:
    def __init__(
        self, broker_url: str, client_id: str, *, retry_s: float, on_retry: Callable[[], None]
    ) -> None:
        """`retry_s`: the first wait before records are sent again (doubling up to 30 s);
        `on_retry` is called at each retry (the worker counts them)."""
        self._servers = bootstrap_servers(broker_url)
        self._client_id = client_id
        self._retry_s = retry_s
        self._on_retry = on_retry
        self._producer: AIOKafkaProducer | None = None
        self._call_futures: list[Any] = []

    async def _get_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._servers, client_id=self._client_id, **PRODUCER_OPTIONS
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:
                log.debug("stopping the producer failed", exc_info=True)

    async def publish(self, records: Sequence[Record]) -> None:
        """Send (topic, key, message) records and wait for the broker to acknowledge each
        (`None`: a tombstone).

        Records that failed are sent again until they are acknowledged: moving on would let the
        offset be committed without them. A record may thus be sent twice; readers deduplicate.
        """
        pending = list(records)
        delay = self._retry_s
        while pending:
            try:
                producer = await self._get_producer()
                answers = await send_batched(producer, pending)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                answers = [error] * len(pending)
                await self.stop()
            failed = [
                record
                for record, answer in zip(pending, answers, strict=True)
                if isinstance(answer, BaseException)
            ]
            if not failed:
                return
            first = next(a for a in answers if isinstance(a, BaseException))
            self._on_retry()
            log.error(
                "%d of %d records not acknowledged by the broker (%s: %s); retrying in %.1f s",
                len(failed),
                len(pending),
                type(first).__name__,
                first,
                delay,
            )
            pending = failed
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_S)

    async def on_call(self, record: ApiCallRecord) -> None:
        """Queue the record of one Marketo call (awaited by the next `flush_calls`)."""
        try:
            producer = await self._get_producer()
            fut = await producer.send(
                API_CALLS.name, record.dumps(), key=record.connection_id.encode()
            )
            self._call_futures.append(fut)
        except Exception:
            log.exception("cannot queue the API call record for %s", record.endpoint)

    async def flush_calls(self) -> None:
        futures, self._call_futures = self._call_futures, []
        if not futures:
            return
        answers = await asyncio.gather(*futures, return_exceptions=True)
        lost = sum(1 for a in answers if isinstance(a, BaseException))
        if lost:
            log.error("%d API call records were not acknowledged by the broker", lost)
