"""The `delivery_marks` agent: `signal-delivered` into the ledger as soon as it is written.

The pipeline writes a "sending" mark before each Marketo call that completes a (change, flow)
pair and the pair's delivered key as soon as Marketo acknowledged it; its outcome follows on
`signal-outcomes`, which control records in larger, slower batches. The embedded broker keeps
topics in memory only: when everything is killed at once, the keys and marks die with it, and
outcomes still waiting to be recorded with them. Keeping the log in the ledger within tens of
milliseconds lets control re-seed it on start (`Recovery.reseed`), so after a crash of
everything a re-driven pair is sent again only if its call was in flight or its mark was still
in this short window, and a pair whose call was in flight is counted as a possible repeat.

It is light on purpose and apart from control's Faust agents: a plain consumer in a consumer
group of its own (`<app id>-delivery-marks`), small batches (`max_records`) taken as soon as
they arrive (`within_ms` while marks flow, up to `IDLE_WAIT_MS` after a quiet spell), so it
never waits behind a Faust agent's fetches or a long outcome batch; each batch is one store
write (`Recorder.record_marks`, under `Recorder.guarded`, so no record is dropped with only a
log line), and its offsets are committed only after that write.
Every write is idempotent, so a batch read again after a restart changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer

from stream.broker import bootstrap_servers
from stream.consumer_leave import stop_within
from stream.control.recorder import RawRecord, Recorder
from stream.faust_settings import HEARTBEAT_INTERVAL_S, SESSION_TIMEOUT_S
from stream.fetch_wait import FetchWait, adapt_fetch_wait
from stream.topics import DELIVERED

log = logging.getLogger("signal.control.marks")

AGENT = "delivery_marks"

IDLE_WAIT_MS = 200
"""The longest the broker may hold a fetch that keeps finding no mark (`stream.fetch_wait`).

Idle, a fetch every 50 ms was a third of an idle control's CPU and of the broker's (measured
with one idle control: control 2.4 % and broker 3.0 % of a core; 1.7 % and 2.0 % with this
bound). The price is paid by the first mark after a quiet spell, which may reach the
ledger up to 150 ms later than under load; a crash of everything in that moment treats its pair
as a mark not yet kept, as it would a mark a few milliseconds old. Lower than the services'
`IDLE_WAIT_MS`, since this window is what keeps a crash from sending a lead twice."""

POLL_MS = 1000
"""How long one `getmany` waits for buffered records: it returns as soon as any arrive."""


class DeliveryMarksAgent:
    def __init__(
        self,
        recorder: Recorder,
        broker_url: str,
        *,
        group_id: str,
        topic: str = DELIVERED.name,
        max_records: int = 500,
        within_ms: int = 50,
    ) -> None:
        self._recorder = recorder
        self._servers = bootstrap_servers(broker_url)
        self.group_id = group_id
        self.topic = topic
        self._max_records = max_records
        self._within_ms = within_ms
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.fetch_wait: FetchWait | None = None
        """The current consumer's fetch wait (for figures and tests)."""

    async def run(self) -> None:
        """Follow the topic until cancelled; a broken connection is logged and reopened."""
        while True:
            consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self._servers,
                group_id=self.group_id,
                client_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=self._within_ms,
                max_poll_records=self._max_records,
                session_timeout_ms=int(SESSION_TIMEOUT_S * 1000),
                heartbeat_interval_ms=int(HEARTBEAT_INTERVAL_S * 1000),
            )
            try:
                await consumer.start()
                self.fetch_wait = adapt_fetch_wait(consumer, self._within_ms, IDLE_WAIT_MS)
                await self._follow(consumer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading %s into the ledger failed; reconnecting in 1 s", self.topic)
                await asyncio.sleep(1.0)
            finally:
                # Bounded: a stop soon after a crash would wait out the group's join.
                with contextlib.suppress(Exception):
                    await stop_within(consumer)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=self._max_records)
            records = [
                RawRecord(r.value, r.partition, r.offset, key=r.key)
                for messages in batches.values()
                for r in messages
            ]
            if not records:
                continue
            await self._recorder.guarded(AGENT, self.topic, records, self._recorder.record_marks)
            await consumer.commit(
                {tp: messages[-1].offset + 1 for tp, messages in batches.items() if messages}
            )
            self.batches += 1

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=AGENT)
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
