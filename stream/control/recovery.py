"""Recovery: control re-drives what the ledger holds without a final outcome (DESIGN 2, "Crash
contract").

DuckDB is the source of truth and the broker a transport that may forget: the embedded broker
loses every topic, consumer offset and the compacted `signal-delivered` topic when it dies, and
a process killed mid-batch leaves work half done. On start, and then every `every_s`, recovery:

1. **re-seeds delivered keys** (first, once per start, before any redrive): every delivery the
   ledger knows of within the horizon — recorded outcomes, and the delivered keys control kept
   from `signal-delivered` (`delivery_marks`), which run ahead of the outcomes — is written back
   to `signal-delivered`, in the pipeline's key format, and so is every "sending" mark without a
   delivery (`sending:<epoch>`); the broker's acknowledgements are awaited. A re-driven pair
   that was in fact delivered is recognised as a duplicate instead of being sent again, and one
   whose call was in flight at a crash is delivered again as a possible repeat, counted;
2. **publishes the outbox**: changes the ingest API accepted and committed but the broker never
   acknowledged go to `certain-changes` (keyed like ingest) and are marked published. The outbox
   is published whatever its age: a change answered with 202 must reach the pipeline;
3. **re-drives queued pairs**: a (change, flow) routed to Marketo (`queued`) longer than the
   grace ago with no answer is re-driven for that flow (kind `recovery`, same attempt and
   replay), so the delivered-keys check decides whether it still needs sending;
4. **re-drives unrouted changes**: a change published longer than the grace ago with no outcome
   for any flow is evaluated with the pure core against control's configuration and catalog;
   each active, complete flow that would act on it (anything but "not activated": a delivery, a
   filter, a data failure — outcomes an operator expects to see) is re-driven. A change no flow
   would act on gets a `nothing_expected` row in the recovery log and is not evaluated again.
   An evaluation that cannot be trusted decides nothing: a change whose event control's catalog
   does not hold (its test mode and setup unknown, so every flow that watches it says "not
   activated") is *deferred* — logged, and evaluated again a grace period later — never marked
   as expecting nothing. A deferral is bounded: a change that waited `defer_max` (since it was
   first deferred), or that would make more than `defer_limit` changes wait at once, is given
   up on: each flow waiting for the event gets a `failed` outcome (category data, not retried
   automatically, held in the retry queue for an operator's resubmit once the event is known)
   with the reason, published to `signal-outcomes` like any outcome, and the deferral is closed
   in the log (`deferral_expired`). Both counts are in metrics.

Only changes received within the horizon are looked at (queued pairs and unrouted changes).
The grace also runs from when this control started: outcomes produced while it was down wait
in `signal-outcomes` for its record agent, so nothing is overdue before it had a grace period
to record them (the outbox is published at once: nothing else would publish it). Against a
broker started empty for this control (`fresh_broker`: `csignal run`'s embedded broker at the
run's start, after it healed or rolled over) neither wait applies to what came before the
start: it went with the old broker and pipeline, nothing of it is in flight or waits on
`signal-outcomes`, so the first scan re-drives it instead of a grace later.
A pair's redrives wait ever longer for an answer (`RecoveryPolicy.redrive_wait`: the grace,
then twice as long each time), at most `max_redrives` of them; after that
it is *stranded*: recorded in the log, counted in metrics, never silently dropped. Each scan
takes at most `batch_size` of each kind and goes again at once when a batch was full.

The decisions (`decide`, `plan_unrouted`: `stream.control.recovery_plan`) are pure functions of
their inputs and a clock; the ledger is read and written through `stream.store.recovery` (off
the event loop). A scan that fails (broker down, store error) is logged and counted, and the
next period tries again: nothing escapes the loop, so the worker keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from aiokafka import AIOKafkaProducer

from config.models import Account
from stream.certain.events import ChangeEvent
from stream.control.archive import publishable
from stream.control.periodic import Periodic
from stream.control.recovery_plan import (
    KIND,
    Decision,
    RecoveryPolicy,
    UnroutedPlan,
    decide,
    deferral_outcomes,
    deferral_start,
    plan_unrouted,
    span,
    waiting_flows,
)
from stream.control.redrive import (
    Clock,
    ConfigSource,
    parse_archived,
    redrive_record,
    utc_now,
)
from stream.core.catalog import EventCatalog
from stream.delivery_keys import delivered_value, delivery_key, sending_value
from stream.messages import Redrive
from stream.metrics.recovery import RecoveryStatus
from stream.store import ChangeRow, Store
from stream.store.delivery_marks import prune_delivery_marks, stored_marks
from stream.store.recovery import (
    DEFERRED_MARKER,
    QueuedPair,
    UnroutedChange,
    deferrals_waiting,
    delivered_keys,
    ledger_figures,
    note_deferral_expired,
    note_deferred,
    note_nothing_expected,
    note_redriven,
    note_stranded,
    queued_overdue,
    unrouted_changes,
)
from stream.store.rows import RejectedRow

log = logging.getLogger("signal.control.recovery")

__all__ = [
    "PRUNE_EVERY",
    "Publish",
    "Recovery",
    "RecoveryPolicy",
    "ScanResult",
    "publish_to",
]

Records = Sequence[tuple[bytes, bytes]]
Publish = Callable[[Records], Awaitable[None]]
"""Send (key, value) records to one topic; returns once the broker acknowledged all."""

#: How often a running control forgets delivery marks older than the horizon.
PRUNE_EVERY = timedelta(hours=1)


@dataclass
class ScanResult:
    published: int = 0
    redriven_queued: int = 0
    redriven_unrouted: int = 0
    stranded: int = 0
    nothing_expected: int = 0
    deferred: int = 0
    deferral_expired: int = 0
    """Deferred changes given up on in this scan (their failed outcomes published)."""
    full: bool = False
    """A batch was full and acted on: more may be waiting, scan again without waiting."""

    @property
    def redriven(self) -> int:
        return self.redriven_queued + self.redriven_unrouted


def publish_to(producer: AIOKafkaProducer, topic: str) -> Publish:
    """A `Publish` for one topic through `producer` (acks as the producer was configured)."""

    async def publish(records: Records) -> None:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)

    return publish


@dataclass
class _Counters:
    scans: int = 0
    failed_scans: int = 0
    last_scan_at: datetime | None = None
    last_error: str | None = None
    reseeded_keys: int | None = None
    reseed_s: float | None = None
    figures: RecoveryStatus | None = field(default=None)


class Recovery(Periodic):
    """Re-seeds delivered keys, publishes the outbox and re-drives what has no final outcome;
    see the module docstring."""

    task_name = "recovery"

    def __init__(
        self,
        store: Store,
        config: ConfigSource,
        *,
        publish_changes: Publish,
        publish_redrives: Publish,
        publish_delivered: Publish,
        publish_outcomes: Publish | None = None,
        policy: RecoveryPolicy | None = None,
        clock: Clock = utc_now,
        started_at: datetime | None = None,
        fresh_broker: bool = False,
    ) -> None:
        """`started_at`: when this control started (default: now, by `clock`).
        `publish_outcomes` (to `signal-outcomes`) records given-up deferrals; without it a
        deferred change keeps waiting, whatever its bounds (counted in `deferred`).
        `fresh_broker`: the broker was started empty for this control (`csignal run`'s embedded
        broker), so what happened before `started_at` is not waited for (`within_grace`)."""
        self._store = store
        self._config = config
        self._publish_changes = publish_changes
        self._publish_redrives = publish_redrives
        self._publish_delivered = publish_delivered
        self._publish_outcomes = publish_outcomes
        self.policy = policy or RecoveryPolicy()
        self._clock = clock
        self.started_at = started_at if started_at is not None else clock()
        self.lost_before = self.started_at if fresh_broker else None
        self._counters = _Counters()
        super().__init__()
        self._pruned_at: datetime | None = None
        self._reseeded = asyncio.Event()

    @property
    def reseeded(self) -> bool:
        return self._counters.reseeded_keys is not None

    async def wait_reseeded(self) -> None:
        """Return once the delivered keys were re-seeded (what a resumed replay waits for)."""
        await self._reseeded.wait()

    def status(self) -> RecoveryStatus:
        """The figures of the last scan and the service's own counters, for metrics."""
        p, c = self.policy, self._counters
        base = c.figures or RecoveryStatus(
            grace_s=p.grace.total_seconds(),
            horizon_s=p.horizon.total_seconds(),
            every_s=p.every_s,
            max_redrives=p.max_redrives,
            defer_max_s=p.defer_max.total_seconds(),
            defer_limit=p.defer_limit,
        )
        return replace(
            base,
            scans=c.scans,
            failed_scans=c.failed_scans,
            last_scan_at=c.last_scan_at,
            last_error=c.last_error,
            reseeded_keys=c.reseeded_keys,
            reseed_s=c.reseed_s,
        )

    async def _send(self, publish: Publish, records: Records) -> None:
        if records:
            async with asyncio.timeout(self.policy.publish_timeout_s):
                await publish(records)

    # -- 1. delivered keys ---------------------------------------------------------------------

    async def reseed(self, now: datetime | None = None) -> int:
        """Write the ledger's delivered keys and "sending" marks within the horizon to
        `signal-delivered` and wait for the broker's acknowledgements; returns the number of
        records. Marks older than the horizon are forgotten first."""
        now = now or self._clock()
        started = time.monotonic()
        since = now - self.policy.horizon
        await self._prune(now)
        keys = await delivered_keys(self._store, since=since)
        marks = await stored_marks(self._store, since=since)
        read_s = time.monotonic() - started
        values = {
            delivery_key(k.change_id, k.flow_id, k.replay_id): delivered_value(k.delivered_at)
            for k in keys
        }
        for mark in marks:
            if mark.state == "delivered":
                values.setdefault(mark.key, delivered_value(mark.marked_at))
        sending = 0
        for mark in marks:
            if mark.state == "sending" and mark.key not in values:
                values[mark.key] = sending_value(mark.marked_at)
                sending += 1
        records = [(key.encode(), value) for key, value in values.items()]
        chunk = self.policy.reseed_chunk
        for start in range(0, len(records), chunk):
            await self._send(self._publish_delivered, records[start : start + chunk])
        elapsed = time.monotonic() - started
        self._counters.reseeded_keys = len(records)
        self._counters.reseed_s = elapsed
        self._reseeded.set()
        log.info(
            "re-seeded %d delivered keys and %d sending marks from the ledger in %.2f s (read "
            "%.2f s, acknowledged %.2f s)",
            len(records) - sending,
            sending,
            elapsed,
            read_s,
            elapsed - read_s,
        )
        return len(records)

    # -- 2. the outbox -------------------------------------------------------------------------

    async def _outbox(self, now: datetime) -> tuple[int, bool]:
        limit = self.policy.batch_size
        rows = await self._store.unpublished_changes(now - self.policy.grace, limit)
        if not rows:
            return 0, False
        fit, unfit = publishable(rows)
        if unfit:
            await self._store.set_aside_unpublishable([_set_aside(*each) for each in unfit])
            for row, reason in unfit:
                log.error("change %r moved to rejected_changes: %s", row.change_id, reason)
        if fit:
            await self._send(self._publish_changes, [record for _, record in fit])
            await self._store.mark_published([row.change_id for row, _ in fit], now)
            log.warning("published %d accepted changes the broker had not acknowledged", len(fit))
        return len(fit), len(rows) >= limit

    # -- 3. queued pairs -----------------------------------------------------------------------

    async def _queued(self, now: datetime, result: ScanResult) -> None:
        p = self.policy
        pairs = await queued_overdue(
            self._store, cutoff=self._cutoff(now), horizon=now - p.horizon, limit=p.batch_size
        )
        redrive: list[QueuedPair] = []
        stranded: list[QueuedPair] = []
        for pair in pairs:
            decision = decide(self._since(pair.since), pair.entry, now, p, self.lost_before)
            if decision is Decision.REDRIVE:
                redrive.append(pair)
            elif decision is Decision.STRANDED:
                stranded.append(pair)
        # a full batch of pairs that must still wait is no reason to scan again at once
        if len(pairs) >= p.batch_size and (redrive or stranded):
            result.full = True
        if redrive:
            rows = await self._store.get_changes(pair.change_id for pair in redrive)
            sent = [pair for pair in redrive if pair.change_id in rows]
            records = [
                redrive_record(
                    rows[pair.change_id],
                    Redrive(
                        flow_id=pair.flow_id,
                        attempt=pair.attempt,
                        kind=KIND,
                        replay_id=pair.replay_id,
                    ),
                )
                for pair in sent
            ]
            await self._send(self._publish_redrives, records)
            await note_redriven(
                self._store, [(x.change_id, x.flow_id, "queued") for x in sent], now
            )
            result.redriven_queued += len(sent)
            log.warning("re-drove %d pairs queued longer than %s", len(sent), p.grace)
        if stranded:
            await note_stranded(
                self._store, [(x.change_id, x.flow_id, "queued") for x in stranded], now
            )
            result.stranded += len(stranded)
            log.error(
                "gave up on %d queued pairs after %d redrives (stranded), e.g. %s/%s",
                len(stranded),
                p.max_redrives,
                stranded[0].change_id,
                stranded[0].flow_id,
            )

    # -- 4. unrouted changes -------------------------------------------------------------------

    async def _unrouted(self, now: datetime, result: ScanResult) -> None:
        p = self.policy
        changes = await unrouted_changes(
            self._store, cutoff=self._cutoff(now), horizon=now - p.horizon, limit=p.batch_size
        )
        if not changes:
            return
        account, catalog = self._config.account, self._config.catalog
        records: list[tuple[bytes, bytes]] = []
        redriven: list[tuple[str, str, str]] = []
        stranded: list[tuple[str, str, str]] = []
        nothing: list[tuple[str, str]] = []
        undecided: list[tuple[UnroutedChange, str]] = []
        for index, change in enumerate(changes):
            if index % 100 == 99:
                await asyncio.sleep(0)  # evaluation is pure CPU: let the loop breathe
            if len(redriven) >= p.batch_size:
                result.full = True
                break
            plan = self._plan(change, account, catalog, now)
            if plan.nothing_expected is not None:
                nothing.append((change.row.change_id, plan.nothing_expected))
            if plan.deferred is not None:
                undecided.append((change, plan.deferred))
            for flow_id in plan.redrive:
                records.append(
                    redrive_record(change.row, Redrive(flow_id=flow_id, attempt=1, kind=KIND))
                )
                redriven.append((change.row.change_id, flow_id, "unrouted"))
            stranded.extend((change.row.change_id, f, "unrouted") for f in plan.stranded)
        if len(changes) >= p.batch_size and (records or stranded or nothing or undecided):
            result.full = True
        deferred = await self._bound_deferrals(undecided, account, catalog, now, result)
        if records:
            await self._send(self._publish_redrives, records)
            await note_redriven(self._store, redriven, now)
            result.redriven_unrouted += len(redriven)
            log.warning(
                "re-drove %d (change, flow) pairs of changes without any outcome after %s",
                len(redriven),
                p.grace,
            )
        if stranded:
            await note_stranded(self._store, stranded, now)
            result.stranded += len(stranded)
            log.error(
                "gave up on %d pairs of unrouted changes after %d redrives (stranded)",
                len(stranded),
                p.max_redrives,
            )
        if nothing:
            await note_nothing_expected(self._store, nothing, now)
            result.nothing_expected += len(nothing)
        if deferred:
            # logged, so the next scans look at other changes first; again after the grace
            await note_deferred(self._store, deferred, now)
            result.deferred += len(deferred)
            log.warning(
                "%d changes without any outcome left undecided for now, e.g. %s: %s",
                len(deferred),
                deferred[0][0],
                deferred[0][1],
            )

    async def _bound_deferrals(
        self,
        undecided: Sequence[tuple[UnroutedChange, str]],
        account: Account,
        catalog: EventCatalog,
        now: datetime,
        result: ScanResult,
    ) -> list[tuple[str, str]]:
        """Give up on the deferrals past their bounds (failed outcomes published, deferral
        closed); returns the (change_id, why) that keep waiting."""
        p = self.policy
        if not undecided or self._publish_outcomes is None:
            return [(change.row.change_id, why) for change, why in undecided]
        room = p.defer_limit - await deferrals_waiting(self._store)
        waiting: list[tuple[str, str]] = []
        expired: list[tuple[ChangeEvent, str]] = []
        for change, why in undecided:
            parsed = parse_archived(change.row)
            waited = now - deferral_start(change.entries, now)
            new = DEFERRED_MARKER not in change.entries
            if isinstance(parsed, str):  # deferred changes parse; kept waiting if not
                waiting.append((change.row.change_id, why))
            elif waited >= p.defer_max:
                expired.append(
                    (
                        parsed,
                        f"{why}; gave up after waiting {span(waited)} (at most "
                        f"{span(p.defer_max)}): resubmit once the event is known",
                    )
                )
            elif new and room <= 0:
                expired.append(
                    (
                        parsed,
                        f"{why}; gave up at once: {p.defer_limit:,} changes already wait "
                        "for what control does not know: resubmit once the event is known",
                    )
                )
            else:
                room -= 1 if new else 0
                waiting.append((change.row.change_id, why))
        if expired:
            outcomes = [
                o
                for change, reason in expired
                for o in deferral_outcomes(
                    change, waiting_flows(change, account, catalog), reason, now
                )
            ]
            await self._send(
                self._publish_outcomes, [(o.change_id.encode(), o.dumps()) for o in outcomes]
            )
            await note_deferral_expired(
                self._store, [(c.change_id, reason) for c, reason in expired], now
            )
            result.deferral_expired += len(expired)
            log.error(
                "gave up on %d deferred changes (%d failed outcomes recorded), e.g. %s: %s",
                len(expired),
                len(outcomes),
                expired[0][0].change_id,
                expired[0][1],
            )
        return waiting

    def _plan(
        self, change: UnroutedChange, account: Account, catalog: EventCatalog, now: datetime
    ) -> UnroutedPlan:
        return plan_unrouted(
            parse_archived(change.row),
            self._since(change.since),
            change.entries,
            account,
            catalog,
            now,
            self.policy,
            self.lost_before,
        )

    def _cutoff(self, now: datetime) -> datetime:
        """What the ledger is asked for: pending since before this (`within_grace`)."""
        cutoff = now - self.policy.grace
        return cutoff if self.lost_before is None else max(cutoff, self.lost_before)

    def _since(self, since: datetime) -> datetime:
        """Since when a pair or change counts as waiting. The grace also runs from this
        control's start, as outcomes produced while it was down wait on `signal-outcomes` for
        its record agent; on a fresh broker none do."""
        return since if self.lost_before is not None else max(since, self.started_at)

    # -- one scan --------------------------------------------------------------------------------

    async def scan(self, now: datetime | None = None) -> ScanResult:
        """One round: re-seed (until done once), outbox, queued pairs, unrouted changes, then
        refresh the figures. Raises what failed; the figures are refreshed either way."""
        now = now or self._clock()
        c = self._counters
        c.scans += 1
        c.last_scan_at = now
        result = ScanResult()
        try:
            if not self.reseeded:
                await self.reseed(now)
            result.published, full = await self._outbox(now)
            result.full = full
            await self._queued(now, result)
            await self._unrouted(now, result)
            if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
                await self._prune(now)
        except Exception as error:
            c.failed_scans += 1
            c.last_error = f"{type(error).__name__}: {error}"
            raise
        else:
            c.last_error = None
        finally:
            await self._refresh(now)
        return result

    async def _prune(self, now: datetime) -> None:
        """Forget delivery marks older than the horizon: at start, and hourly after, so a
        control that runs for months keeps a week of marks, not all of them."""
        await prune_delivery_marks(self._store, before=now - self.policy.horizon)
        self._pruned_at = now

    async def _refresh(self, now: datetime) -> None:
        p = self.policy
        try:
            figures = await ledger_figures(
                self._store, cutoff=now - p.grace, horizon=now - p.horizon
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("recovery figures not refreshed: %s", error)
            return
        oldest = None
        if figures.oldest is not None:
            oldest = max(0.0, (now - figures.oldest).total_seconds())
        self._counters.figures = RecoveryStatus(
            grace_s=p.grace.total_seconds(),
            horizon_s=p.horizon.total_seconds(),
            every_s=p.every_s,
            max_redrives=p.max_redrives,
            unpublished=figures.unpublished,
            unrouted=figures.unrouted,
            queued_overdue=figures.queued_overdue,
            redriven_total=figures.redriven_total,
            stranded=figures.stranded,
            nothing_expected=figures.nothing_expected,
            oldest_age_s=oldest,
            defer_max_s=p.defer_max.total_seconds(),
            defer_limit=p.defer_limit,
            deferred=figures.deferred,
            deferral_expired=figures.deferral_expired,
        )

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Scan on start and every period until cancelled; a failed scan is logged and the next
        period tries again."""
        while True:
            again = False
            try:
                again = (await self.scan()).full
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.error(
                    "recovery scan failed (%s: %s); trying again in %.0f s",
                    type(error).__name__,
                    error,
                    self.policy.every_s,
                )
            if again:
                continue
            await self.pause(self.policy.every_s)


def _set_aside(row: ChangeRow, reason: str) -> RejectedRow:
    """The `rejected_changes` row of an outbox change the broker can never take."""
    return RejectedRow(
        received_at=row.received_at,
        reasons=(f"accepted, then set aside from the outbox unpublished: {reason}",),
        payload=row.payload,
        source=row.source,
        change_id=row.change_id,
    )
