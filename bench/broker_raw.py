"""Raw aiokafka throughput on the embedded broker: the transport's ceiling, without Faust.

    python -m bench.broker_raw [--messages 100000] [--size 700] [--partitions 8] [--broker URL]

Produces `--messages` JSON change-like records of about `--size` bytes (acks=all, as Signal
produces) and then consumes and parses them all, printing messages/s for each side. Without
`--broker` it starts its own embedded broker. Smoke mode (`bench/__init__.py`): 1,000 messages.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import arguments, sized
from stream.broker import EmbeddedBroker, bootstrap_servers
from stream.topics import TopicSpec, declare_topics


def payload(n: int, size: int) -> bytes:
    """A change-event-shaped JSON document padded to about `size` bytes."""
    record = {
        "changeId": f"{uuid.UUID(int=n)}",
        "type": "registration.status_change",
        "accountCode": "ACME",
        "eventCode": "SUMMIT26",
        "occurredAt": "2026-11-28T12:00:00Z",
        "registration": {
            "registrationCode": f"R{n:09d}",
            "registrationStatusLabel": "Attended",
            "profile": {"firstName": "Ana", "lastName": "Ruiz", "email": f"u{n}@example.com"},
        },
        "pad": "",
    }
    base = len(json.dumps(record).encode())
    record["pad"] = "x" * max(0, size - base)
    return json.dumps(record).encode()


async def produce(servers: list[str], topic: str, messages: int, size: int) -> float:
    bodies = [payload(n, size) for n in range(min(messages, 1000))]
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        started = time.perf_counter()
        pending = []
        for n in range(messages):
            key = f"R{n:09d}".encode()
            pending.append(await producer.send(topic, bodies[n % len(bodies)], key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def consume(servers: list[str], topic: str, messages: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < messages:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    json.loads(record.value)
                seen += len(records)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def run(url: str, messages: int, size: int, partitions: int) -> None:
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    await declare_topics(url, [TopicSpec(topic, partitions, "registration code", "benchmark")])
    servers = bootstrap_servers(url)
    produced = await produce(servers, topic, messages, size)
    consumed = await consume(servers, topic, messages)
    print(f"broker {url}, {messages} messages of {size} bytes, {partitions} partitions")
    print(f"  produce (acks=all): {messages / produced:>10,.0f} messages/s  ({produced:.2f} s)")
    print(f"  consume + parse:    {messages / consumed:>10,.0f} messages/s  ({consumed:.2f} s)")


async def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--messages", type=int, default=sized(100_000, 1_000))
    parser.add_argument("--size", type=int, default=700)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--broker", help="use this broker instead of starting one")
    args = parser.parse_args(argv)
    if args.broker:
        await run(args.broker, args.messages, args.size, args.partitions)
        return
    async with EmbeddedBroker() as broker:
        await run(broker.url, args.messages, args.size, args.partitions)


if __name__ == "__main__":
    asyncio.run(main())
