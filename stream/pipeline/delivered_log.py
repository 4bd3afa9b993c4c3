"""The delivered-keys log: which (change, flow) pairs this pipeline already delivered.

Kept in the compacted topic `signal-delivered` and read whole, without a consumer group, by every
worker (like the configuration), so the worker that owns a connection's partition after a restart
or a rebalance knows what the previous owner delivered. A key is written only after the pair's
`delivered` outcome was acknowledged by the broker.

A Faust table was the first choice and was dropped: with a table, a restarted worker goes through
Faust's changelog recovery, and in the SIGKILL + restart test about one run in eight lost a
delivery request (it was in `signal-deliveries`, the group's committed offset was past it, and no
outcome existed for it). Reading Faust's consumer suggests why: a message fetched while the flow
is suspended (as during recovery) is not handed to the stream but its offset counts as read, and
the commit's gap check (`min(acked) - committed > 1`) lets the next commit pass one unacked
offset. A plain reader keeps Faust's recovery out of the worker's start.

Memory is bounded by the retention: keys older than it are forgotten locally (the topic's own
retention drops them on the broker).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.broker import bootstrap_servers
from stream.topics import DELIVERED

log = logging.getLogger("signal.pipeline.delivered")

__all__ = ["DeliveredLog"]

Publish = Callable[[list[tuple[str, bytes | None]]], Awaitable[None]]


class DeliveredLog:
    def __init__(
        self,
        broker_url: str | None = None,
        *,
        retention_s: float = 7 * 24 * 3600.0,
        topic: str = DELIVERED.name,
        poll_ms: int = 100,
    ) -> None:
        self._servers = bootstrap_servers(broker_url) if broker_url else []
        self._topic = topic
        self._poll_ms = poll_ms
        self.retention_s = retention_s
        self.keys: dict[str, float] = {}
        self._loaded = asyncio.Event()
        self._last_purge = time.time()

    # ---- reading ------------------------------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        stamp = self.keys.get(key) if isinstance(key, str) else None
        return stamp is not None and stamp >= time.time() - self.retention_s

    def __len__(self) -> int:
        return len(self.keys)

    def apply(self, key: str, value: bytes | None) -> None:
        """One record of the log: a delivery time, or a tombstone."""
        if value is None:
            self.keys.pop(key, None)
            return
        try:
            stamp = float(value)
        except ValueError:
            log.warning("ignoring an unreadable record on %s", self._topic)
            return
        if stamp > self.keys.get(key, 0.0):
            self.keys[key] = stamp

    def note(self, keys: Iterable[str], stamp: float | None = None) -> list[tuple[str, bytes]]:
        """Remember `keys` as delivered now; returns the records to write to the log."""
        when = time.time() if stamp is None else stamp
        records = []
        for key in keys:
            self.keys[key] = when
            records.append((key, repr(when).encode()))
        self.purge(when)
        return records

    def purge(self, now: float | None = None, every_s: float = 600.0) -> int:
        """Forget keys older than the retention (at most every `every_s` seconds)."""
        now = time.time() if now is None else now
        if now - self._last_purge < every_s:
            return 0
        self._last_purge = now
        cutoff = now - self.retention_s
        old = [k for k, stamp in self.keys.items() if stamp < cutoff]
        for key in old:
            del self.keys[key]
        return len(old)

    async def wait_loaded(self, log_every: float = 10.0) -> None:
        while not self._loaded.is_set():
            try:
                await asyncio.wait_for(self._loaded.wait(), log_every)
            except TimeoutError:
                log.warning("still reading %s before delivering", self._topic)

    # ---- the reader ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Read the log from its start, then follow it; never raises except on cancellation."""
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._servers,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                client_id="signal-pipeline-delivered",
                fetch_max_wait_ms=self._poll_ms,
            )
            try:
                await consumer.start()
                await self._follow(consumer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading %s failed; reconnecting in 1 s", self._topic)
                await asyncio.sleep(1.0)
            finally:
                try:
                    await consumer.stop()
                except Exception:
                    log.debug("closing the delivered-keys consumer failed", exc_info=True)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        await consumer.topics()  # metadata, so the partitions are known
        partitions = consumer.partitions_for_topic(self._topic) or {0}
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        started = time.monotonic()
        while True:
            batches = await consumer.getmany(*tps, timeout_ms=self._poll_ms, max_records=50_000)
            for records in batches.values():
                for record in records:
                    if record.key is not None:
                        self.apply(record.key.decode("utf-8", "replace"), record.value)
            if not self._loaded.is_set() and await _caught_up(consumer, ends):
                self._loaded.set()
                log.info(
                    "%d delivered keys loaded from %s in %.1f s",
                    len(self.keys),
                    self._topic,
                    time.monotonic() - started,
                )


async def _caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True
