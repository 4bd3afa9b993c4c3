"""The worker's publisher sends a batch per topic partition: every record arrives, at the
partition a plain producer send would have chosen for its key, in order per key, tombstones and
a record larger than a batch included."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from stream.broker import EmbeddedBroker
from stream.messages import OutcomeRecord, OutcomeStatus
from stream.pipeline.publisher import Record, RecordPublisher
from stream.topics import TopicSpec, declare_topics
from tests.support.topics import read_topic

PARTITIONS = 8


def outcome(change_id: str, n: int) -> OutcomeRecord:
    return OutcomeRecord(
        change_id=change_id,
        flow_id=f"flow-{n}",
        flow_name="Flow",
        mode="live",
        status=OutcomeStatus.NOT_ACTIVATED,
        occurred_at=datetime.now(UTC),
    )


async def test_records_keep_their_key_partition_and_order(broker: EmbeddedBroker) -> None:
    run = uuid.uuid4().hex[:8]
    batched, plain = f"pub-batched-{run}", f"pub-plain-{run}"
    await declare_topics(
        broker.url, [TopicSpec(name, PARTITIONS, "k", "test") for name in (batched, plain)]
    )
    records: list[Record] = []
    for n in range(300):
        key = f"chg-{n % 23}"
        value: OutcomeRecord | bytes | None = outcome(key, n) if n % 3 else f"raw-{n}".encode()
        records.append((batched, key, value))
    records.append((batched, "chg-5", None))  # a tombstone
    records.append((batched, "chg-6", b"x" * 300 * 1024))  # more than a 256 KiB batch
    publisher = RecordPublisher(broker.url, f"test-{run}", retry_s=0.1, on_retry=lambda: None)
    try:
        await publisher.publish(records)
    finally:
        await publisher.stop()

    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        keys = sorted({key for _, key, _ in records})
        expected = {
            key: (await producer.send_and_wait(plain, b"", key=key.encode())).partition
            for key in keys
        }
    finally:
        await producer.stop()

    got = await read_topic(
        broker.bootstrap_servers, batched, until=lambda read: len(read) >= len(records)
    )
    assert len(got) == len(records)
    by_key: dict[str, list[bytes | None]] = defaultdict(list)
    for record in sorted(got, key=lambda r: (r.partition, r.offset)):
        key = record.key.decode()
        assert record.partition == expected[key], key
        by_key[key].append(record.value)
    sent: dict[str, list[bytes | None]] = defaultdict(list)
    for _, key, message in records:
        sent[key].append(
            message if message is None or isinstance(message, bytes) else message.dumps()
        )
    assert by_key == sent
