"""A consumer that sees everything produced after it is made, for benchmarks that time records.

`auto_offset_reset="latest"` and one `getmany` to "join" race on a busy machine: if the first
fetch has not resolved the partitions' end offsets by the time the benchmark starts producing,
the end it resolves later lies past the first records, which are never seen (a smoke run of
bench.delivery_latency in the suite took 125 s, where alone it takes 10 s: most likely its wait for
every change, 120 s, ran out on records it never saw). Here every
partition is assigned and its position resolved before the consumer is handed over.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def tail(bootstrap: str | list[str], *topics: str, **options: Any) -> AIOKafkaConsumer:
    """A started consumer positioned at the current end of every partition of `topics`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **options)
    await consumer.start()
    try:
        await consumer.topics()  # metadata for every topic, partitions included
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        missing = [t for t in topics if not consumer.partitions_for_topic(t)]
        if missing:
            raise RuntimeError(f"no partitions for {missing}: are the topics declared?")
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)  # resolves the end offset now, not at first fetch
    except BaseException:
        await consumer.stop()
        raise
    return consumer
