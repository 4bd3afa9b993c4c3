"""The pipeline worker: Faust app `signal-pipeline`.

Two stages, both batched with `take_events` and both following one rule: everything a batch
produces is acknowledged by the broker before the batch's events are acked, so a committed offset
never passes a change whose outcomes (or delivery requests) are not durable.

- `route` (`certain-changes`, `signal-redrive`; `route_stage.py`): parse, apply event changes
  to the local catalog, evaluate (pure, `route.py`), publish outcomes decided without Marketo
  and `DeliveryRequest`s keyed by connection id.
  Every delivery request goes with a `queued` outcome for its pair, in the same publish and ahead
  of the batch's other outcomes, so the ledger sees each delivery in flight, even when a crash
  cuts the publish short (`records.route_records`).
- `deliver` (`signal-deliveries`; `deliver_stage.py`): one partition per connection, so one
  worker owns each connection's batching and rate limit; skips pairs already delivered
  (`delivered_log.py`), calls Marketo (`deliver.py`) and publishes one outcome per request.
  Around each completing Marketo call it writes the pairs' "sending" marks, then their delivered
  keys as soon as Marketo acknowledged the call (each awaited), so a worker killed mid-batch
  repeats at most the calls in flight. A pair found "sending" (its call may have run) is looked
  up in Marketo's activity log first when its call is not idempotent (`verify.py`): recorded
  delivered if Marketo ran it, else delivered again with `possible_repeat` on its outcome.
  Each of those records goes to a journal in the worker's data dir first, written back to the
  topic when the worker starts again (`marks_journal.py`): a crash of everything, broker
  included, forgets none of them.
  Before deciding duplicates of recovery and replay redrives it catches up with the
  delivered-keys log. A completing call is withdrawn, and its requests queued again on
  `signal-deliveries`, when a rebalance began during its batch or another worker delivered or
  began sending one of its pairs meanwhile (`deliver_stage.Fence`): a worker dropped from the
  group while it finished its batch and the partition's new owner never both send it.

Faust acks an event when the agent body raises, so nothing raises out of a batch: record-level
problems become outcomes, and a failure to publish (broker unreachable) is retried in place,
holding the partition, until it succeeds or the worker is stopped (`publisher.py`). No record is
dropped with only a log line: an unreadable delivery request or redrive, a change whose routing
broke and a batch that failed unexpectedly all become `failed` outcomes when their change and
flow can be read (`records.py`).
What cannot be read at all is counted (`unrecorded`) and logged: an unreadable record of
`certain-changes` is kept by control in `rejected_changes` anyway; an unreadable delivery request
or redrive without a change id has nothing the ledger could file it under.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust

from stream import heartbeats
from stream.core.breaker import BreakerPolicy
from stream.faust_settings import faust_settings, use_fetch_max_wait
from stream.messages import utcnow
from stream.pipeline.clients import ClientPool
from stream.pipeline.deliver_stage import DeliverStage
from stream.pipeline.delivered_log import DeliveredLog
from stream.pipeline.fetch_priority import FetchPriority, use_fetch_priority
from stream.pipeline.marks_journal import MarksJournal
from stream.pipeline.publisher import Record, RecordPublisher
from stream.pipeline.route_stage import RouteStage
from stream.pipeline.snapshot import ConfigView, SnapshotReader
from stream.sealing import KEY_FILE_NAME, KeyFile
from stream.topics import CHANGES, DELIVERIES, REDRIVE, WORKERS, faust_topic

log = logging.getLogger("signal.pipeline")

__all__ = [
    "APP_ID",
    "Counters",
    "Pipeline",
    "PipelineOptions",
    "create_app",
]

APP_ID = "signal-pipeline"
FETCH_MAX_WAIT_MS = 20
"""How long the embedded broker may hold the worker's fetches (`stream.faust_settings`: 100 ms
for every app). It holds a fetch that long even when records arrive, and a change makes two
hops through the worker's consumer (changes, deliveries): at 50 changes/s each paid up to 100
ms of the 500 ms the change has to reach Marketo. An idle worker polls 50 times a second."""
GC_THRESHOLDS = (20_000, 20, 20)
"""The worker's garbage collector thresholds (CPython's default: 700, 10, 10). A routed change
allocates some hundred objects that die with its batch; at the default the young generation was
collected about once every 20 changes and the whole heap (Faust, aiokafka, pydantic) every
couple of thousand: 1,040, 95 and 9 collections for 20,000 changes, some 0.35 s of the worker's
time (bench.pipeline_throughput), against 52, 5 and 2 and about 0.09 s here."""
JOURNAL_DIR = "delivered-journal"
"""Where in its data dir a worker journals its delivered-keys records (`marks_journal.py`)."""


@dataclass
class PipelineOptions:
    broker_url: str
    data_dir: Path = Path("var")
    app_id: str = APP_ID
    route_max: int = 500
    route_within_s: float = 0.01
    """A change waits at most this long for others to share its route batch: under load the
    batch fills (500) before, and alone a change goes on at once."""
    redrive_within_s: float = 0.1
    """The same for recovery's redrives, which come seconds to minutes after their change: with
    the route's 10 ms, the nearly always quiet redrive topic woke an idle worker 100 times a
    second."""
    deliver_max: int = 300
    deliver_within_s: float = 0.25
    """Delivery window: a batch goes out when 300 requests (Marketo's upsert maximum) are in,
    or 250 ms after the previous batch, so an idle connection sends within a quarter second."""
    unknown_event_wait_s: float = 2.0
    unknown_event_rewait_s: float = 30.0
    publish_retry_s: float = 1.0
    delivered_retention_s: float = 7 * 24 * 3600.0
    """How long a delivered pair is remembered: far beyond redeliveries after a crash or a
    rebalance (seconds to minutes); control's ledger catches older resubmits of a delivered pair."""
    delivered_sync_s: float = 10.0
    """How long a batch waits for the delivered-keys log to catch up with its end before
    deciding duplicates anyway: the first batch after a rebalance (what the partition's previous
    owner wrote) and a batch with recovery redrives (keys control re-seeded from the ledger)."""
    config_key_file: Path | None = None
    """The key control seals connection secrets with (`stream.sealing`); default
    `<data_dir>/config-key`."""
    client_overrides: dict[str, Any] = field(default_factory=dict)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    """Each connection's circuit breaker (`stream.core.breaker`): when it opens and for how long."""
    faust_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def config_key_path(self) -> Path:
        return self.config_key_file or self.data_dir / KEY_FILE_NAME


@dataclass
class Counters:
    changes: int = 0
    redrives: int = 0
    rejected: int = 0
    outcomes: int = 0
    deliveries: int = 0
    delivered: int = 0
    failed: int = 0
    parked: int = 0
    duplicates: int = 0
    possible_repeats: int = 0
    withdrawn: int = 0
    verified: int = 0
    errors: int = 0
    unrecorded: int = 0
    publish_retries: int = 0

    def line(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.__dict__.items())


class Pipeline(RouteStage, DeliverStage):
    """State shared by the agents of one worker: configuration view, clients, counters; the
    stages' batches are `RouteStage`'s and `DeliverStage`'s."""

    def __init__(self, options: PipelineOptions) -> None:
        self.options = options
        self.view = ConfigView()
        self.counters = Counters()
        self.publisher = RecordPublisher(
            options.broker_url,
            f"{options.app_id}-publisher",
            retry_s=options.publish_retry_s,
            on_retry=self._publish_retried,
        )
        self.pool = ClientPool(
            self.publisher.on_call, overrides=options.client_overrides, breaker=options.breaker
        )
        self._waited: dict[str, float] = {}
        self.delivered = DeliveredLog(options.broker_url, retention_s=options.delivered_retention_s)
        self.journal = MarksJournal(options.data_dir / JOURNAL_DIR)
        self._journal_replayed = False
        self.worker_id = heartbeats.worker_id()
        self.app = self._build_app()

    def rebalances(self) -> int:
        return int(self.app.rebalancing_count)

    # ---- the app ----------------------------------------------------------------------------

    def _build_app(self) -> faust.App:
        o = self.options
        app = faust.App(
            o.app_id,
            broker=o.broker_url,
            **faust_settings(data_dir=o.data_dir, **o.faust_overrides),
        )
        use_fetch_max_wait(FETCH_MAX_WAIT_MS)
        # Delivery requests first, then at most a route batch of changes per poll
        # (`fetch_priority.py`): in a burst, requests no longer wait behind the changes polled.
        use_fetch_priority(app, FetchPriority(frozenset({DELIVERIES.name}), o.route_max))
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.changes_topic = faust_topic(app, CHANGES, **raw)
        self.redrive_topic = faust_topic(app, REDRIVE, **raw)
        self.deliveries_topic = faust_topic(app, DELIVERIES, **raw)
        reader = SnapshotReader(o.broker_url, self.view, KeyFile(o.config_key_path))

        @app.task  # type: ignore[untyped-decorator]
        async def tune_gc() -> None:
            # Once the worker has started and holds its configuration, what it holds then lives
            # as long as the worker: frozen out of every later collection. (The route stage
            # warns of a missing configuration; this waits quietly.)
            await self.view.wait_ready(log_every=24 * 3600.0)
            gc.collect()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)

        @app.task  # type: ignore[untyped-decorator]
        async def read_config() -> None:
            await reader.run()

        @app.task  # type: ignore[untyped-decorator]
        async def read_delivered() -> None:
            await self.delivered.run()

        @app.agent(self.changes_topic, name="route")
        async def route(stream: Any) -> None:
            async for events in stream.take_events(o.route_max, o.route_within_s):
                await self.route_events(events, redrive=False)

        @app.agent(self.redrive_topic, name="route_redrive")
        async def route_redrive(stream: Any) -> None:
            async for events in stream.take_events(o.route_max, o.redrive_within_s):
                await self.route_events(events, redrive=True)

        @app.agent(self.deliveries_topic, name="deliver")
        async def deliver(stream: Any) -> None:
            async for events in stream.take_events(o.deliver_max, o.deliver_within_s):
                await self.deliver_events(events)

        @app.timer(30.0)  # type: ignore[untyped-decorator]
        async def report() -> None:
            log.info(
                "pipeline counters: %s snapshots_refused=%d",
                self.counters.line(),
                self.view.snapshots_refused,
            )

        @app.timer(heartbeats.EVERY_S)  # type: ignore[untyped-decorator]
        async def heartbeat() -> None:
            await self.beat(stopping=False)

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def close_clients(sender: Any, *_: Any, **__: Any) -> None:
            # Sent after the streams have finished their in-flight batches.
            await self.beat(stopping=True)
            await self.pool.close()
            await self.publisher.stop()

        return app

    async def beat(self, *, stopping: bool) -> None:
        """This worker's heartbeat (`stream.heartbeats`): control counts live workers by it and
        shows the connections' circuit breakers it carries. A beat the broker does not take
        within its interval is dropped; the next one follows."""
        at = utcnow()
        if self.view.ready:  # an operator's passing test closes a breaker without a delivery
            self.pool.see_tests(self.view.snapshot.tested)
        breakers = heartbeats.breaker_entries(
            self.pool.breakers(), monotonic_now=time.monotonic(), at=at
        )
        value = heartbeats.beat_bytes(self.worker_id, at, stopping=stopping, breakers=breakers)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(heartbeats.EVERY_S):
                await self.publish([(WORKERS.name, self.worker_id, value)])

    def _publish_retried(self) -> None:
        self.counters.publish_retries += 1

    # ---- publishing -------------------------------------------------------------------------

    async def publish(self, records: Sequence[Record]) -> None:
        """Send records and wait until the broker acknowledged every one (`RecordPublisher`)."""
        await self.publisher.publish(records)


def create_app(options: PipelineOptions) -> faust.App:
    """A `signal-pipeline` Faust app; declare the topics (`stream.topics`) before starting it."""
    return Pipeline(options).app
