"""The delivered-keys log: which (change, flow) pairs this pipeline already delivered.

Kept in the compacted topic `signal-delivered` and read whole, without a consumer group, by every
worker (like the configuration), so the worker that owns a connection's partition after a restart
or a rebalance knows what the previous owner delivered. Control re-seeds it from its ledger on
start, so the keys survive a broker that forgot the topic.

A record's value is one of:

- `repr(epoch)` (e.g. `b"1767225600.25"`): the pair was delivered then. Written as soon as
  Marketo acknowledged the call that completed the pair, before its outcome is published, so a
  worker killed afterwards repeats at most the calls that were in flight.
- `b"sending:" + repr(epoch)`: a call that completes the pair was about to go to Marketo. It does
  not count as delivered; a later delivery of a pair found in this state may be Marketo's second
  run of it, and its outcome says so (`OutcomeRecord.possible_repeat`).
- a tombstone: Marketo answered that call without running it; the mark is gone.

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
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.delivery_keys import SENDING
from stream.pipeline.topic_reader import TopicReader
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
        self._reader = TopicReader(
            broker_url, topic, client_id="signal-pipeline-delivered", log=log, poll_ms=poll_ms
        )
        self._topic = topic
        self.retention_s = retention_s
        self.keys: dict[str, float] = {}
        self.sending: dict[str, float] = {}
        """Pairs marked "sending" and neither delivered nor cleared since (key -> mark time)."""
        self._loaded = asyncio.Event()
        self._last_purge = time.time()
        self._consumer: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()

    # ---- reading ------------------------------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        stamp = self.keys.get(key) if isinstance(key, str) else None
        return stamp is not None and stamp >= time.time() - self.retention_s

    def __len__(self) -> int:
        return len(self.keys)

    def is_sending(self, key: str) -> bool:
        """Marked "sending" by an attempt that recorded no answer (and not delivered since)."""
        return key in self.sending and key not in self

    def sending_since(self, key: str) -> float | None:
        """When the call left unanswered started (epoch seconds), if `key` `is_sending`."""
        return self.sending[key] if self.is_sending(key) else None

    def apply(self, key: str, value: bytes | None) -> None:
        """One record of the log: a delivery time, a "sending" mark, or a tombstone."""
        if value is None:
            self.keys.pop(key, None)
            self.sending.pop(key, None)
            return
        marking = value.startswith(SENDING)
        try:
            stamp = float(value[len(SENDING) :] if marking else value)
        except ValueError:
            log.warning("ignoring an unreadable record on %s", self._topic)
            return
        if marking:
            if key not in self.keys:
                self.sending[key] = max(stamp, self.sending.get(key, 0.0))
        elif stamp > self.keys.get(key, 0.0):
            self.keys[key] = stamp
            self.sending.pop(key, None)

    def note(self, keys: Iterable[str], stamp: float | None = None) -> list[tuple[str, bytes]]:
        """Remember `keys` as delivered now; returns the records to write to the log."""
        when = time.time() if stamp is None else stamp
        records = []
        for key in keys:
            self.keys[key] = when
            self.sending.pop(key, None)
            records.append((key, repr(when).encode()))
        self.purge(when)
        return records

    def note_sending(
        self, keys: Iterable[str], stamp: float | None = None
    ) -> list[tuple[str, bytes]]:
        """Mark `keys` "sending" (a call completing them is about to go out); returns the records
        to write. A key already delivered keeps its delivery."""
        when = time.time() if stamp is None else stamp
        records = []
        for key in keys:
            if key in self.keys:
                continue
            self.sending[key] = when
            records.append((key, SENDING + repr(when).encode()))
        return records

    def clear_sending(self, keys: Iterable[str]) -> list[tuple[str, None]]:
        """Drop the "sending" mark of `keys` Marketo answered without running (tombstones to
        write; a delivered key is left alone)."""
        records: list[tuple[str, None]] = []
        for key in keys:
            if key in self.keys:
                continue
            self.sending.pop(key, None)
            records.append((key, None))
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
        for key in [k for k, stamp in self.sending.items() if stamp < cutoff]:
            del self.sending[key]
        return len(old)

    async def wait_loaded(self, log_every: float = 10.0) -> None:
        while not self._loaded.is_set():
            try:
                async with asyncio.timeout(log_every):
                    await self._loaded.wait()
            except TimeoutError:
                log.warning("still reading %s before delivering", self._topic)

    async def sync(self, timeout_s: float = 10.0) -> bool:
        """Catch up with the log as it is now: fetch the end offsets, then wait until the reader
        has read up to them. True when caught up; False (and a warning) after `timeout_s`, when
        the caller decides on what was read so far.

        Used before deciding duplicates of recovery redrives: control re-seeds keys from its
        ledger just before re-driving, and those keys must be seen.
        """
        started = time.monotonic()
        deadline = started + timeout_s
        ends: dict[TopicPartition, int] | None = None
        while True:
            consumer = self._consumer
            try:
                if consumer is not None and self._positions and ends is None:
                    remaining = max(0.01, deadline - time.monotonic())
                    tps = list(self._positions)
                    async with asyncio.timeout(remaining):
                        ends = await consumer.end_offsets(tps)
                if ends is not None and all(
                    self._positions.get(tp, -1) >= end for tp, end in ends.items()
                ):
                    return True
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("reading the end of %s failed (%s); trying again", self._topic, error)
                ends = None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning(
                    "delivered keys not caught up with the end of %s within %.1f s "
                    "(read %s, end %s); deciding duplicates on the keys read so far",
                    self._topic,
                    timeout_s,
                    _offsets(self._positions),
                    _offsets(ends) if ends is not None else "unknown",
                )
                return False
            async with self._progress:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, 0.5)):
                        await self._progress.wait()

    # ---- the reader ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Read the log from its start, then follow it; never raises except on cancellation."""
        await self._reader.run(self._follow, on_close=self._closed)

    def _closed(self) -> None:
        self._consumer = None
        self._positions = {}

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        await consumer.topics()  # metadata, so the partitions are known
        partitions = consumer.partitions_for_topic(self._topic) or {0}
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        started = time.monotonic()
        self._consumer = consumer
        while True:
            batches = await consumer.getmany(
                *tps, timeout_ms=self._reader.poll_ms, max_records=50_000
            )
            for records in batches.values():
                for record in records:
                    if record.key is not None:
                        self.apply(record.key.decode("utf-8", "replace"), record.value)
            self._positions = {tp: await consumer.position(tp) for tp in tps}
            async with self._progress:
                self._progress.notify_all()
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


def _offsets(offsets: dict[TopicPartition, int]) -> str:
    return ", ".join(f"{tp.partition}:{offset}" for tp, offset in sorted(offsets.items())) or "-"
