"""The pipeline worker: Faust app `signal-pipeline`.

Two stages, both batched with `take_events` and both following one rule: everything a batch
produces is acknowledged by the broker before the batch's events are acked, so a committed offset
never passes a change whose outcomes (or delivery requests) are not durable.

- `route` (`certain-changes`, `signal-redrive`): parse, apply event changes to the local catalog,
  evaluate (pure, `route.py`), publish outcomes decided without Marketo and `DeliveryRequest`s
  keyed by connection id.
  Every delivery request goes with a `queued` outcome for its pair, in the same publish and ahead
  of the batch's other outcomes, so the ledger sees each delivery in flight, even when a crash
  cuts the publish short (`records.route_records`).
- `deliver` (`signal-deliveries`): one partition per connection, so one worker owns each
  connection's batching and rate limit; skips pairs already delivered (`delivered_log.py`), calls
  Marketo (`deliver.py`) and publishes one outcome per request. Around each completing Marketo
  call it writes the pairs' "sending" marks, then their delivered keys as soon as Marketo
  acknowledged the call (each awaited), so a worker killed mid-batch repeats at most the calls
  in flight. A pair found "sending" (its call may have run) is looked up in Marketo's activity
  log first when its call is not idempotent (`verify.py`): recorded delivered if Marketo ran it,
  else delivered again with `possible_repeat` on its outcome.
  Each of those records goes to a journal in the worker's data dir first, written back to the
  topic when the worker starts again (`marks_journal.py`): a crash of everything, broker
  included, forgets none of them.
  Before deciding duplicates of recovery and replay redrives it catches up with the
  delivered-keys log.

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
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust

from config.models import Source
from stream import heartbeats
from stream.certain.events import ChangeEvent
from stream.certain.parsing import Rejection
from stream.faust_settings import faust_settings
from stream.messages import (
    DeliveryRequest,
    OutcomeRecord,
    OutcomeStatus,
    Redrive,
    utcnow,
)
from stream.pipeline.clients import ClientPool, Unusable
from stream.pipeline.deliver import (
    CallHooks,
    deliver_batch,
    unreachable_outcomes,
)
from stream.pipeline.delivered import delivery_key, duplicate_outcome, split_duplicates
from stream.pipeline.delivered_log import DeliveredLog
from stream.pipeline.marks_journal import MarksJournal, net
from stream.pipeline.publisher import Record, RecordPublisher
from stream.pipeline.records import (
    describe,
    internal_failure,
    parse_record,
    route_records,
    salvaged_failure,
    time_received,
    where,
)
from stream.pipeline.route import Routed, route_change, route_failure
from stream.pipeline.snapshot import ConfigView, SnapshotReader
from stream.pipeline.verify import VERIFIED
from stream.sealing import KEY_FILE_NAME, KeyFile
from stream.topics import CHANGES, DELIVERED, DELIVERIES, OUTCOMES, REDRIVE, WORKERS, faust_topic

log = logging.getLogger("signal.pipeline")

__all__ = [
    "APP_ID",
    "Counters",
    "Pipeline",
    "PipelineOptions",
    "create_app",
]

APP_ID = "signal-pipeline"
JOURNAL_DIR = "delivered-journal"
"""Where in its data dir a worker journals its delivered-keys records (`marks_journal.py`)."""


@dataclass
class PipelineOptions:
    broker_url: str
    data_dir: Path = Path("var")
    app_id: str = APP_ID
    route_max: int = 500
    route_within_s: float = 0.05
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
    """How long a batch with recovery redrives waits for the delivered-keys log to catch up with
    its end (keys control re-seeded from the ledger) before deciding duplicates anyway."""
    config_key_file: Path | None = None
    """The key control seals connection secrets with (`stream.sealing`); default
    `<data_dir>/config-key`."""
    client_overrides: dict[str, Any] = field(default_factory=dict)
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
    verified: int = 0
    errors: int = 0
    unrecorded: int = 0
    publish_retries: int = 0

    def line(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.__dict__.items())


class Pipeline:
    """State shared by the agents of one worker: configuration view, clients, counters."""

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
        self.pool = ClientPool(self.publisher.on_call, overrides=options.client_overrides)
        self._waited: dict[str, float] = {}
        self.delivered = DeliveredLog(options.broker_url, retention_s=options.delivered_retention_s)
        self.journal = MarksJournal(options.data_dir / JOURNAL_DIR)
        self._journal_replayed = False
        self.worker_id = heartbeats.worker_id()
        self.app = self._build_app()

    # ---- the app ----------------------------------------------------------------------------

    def _build_app(self) -> faust.App:
        o = self.options
        app = faust.App(
            o.app_id,
            broker=o.broker_url,
            **faust_settings(data_dir=o.data_dir, **o.faust_overrides),
        )
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.changes_topic = faust_topic(app, CHANGES, **raw)
        self.redrive_topic = faust_topic(app, REDRIVE, **raw)
        self.deliveries_topic = faust_topic(app, DELIVERIES, **raw)
        reader = SnapshotReader(o.broker_url, self.view, KeyFile(o.config_key_path))

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
            async for events in stream.take_events(o.route_max, o.route_within_s):
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
        """This worker's heartbeat (`stream.heartbeats`): control counts live workers by it. A
        beat the broker does not take within its interval is dropped; the next one follows."""
        value = heartbeats.beat_bytes(self.worker_id, utcnow(), stopping=stopping)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.publish([(WORKERS.name, self.worker_id, value)]), heartbeats.EVERY_S
            )

    def _publish_retried(self) -> None:
        self.counters.publish_retries += 1

    # ---- publishing -------------------------------------------------------------------------

    async def publish(self, records: Sequence[Record]) -> None:
        """Send records and wait until the broker acknowledged every one (`RecordPublisher`)."""
        await self.publisher.publish(records)

    # ---- route ------------------------------------------------------------------------------

    async def route_events(self, events: Sequence[Any], *, redrive: bool) -> None:
        try:
            await self.view.wait_ready()
            rejected: list[OutcomeRecord] = []
            parsed = [(event, self._parse_one(event, redrive, rejected)) for event in events]
            # Event changes first: a registration taken in the same batch as its event's
            # create_update must not be held back as "event unknown".
            for _, item in parsed:
                if item is not None and item[0].type is Source.EVENT_CREATE_UPDATE:
                    self.view.apply_event(item[0])
            routed = Routed()
            for event, item in parsed:
                if item is not None:
                    routed.extend(await self._route_one(event, *item))
            routed.outcomes.extend(rejected)
            await self.publish(route_records(routed))
            self.counters.outcomes += len(routed.outcomes)
            self.counters.deliveries += len(routed.deliveries)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.counters.errors += 1
            log.exception("route batch failed unexpectedly; recording its changes as failed")
            await self._route_batch_failed(events, redrive, error)

    async def _route_batch_failed(
        self, events: Sequence[Any], redrive: bool, error: Exception
    ) -> None:
        """Failed outcomes for every change of a batch whose routing broke (`route_failure`)."""
        reason = f"internal error while routing: {describe(error)}"
        routed = Routed()
        lost = 0
        for event in events:
            try:
                parsed = parse_record(event.message.value, redrive)
                if isinstance(parsed, Rejection):
                    outcome = self._rejected_redrive(event, parsed) if redrive else None
                    if outcome is not None:
                        routed.outcomes.append(outcome)
                    elif redrive:
                        lost += 1
                    continue
                change, why = parsed
                routed.extend(self._route_failure(event, change, why, reason))
            except Exception:
                lost += 1
                log.exception("cannot record the routing failure of %s", where(event))
        try:
            await self.publish(route_records(routed))
            self.counters.outcomes += len(routed.outcomes)
            self.counters.failed += len(routed.outcomes)
        except asyncio.CancelledError:
            raise
        except Exception:
            lost = len(events)
            log.exception("cannot publish the routing failures of a batch")
        if lost:
            self.counters.unrecorded += lost
            log.error(
                "%d records of a failed route batch reached no outcome (total %d)",
                lost,
                self.counters.unrecorded,
            )

    def _route_failure(
        self, event: Any, change: ChangeEvent, why: Redrive | None, reason: str
    ) -> Routed:
        account = self.view.account if self.view.ready else None
        return route_failure(
            change,
            account,
            reason=reason,
            now=utcnow(),
            received_at=time_received(event),
            redrive=why,
        )

    def _parse_one(
        self, event: Any, redrive: bool, rejected: list[OutcomeRecord]
    ) -> tuple[ChangeEvent, Redrive | None] | None:
        """The change (and redrive) of a record; None if unreadable, with the outcome of an
        unreadable redrive added to `rejected`."""
        message = event.message
        try:
            parsed = parse_record(message.value, redrive)
        except Exception as error:
            parsed = Rejection(None, "", f"unreadable record: {type(error).__name__}", None)
        if isinstance(parsed, Rejection):
            self.counters.rejected += 1
            log.warning(
                "rejected record at %s[%s]@%s: %s: %s",
                message.topic,
                message.partition,
                message.offset,
                parsed.path or "(record)",
                parsed.reason,
            )
            if redrive:
                # Control archived the change (it keeps unreadable input of certain-changes in
                # rejected_changes itself); a redrive the pipeline cannot read is its outcome.
                outcome = self._rejected_redrive(event, parsed)
                if outcome is not None:
                    rejected.append(outcome)
                else:
                    self.counters.unrecorded += 1
                    log.error(
                        "unreadable redrive at %s names no change and flow; not recorded",
                        where(event),
                    )
            return None
        if parsed[1] is None:
            self.counters.changes += 1
        else:
            self.counters.redrives += 1
        return parsed

    async def _route_one(self, event: Any, change: ChangeEvent, why: Redrive | None) -> Routed:
        try:
            if (
                change.type is not Source.EVENT_CREATE_UPDATE
                and change.event_code not in self.view.catalog
            ):
                await self._await_event(change.event_code)
            return route_change(
                change,
                self.view.account,
                self.view.catalog,
                now=utcnow(),
                received_at=time_received(event),
                redrive=why,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.counters.errors += 1
            log.exception("cannot route %s; recording it as failed", where(event))
            reason = f"internal error while routing: {describe(error)}"
            return self._route_failure(event, change, why, reason)

    def _rejected_redrive(self, event: Any, rejection: Rejection) -> OutcomeRecord | None:
        """The failed outcome of a redrive the pipeline cannot read, if it names its pair."""
        try:
            data = json.loads(event.message.value or b"")
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        change = data.get("change") if isinstance(data.get("change"), dict) else {}
        why = data.get("redrive") if isinstance(data.get("redrive"), dict) else {}
        assert isinstance(change, dict) and isinstance(why, dict)
        fields = {
            "change_id": change.get("changeId"),
            "flow_id": why.get("flow_id"),
            "occurred_at": change.get("occurredAt"),
            "event_code": change.get("eventCode"),
            "attempt": why.get("attempt"),
            "redrive_kind": why.get("kind"),
            "replay_id": why.get("replay_id"),
        }
        reason = f"redrive not readable by the pipeline: {rejection.path or '(record)'}: "
        return salvaged_failure(fields, reason + rejection.reason, retryable=False)

    async def _await_event(self, event_code: str) -> None:
        """Give control a moment to publish an event this worker has not seen (≤ 2 s, once per
        event and half minute, so a stream of changes for an unknown event does not stall)."""
        now = time.monotonic()
        last = self._waited.get(event_code)
        if last is not None and now - last < self.options.unknown_event_rewait_s:
            return
        self._waited[event_code] = now
        deadline = now + self.options.unknown_event_wait_s
        while event_code not in self.view.catalog:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await self.view.wait_next(remaining):
                break

    # ---- deliver ----------------------------------------------------------------------------

    async def deliver_events(self, events: Sequence[Any]) -> None:
        requests: list[DeliveryRequest] = []
        unreadable: list[OutcomeRecord] = []
        recorded = False
        try:
            await self.view.wait_ready()
            await self._replay_journal()
            await self.delivered.wait_loaded()
            for event in events:
                try:
                    requests.append(DeliveryRequest.loads(event.message.value))
                except Exception as error:
                    self.counters.errors += 1
                    unreadable.extend(self._unreadable_request(event, error))
            try:
                outcomes, unpublished = await self._deliver(requests)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # A bug, not a Marketo answer: still one outcome per request, retryable.
                self.counters.errors += 1
                log.exception("delivering a batch of %d failed unexpectedly", len(requests))
                outcomes = [internal_failure(r, error) for r in requests]
                unpublished = []
            outcomes = unreadable + outcomes
            await self.publish([(OUTCOMES.name, o.change_id, o) for o in outcomes])
            recorded = True
            await self.publisher.flush_calls()
            keys = self.delivered.note(unpublished)
            self.journal.append(keys)
            await self.publish([(DELIVERED.name, key, stamp) for key, stamp in keys])
            self._count(outcomes)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.counters.errors += 1
            log.exception("deliver batch failed unexpectedly")
            if not recorded:
                await self._deliver_batch_failed(requests, unreadable, error)

    async def _replay_journal(self) -> None:
        """Once per start, before delivering: this worker's journal of delivered-keys records
        back to `signal-delivered` (`marks_journal.py`), so what it delivered or was sending
        before a crash that took the broker's copy is known."""
        if self._journal_replayed:
            return
        records = net(await asyncio.to_thread(self.journal.records))
        for key, value in records:
            self.delivered.apply(key, value)
        await self.publish([(DELIVERED.name, key, value) for key, value in records])
        self._journal_replayed = True
        if records:
            log.info("%d delivered-keys records written back from the journal", len(records))

    async def _deliver_batch_failed(
        self,
        requests: Sequence[DeliveryRequest],
        unreadable: Sequence[OutcomeRecord],
        error: Exception,
    ) -> None:
        """Failed outcomes (technical, retryable) for a batch that broke before its outcomes
        were published. A pair delivered meanwhile has its key in the log already, so its retry
        ends as a duplicate, not a second send."""
        outcomes = [*unreadable, *(internal_failure(r, error) for r in requests)]
        try:
            await self.publish([(OUTCOMES.name, o.change_id, o) for o in outcomes])
            self._count(outcomes)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counters.unrecorded += len(outcomes)
            log.exception(
                "%d outcomes of a failed deliver batch could not be published (total %d)",
                len(outcomes),
                self.counters.unrecorded,
            )

    def _unreadable_request(self, event: Any, error: Exception) -> list[OutcomeRecord]:
        """The failed outcome of a delivery request that cannot be read, when its change and
        flow can: technical and retryable, since a retry routes the archived change again."""
        reason = f"unreadable delivery request: {describe(error)}"
        try:
            data = json.loads(event.message.value or b"")
        except (ValueError, UnicodeDecodeError):
            data = None
        outcome = salvaged_failure(data, reason, retryable=True) if isinstance(data, dict) else None
        if outcome is None:
            self.counters.unrecorded += 1
            log.error(
                "unreadable delivery request at %s names no change and flow; not recorded "
                "(total %d): %s",
                where(event),
                self.counters.unrecorded,
                reason,
            )
            return []
        log.error("unreadable delivery request at %s recorded as failed: %s", where(event), reason)
        return [outcome]

    async def _deliver(
        self, requests: list[DeliveryRequest]
    ) -> tuple[list[OutcomeRecord], list[str]]:
        """Outcomes for `requests`, and the delivered keys not written to the log yet."""
        if any(r.redrive_kind in ("recovery", "replay") for r in requests):
            # Control re-seeds delivered keys from its ledger before it re-drives (and before it
            # resumes a replay after a restart): read them.
            await self.delivered.sync(self.options.delivered_sync_s)
        fresh, duplicates = split_duplicates(requests, self.delivered)
        now = utcnow()
        outcomes = [duplicate_outcome(requests[i], now) for i in duplicates]
        if duplicates:
            self.counters.duplicates += len(duplicates)
            log.info(
                "%d duplicate deliveries skipped (total %d)",
                len(duplicates),
                self.counters.duplicates,
            )
        again = {i for i in fresh if self.delivered.is_sending(delivery_key(requests[i]))}
        by_connection: dict[str, list[int]] = defaultdict(list)
        for index in fresh:
            by_connection[requests[index].connection_id].append(index)
        written: set[str] = set()
        hooks = self._hooks(written)
        results = await asyncio.gather(
            *(
                self._deliver_connection(cid, [requests[i] for i in group], hooks)
                for cid, group in by_connection.items()
            )
        )
        unpublished: list[str] = []
        repeats = 0
        for group, group_outcomes in zip(by_connection.values(), results, strict=True):
            for index, outcome in zip(group, group_outcomes, strict=True):
                if outcome.status is OutcomeStatus.DELIVERED:
                    key = delivery_key(requests[index])
                    if key not in written:
                        unpublished.append(key)
                    if index in again and outcome.lead_result == VERIFIED:
                        self.counters.verified += 1
                    elif index in again:
                        repeats += 1
                        outcome = outcome.model_copy(update={"possible_repeat": True})
                outcomes.append(outcome)
        if repeats:
            self.counters.possible_repeats += repeats
            log.warning(
                "%d deliveries were marked sending by an attempt that recorded no answer; "
                "delivered again, outcomes marked as possible repeats (total %d)",
                repeats,
                self.counters.possible_repeats,
            )
        return outcomes, unpublished

    def _hooks(self, written: set[str]) -> CallHooks:
        """The delivered-keys log around each completing Marketo call; `written` collects the
        delivered keys published by the hooks."""

        async def on_sending(requests: Sequence[DeliveryRequest]) -> None:
            records = self.delivered.note_sending(delivery_key(r) for r in requests)
            self.journal.append(records)
            await self.publish([(DELIVERED.name, key, value) for key, value in records])

        async def on_acknowledged(requests: Sequence[DeliveryRequest]) -> None:
            keys = [delivery_key(r) for r in requests]
            records = self.delivered.note(keys)
            self.journal.append(records)
            await self.publish([(DELIVERED.name, key, value) for key, value in records])
            written.update(keys)

        async def on_refused(requests: Sequence[DeliveryRequest]) -> None:
            records = self.delivered.clear_sending(delivery_key(r) for r in requests)
            self.journal.append(records)
            await self.publish([(DELIVERED.name, key, value) for key, value in records])

        def sent_before(request: DeliveryRequest) -> datetime | None:
            at = self.delivered.sending_since(delivery_key(request))
            return None if at is None else datetime.fromtimestamp(at, UTC)

        return CallHooks(on_sending, on_acknowledged, on_refused, sent_before)

    def _count(self, outcomes: Sequence[OutcomeRecord]) -> None:
        c = self.counters
        c.outcomes += len(outcomes)
        for outcome in outcomes:
            if outcome.status is OutcomeStatus.DELIVERED:
                c.delivered += 1
            elif outcome.status is OutcomeStatus.FAILED:
                c.failed += 1
            elif outcome.status is OutcomeStatus.PARKED:
                c.parked += 1

    async def _deliver_connection(
        self, connection_id: str, requests: list[DeliveryRequest], hooks: CallHooks | None = None
    ) -> list[OutcomeRecord]:
        snapshot = self.view.snapshot
        connection = snapshot.account.connection(connection_id)
        if connection is None:
            return unreachable_outcomes(
                requests, f"connection {connection_id!r} is not in the configuration"
            )
        try:
            client = await self.pool.get(connection, snapshot.secret(connection_id))
        except Unusable as error:
            return unreachable_outcomes(requests, str(error))
        try:
            return await deliver_batch(
                requests, client, force_update=connection.force_update, hooks=hooks
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.counters.errors += 1
            log.exception("delivering %d requests to %s failed", len(requests), connection_id)
            return [internal_failure(r, error) for r in requests]


def create_app(options: PipelineOptions) -> faust.App:
    """A `signal-pipeline` Faust app; declare the topics (`stream.topics`) before starting it."""
    return Pipeline(options).app
