"""Control's reader of the workers' heartbeats (`signal-workers`, `stream.heartbeats`).

A consumer without a group reads the one-partition topic from its start (an hour of beats at
most on Kafka; the embedded broker keeps what it got since it started, a beat per worker every
2 s), so a control that starts knows at once which workers beat recently. It reconnects after
any error; while it cannot read, the count is unknown (None), never a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.broker import bootstrap_servers
from stream.heartbeats import LiveWorkers, parse_beat
from stream.topics import WORKERS

log = logging.getLogger("signal.metrics.workers")

RECONNECT_S = 1.0


class WorkerBeats:
    def __init__(
        self,
        broker_url: str,
        *,
        client_id: str = "signal-control-workers",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock`: seconds since the epoch, compared with the records' timestamps."""
        self._clock = clock
        self._servers = bootstrap_servers(broker_url)
        self._client_id = client_id
        self._live = LiveWorkers()
        self._reading = False
        self._task: asyncio.Task[None] | None = None

    def count(self) -> int | None:
        """Live pipeline workers, or None while the topic is not being read."""
        return self._live.count(self._clock()) if self._reading else None

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
                consumer.assign([TopicPartition(WORKERS.name, 0)])
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

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            now = self._clock()
            for records in batches.values():
                for record in records:
                    beat = parse_beat(record.value)
                    if beat is not None:
                        self._live.saw(beat, seen_at=now, sent_at=record.timestamp / 1000)
