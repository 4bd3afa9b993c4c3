"""Consumer lag per topic, read from the broker by control.

Lag of a group on a partition is the partition's end (its high watermark) minus the group's
committed offset. Where each half comes from was chosen by measuring the embedded broker:

- **End of a partition: the high watermark of a Fetch response, not ListOffsets.** The embedded
  broker answers ListOffsets(latest) with far less than the partition holds (measured: 112 and
  96 records in two partitions, written as 10 single sends and one batch of 200, answered as 7
  and 5: it counts record batches), while every Fetch response carries the right high
  watermark, as on Kafka. So the probe sends one Fetch per leader for every partition, at the
  end it saw last time, with a byte limit of one: the answer holds at most the first batch
  written since (Kafka returns one batch whatever the limit) and the new high watermark. The
  Fetch is the same request on Kafka, so one method is right on both.
- **Committed offsets: OffsetFetch naming the partitions**, as a group member asks for them
  (version negotiated by the client). The form without partitions (v2+, what the admin client's
  `list_consumer_group_offsets` sends) closes the connection on the embedded broker. A partition
  the group never committed counts from the partition's start: pipeline and control read from
  the earliest offset, so everything in it is still to be read.

Live workers are not read here: the embedded broker never drops a dead member from a group
(`stream.heartbeats` says how they are counted instead).

The arithmetic (`stream.metrics.lag`) is plain code; this module is the Kafka edge. Each probe
costs a handful of small requests and is cached for `max_age_s`, so a busy scrape does not
multiply it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient, ConnectionGroup, CoordinationType
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.fetch import FetchRequest

from stream import topics
from stream.broker import bootstrap_servers
from stream.metrics.lag import GroupLag, LagReading, lag_of

log = logging.getLogger("signal.metrics.lag")

PIPELINE_GROUP = "signal-pipeline"
"""The pipeline workers' consumer group: their Faust app id (`stream.pipeline.app.APP_ID`, kept
equal by a test; control does not import the pipeline's app)."""

CONTROL_GROUP = "signal-control"

LAG_TOPICS = (topics.CHANGES.name, topics.DELIVERIES.name, topics.OUTCOMES.name)
"""The topics whose lag is shown: what waits to be routed, delivered and recorded."""

_OFFSET_OUT_OF_RANGE = 1
_COORDINATION = ConnectionGroup.COORDINATION


def readers(control_group: str = CONTROL_GROUP) -> dict[str, tuple[str, ...]]:
    """The groups whose progress counts for each shown topic: changes are routed by the
    pipeline and archived by control, deliveries delivered by the pipeline, outcomes recorded
    by control."""
    return {
        topics.CHANGES.name: (PIPELINE_GROUP, control_group),
        topics.DELIVERIES.name: (PIPELINE_GROUP,),
        topics.OUTCOMES.name: (control_group,),
    }


@dataclass
class LagProbe:
    """Reads the partitions' ends and the groups' committed offsets from the broker."""

    broker_url: str
    control_group: str = CONTROL_GROUP
    max_age_s: float = 1.0
    timeout_s: float = 5.0
    _client: AIOKafkaClient | None = None
    _ends: dict[TopicPartition, int] = field(default_factory=dict)
    _starts: dict[TopicPartition, int] = field(default_factory=dict)
    _last: LagReading | None = None
    _last_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reading(self) -> LagReading | None:
        """The latest reading, probing when the cached one is older than `max_age_s`; None
        when the broker did not answer in `timeout_s` (shown as unknown, never as 0)."""
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last_at < self.max_age_s:
                return self._last
            try:
                async with asyncio.timeout(self.timeout_s):
                    reading = await self._probe()
            except Exception as exc:  # any broker trouble means "unknown"
                log.warning("consumer lag not read: %s", exc or type(exc).__name__)
                await self._drop_client()
                self._last = None
                return None
            self._last, self._last_at = reading, time.monotonic()
            return reading

    async def close(self) -> None:
        await self._drop_client()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    async def _connected(self) -> AIOKafkaClient:
        if self._client is None:
            client = AIOKafkaClient(
                bootstrap_servers=bootstrap_servers(self.broker_url),
                client_id=f"{self.control_group}-lag",
                request_timeout_ms=int(self.timeout_s * 1000),
            )
            await client.bootstrap()
            client.set_topics(LAG_TOPICS)
            self._client = client
        return self._client

    async def _probe(self) -> LagReading:
        client = await self._connected()
        await client.force_metadata_update()
        partitions = [
            TopicPartition(t, p)
            for t in LAG_TOPICS
            for p in sorted(client.cluster.partitions_for_topic(t) or ())
        ]
        await self._read_ends(client, partitions)
        groups: list[GroupLag] = []
        wanted: dict[str, list[str]] = defaultdict(list)
        for topic, names in readers(self.control_group).items():
            for group in names:
                wanted[group].append(topic)
        for group, group_topics in wanted.items():
            coordinator = await client.coordinator_lookup(CoordinationType.GROUP, group)
            of_group = [tp for tp in partitions if tp.topic in group_topics]
            committed = await _committed(client, coordinator, group, of_group)
            for topic in group_topics:
                ends = {tp: self._ends[tp] for tp in of_group if tp.topic == topic}
                groups.append(GroupLag(topic, group, lag_of(ends, self._starts, committed)))
        return LagReading(tuple(groups))

    async def _read_ends(
        self, client: AIOKafkaClient, partitions: Sequence[TopicPartition]
    ) -> None:
        by_leader: dict[int, list[TopicPartition]] = defaultdict(list)
        for tp in partitions:
            leader = client.cluster.leader_for_partition(tp)
            if leader is None or leader < 0:
                raise RuntimeError(f"no leader for {tp.topic}[{tp.partition}]")
            by_leader[leader].append(tp)
        retry: list[TopicPartition] = []
        for leader, tps in by_leader.items():
            retry += await self._fetch_ends(client, leader, tps)
        if retry:
            # A broker that restarted (the embedded one forgets everything) or a retention that
            # passed the known end: read those partitions again from their start.
            for leader, tps in by_leader.items():
                again = [tp for tp in tps if tp in retry]
                if again and await self._fetch_ends(client, leader, again):
                    raise RuntimeError(f"offsets out of range on {again}")
        gone = set(self._ends) - set(partitions)
        for tp in gone:
            self._ends.pop(tp, None)
            self._starts.pop(tp, None)

    async def _fetch_ends(
        self, client: AIOKafkaClient, leader: int, tps: Sequence[TopicPartition]
    ) -> list[TopicPartition]:
        """Learn the high watermark (and the log start, where the answer has it) of `tps`;
        returns the partitions whose known end was out of range, reset to their start."""
        by_topic: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for tp in tps:
            by_topic[tp.topic].append((tp.partition, self._ends.get(tp, 0), 1))
        # A wait of 1 ms, not 0: the embedded broker answers a Fetch with max_wait 0 with no
        # partitions at all. min_bytes 0 still answers at once where nothing is new.
        request = FetchRequest(1, 0, 1, 0, list(by_topic.items()))
        response: Any = await client.send(leader, request)
        out_of_range: list[TopicPartition] = []
        answered: set[TopicPartition] = set()
        for topic, parts in response.topics:
            for part in parts:
                partition, error_code, highwater = part[0], part[1], part[2]
                tp = TopicPartition(topic, partition)
                answered.add(tp)
                start = _log_start(part)
                if start is not None and start >= 0:
                    self._starts[tp] = start
                if error_code == _OFFSET_OUT_OF_RANGE:
                    self._ends[tp] = max(start or 0, 0)
                    out_of_range.append(tp)
                elif error_code != 0:
                    raise RuntimeError(
                        f"fetch of {topic}[{partition}] answered error code {error_code}"
                    )
                else:
                    self._ends[tp] = int(highwater)
        if missing := [tp for tp in tps if tp not in answered]:
            raise RuntimeError(f"fetch left out {len(missing)} partitions, e.g. {missing[0]}")
        return out_of_range


def _log_start(part: Sequence[Any]) -> int | None:
    """The log start offset of a Fetch answer's partition, when its version carries one (v5+:
    partition, error, high watermark, last stable offset, log start, ...)."""
    if len(part) >= 7 and isinstance(part[4], int):
        return int(part[4])
    return None


async def _committed(
    client: AIOKafkaClient, coordinator: int, group: str, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    by_topic: dict[str, list[int]] = defaultdict(list)
    for tp in tps:
        by_topic[tp.topic].append(tp.partition)
    response: Any = await client.send(
        coordinator, OffsetFetchRequest(group, list(by_topic.items())), group=_COORDINATION
    )
    out: dict[TopicPartition, int] = {}
    for topic, parts in response.topics:
        for part in parts:  # (partition, offset, [leader epoch,] metadata, error code)
            if part[-1] == 0:
                out[TopicPartition(topic, part[0])] = int(part[1])
    return out
