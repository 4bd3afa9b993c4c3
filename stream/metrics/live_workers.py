"""Control's reader of the workers' heartbeats (`signal-workers`, `stream.heartbeats`).

A consumer without a group reads the one-partition topic's recent tail, so a control that starts
knows at once which workers beat recently. Only the tail: the embedded broker never prunes the
topic (a beat per worker every 2 s is ~43k records a day per worker), and only beats within a
worker's window (`MISSED_BEATS` beats) can count, older ones are dropped by their timestamp
anyway. It reconnects after any error; while it cannot read, the count is unknown (None), never
a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.broker import bootstrap_servers
from stream.heartbeats import LiveWorkers, parse_beat
from stream.topics import WORKERS

log = logging.getLogger("signal.metrics.workers")

RECONNECT_S = 1.0

TAIL_RECORDS = 5_000
"""How far back from the end a start reads: a window holds `MISSED_BEATS` beats per worker, so
this covers well over a thousand workers. The embedded broker answers ListOffsets(latest) with
its count of record batches (`stream.metrics.consumer_lag`), at most the true end, so the start
it gives is earlier than meant, never later: more is read, nothing recent is missed."""


def tail_start(beginning: int, end: int, tail: int = TAIL_RECORDS) -> int:
    """The offset to start reading at: `tail` records before the end, not before the log's start."""
    return max(beginning, end - tail)


class WorkerBeats:
    def __init__(
        self,
        broker_url: str,
        *,
        client_id: str = "signal-control-workers",
        clock: Callable[[], float] = time.time,
        tail_records: int = TAIL_RECORDS,
    ) -> None:
        """`clock`: seconds since the epoch, compared with the records' timestamps."""
        self._clock = clock
        self._tail = tail_records
        self.started_at: int | None = None
        """The offset the last (re)connection started reading at."""
        self._servers = bootstrap_servers(broker_url)
        self._client_id = client_id
        self._live = LiveWorkers()
        self._reading = False
        self._task: asyncio.Task[None] | None = None

    def count(self) -> int | None:
        """Live pipeline workers, or None while the topic is not being read."""
        return self._live.count(self._clock()) if self._reading else None

    def breakers(self) -> dict[str, dict[str, Any]] | None:
        """The live workers' connection circuit breakers by connection id (`stream.heartbeats`),
        or None while the topic is not being read."""
        return self._live.breakers(self._clock()) if self._reading else None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="worker-beats")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._servers,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                client_id=self._client_id,
                fetch_max_wait_ms=250,
            )
            try:
                await consumer.start()
                partition = TopicPartition(WORKERS.name, 0)
                consumer.assign([partition])
                await self._seek_tail(consumer, partition)
                self._reading = True
                await self._follow(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading %s failed (%s); reconnecting", WORKERS.name, exc)
            finally:
                self._reading = False
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(RECONNECT_S)

    async def _seek_tail(self, consumer: AIOKafkaConsumer, partition: TopicPartition) -> None:
        beginning = (await consumer.beginning_offsets([partition]))[partition]
        end = (await consumer.end_offsets([partition]))[partition]
        self.started_at = tail_start(beginning, end, self._tail)
        consumer.seek(partition, self.started_at)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            now = self._clock()
            for records in batches.values():
                for record in records:
                    beat = parse_beat(record.value)
                    if beat is not None:
                        self._live.saw(beat, seen_at=now, sent_at=record.timestamp / 1000)
