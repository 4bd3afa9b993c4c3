"""The pipeline's `deliver` stage (`signal-deliveries`): skip pairs already delivered, call
Marketo per connection (`deliver.py`), publish one outcome per request.

Apart from the worker's wiring (`app.py`) because delivering is a stage of its own, with the
delivered-keys log, the marks journal and the Marketo clients as its state. Around each
completing Marketo call it writes the pairs' "sending" marks, then their delivered keys as soon
as Marketo acknowledged the call (each awaited and journalled first), so a worker killed
mid-batch repeats at most the calls in flight; a pair found "sending" is delivered again with
`possible_repeat` unless Marketo's activity log shows it ran (`verify.py`). Nothing raises out of
a batch: an unreadable request that names its pair, and a batch that broke before its outcomes
were published, become `failed` outcomes (technical, retryable).

Batches are paced by Marketo's call budget (`RollingWindow.spacing`): after a batch that was not
full, the stage waits before taking the next one until the connection's budget has room for as
many calls as this batch made. A quiet stream goes out within the delivery window; a steady one
gets fewer, larger batches as calls grow scarce (a call costs the same whether it carries 10
leads or 300) instead of spending the window's 100 calls in a rush and stalling until the window
rolls over (50 changes/s: 8 calls/s, then nothing for seconds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from stream.marketo.errors import WITHDRAWN, CallWithdrawn
from stream.marketo.limits import RollingWindow
from stream.messages import DeliveryRequest, OutcomeRecord, OutcomeStatus, utcnow
from stream.pipeline.clients import ClientPool, Unusable
from stream.pipeline.deliver import CallHooks, deliver_batch, unreachable_outcomes
from stream.pipeline.delivered import SEP, delivery_key, duplicate_outcome, split_duplicates
from stream.pipeline.delivered_log import DeliveredLog
from stream.pipeline.marks_journal import MarksJournal, net
from stream.pipeline.publisher import RecordPublisher
from stream.pipeline.records import describe, internal_failure, salvaged_failure, where
from stream.pipeline.stage_base import StageBase
from stream.pipeline.verify import VERIFIED
from stream.topics import DELIVERED, DELIVERIES, OUTCOMES

log = logging.getLogger("signal.pipeline")

__all__ = ["FILL_WAIT_S", "MAX_PAUSE_S", "DeliverStage", "pause_after"]

MAX_PAUSE_S = 5.0
"""The longest pause between batches: the worker stops within it, and a pause that long already
means the window is nearly spent — the rate limiter holds the calls beyond it."""

FILL_WAIT_S = 1.0
"""A stream that fills a batch within this long waits for the batch to fill even while the
window has room. It comes faster than Marketo's budget can carry in partial batches (100 calls
per 20 s is about 375 leads/s in full ones), so the calls it would spend early are calls it lacks
later: in a burst, partial batches in the first window put the end a window later. The wait
costs such a stream at most this long."""

Windows = dict[str, tuple[RollingWindow, int]]
"""Per connection a batch called: its client's rolling window and the window's `sent` count before
the batch's calls."""


def pause_after(
    windows: Windows,
    *,
    taken: int,
    full: int,
    busy_s: float,
    window_s: float,
    since_last_s: float | None,
) -> float:
    """Seconds to wait after a batch of `taken` requests (`full` at most) that took `busy_s`
    before taking the next, which comes `window_s` (the delivery window) after that at the
    earliest.

    Each connection's window says when a batch of as many calls as this one made may go
    (`RollingWindow.spacing`); the stage waits for the latest. A full batch does not wait:
    waiting would not make the next one larger. Nor does any wait last longer than the stream
    needs to fill a batch at the rate this one came in (`taken` in `since_last_s`); and a
    stream that fills one within `FILL_WAIT_S` waits for it, whatever the window."""
    if taken >= full:
        return 0.0
    wait = max((w.spacing(w.sent - before) for w, before in windows.values()), default=0.0)
    if since_last_s is not None and taken > 0:
        fill = since_last_s * full / taken - busy_s
        wait = min(wait, fill)
        if fill <= FILL_WAIT_S:
            wait = fill
    return max(0.0, min(wait, MAX_PAUSE_S) - window_s)


class Fence:
    """Keeps a batch from making a completing call that another worker may be making too.

    Kafka gives a connection's partition to one member of the group at a time, but a member that
    is slow to rejoin a rebalance (finishing its batch) is dropped and its partition handed on
    while it still works: the new owner starts again from the last committed offset, so both may
    send the same campaign request, each deciding on what it knew at its batch's start. Before
    each completing call goes out the fence withdraws it (`CallWithdrawn`) when a rebalance has
    begun since the batch started, or when one of its pairs was delivered, or marked "sending",
    by someone else since then. A withdrawn request is queued again on `signal-deliveries`, so the
    partition's owner decides it with what the delivered-keys log then says: a duplicate, a
    verification, or a send.
    """

    def __init__(self, rebalances: int, sending: dict[str, float | None]) -> None:
        self.rebalances = rebalances
        self.sending = sending
        """Each fresh pair's "sending" mark as the batch began (None when it had none)."""
        self.mine: set[str] = set()
        """Pairs this batch marked "sending" itself."""
        self.reason: str | None = None

    def check(self, rebalances: int, keys: Iterable[str], delivered: DeliveredLog) -> None:
        """Raise `CallWithdrawn` when the call completing `keys` must not go out."""
        if rebalances != self.rebalances:
            self.reason = "a rebalance began while their batch was delivering"
            raise CallWithdrawn(
                "a rebalance of the pipeline's workers began while this batch was delivering; "
                "the connection's deliveries may belong to another worker now"
            )
        for key in keys:
            if key in self.mine:
                continue
            if key in delivered:
                self.reason = "another worker delivered them meanwhile"
                raise CallWithdrawn(f"another worker delivered {_pair(key)} meanwhile")
            if delivered.sending.get(key) != self.sending.get(key):
                self.reason = "another worker began sending them meanwhile"
                raise CallWithdrawn(f"another worker began sending {_pair(key)} meanwhile")


def _pair(key: str) -> str:
    change, _, rest = key.partition(SEP)
    return f"change {change!r}, flow {rest.split(SEP, 1)[0]!r}"


class DeliverStage(StageBase):
    """The deliver stage of a `Pipeline` worker, which provides the state declared here and
    `StageBase`'s."""

    publisher: RecordPublisher
    pool: ClientPool
    delivered: DeliveredLog
    journal: MarksJournal
    _journal_replayed: bool
    _synced_after: int = 0
    """The rebalance count (`rebalances`) when the delivered-keys log was last caught up with
    (the worker's first batch comes after its first rebalance: its joining the group)."""
    _batch_started: float | None = None
    """When the previous batch was taken (monotonic), for the rate `pause_after` reads."""

    async def deliver_events(self, events: Sequence[Any]) -> None:
        started = time.monotonic()
        windows: Windows = {}
        await self._deliver_events(events, windows)
        previous, self._batch_started = self._batch_started, started
        pause = pause_after(
            windows,
            taken=len(events),
            full=self.options.deliver_max,
            busy_s=time.monotonic() - started,
            window_s=self.options.deliver_within_s,
            since_last_s=None if previous is None else started - previous,
        )
        if pause > 0:
            await asyncio.sleep(pause)

    async def _deliver_events(self, events: Sequence[Any], windows: Windows) -> None:
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
            withdrawn: list[DeliveryRequest] = []
            try:
                outcomes, unpublished, withdrawn = await self._deliver(requests, windows)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # A bug, not a Marketo answer: still one outcome per request, retryable.
                self.counters.errors += 1
                log.exception("delivering a batch of %d failed unexpectedly", len(requests))
                outcomes = [internal_failure(r, error) for r in requests]
                unpublished = []
            outcomes = unreadable + outcomes
            await self.publish(
                [(OUTCOMES.name, o.change_id, o) for o in outcomes]
                + [(DELIVERIES.name, r.connection_id, r) for r in withdrawn]
            )
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
        self, requests: list[DeliveryRequest], windows: Windows | None = None
    ) -> tuple[list[OutcomeRecord], list[str], list[DeliveryRequest]]:
        """Outcomes for `requests`, the delivered keys not written to the log yet, and the
        requests whose call was withdrawn (`Fence`), to queue again; `windows` collects the
        rolling window of each connection called."""
        rebalances = self.rebalances()
        if rebalances != self._synced_after or any(
            r.redrive_kind in ("recovery", "replay") for r in requests
        ):
            # Control re-seeds delivered keys from its ledger before it re-drives (and before it
            # resumes a replay after a restart): read them. After a rebalance, this worker may
            # own a partition whose previous owner delivered up to a moment ago: read what it
            # wrote, not only what the log held when this worker started.
            await self.delivered.sync(self.options.delivered_sync_s)
            self._synced_after = rebalances
        fresh, duplicates = split_duplicates(requests, self.delivered)
        now = utcnow()
        outcomes = [duplicate_outcome(requests[i], now) for i in duplicates]
        withdrawn: list[DeliveryRequest] = []
        if duplicates:
            self.counters.duplicates += len(duplicates)
            log.info(
                "%d duplicate deliveries skipped (total %d)",
                len(duplicates),
                self.counters.duplicates,
            )
        keys = [delivery_key(r) for r in requests]
        again = {i for i in fresh if self.delivered.is_sending(keys[i])}
        by_connection: dict[str, list[int]] = defaultdict(list)
        for index in fresh:
            by_connection[requests[index].connection_id].append(index)
        written: set[str] = set()
        fence = Fence(
            rebalances,
            {keys[i]: self.delivered.sending.get(keys[i]) for i in fresh},
        )
        hooks = self._hooks(written, fence)
        results = await asyncio.gather(
            *(
                self._deliver_connection(cid, [requests[i] for i in group], hooks, windows)
                for cid, group in by_connection.items()
            )
        )
        unpublished: list[str] = []
        repeats = 0
        for group, group_outcomes in zip(by_connection.values(), results, strict=True):
            for index, outcome in zip(group, group_outcomes, strict=True):
                if outcome.status is OutcomeStatus.FAILED and outcome.marketo_code == WITHDRAWN:
                    withdrawn.append(requests[index])
                    continue
                if outcome.status is OutcomeStatus.DELIVERED:
                    key = keys[index]
                    if key not in written:
                        unpublished.append(key)
                    if index in again and outcome.lead_result == VERIFIED:
                        self.counters.verified += 1
                    elif index in again:
                        repeats += 1
                        outcome = outcome.model_copy(update={"possible_repeat": True})
                outcomes.append(outcome)
        if withdrawn:
            self.counters.withdrawn += len(withdrawn)
            log.warning(
                "%d deliveries withdrawn before their call went out (%s); queued again for "
                "whichever worker owns their connection now (total %d)",
                len(withdrawn),
                fence.reason or "another worker was delivering them",
                self.counters.withdrawn,
            )
        if repeats:
            self.counters.possible_repeats += repeats
            log.warning(
                "%d deliveries were marked sending by an attempt that recorded no answer; "
                "delivered again, outcomes marked as possible repeats (total %d)",
                repeats,
                self.counters.possible_repeats,
            )
        return outcomes, unpublished, withdrawn

    def rebalances(self) -> int:
        """How many rebalances of the consumer group this worker has begun (the worker reads
        its Faust app's count, raised as a revocation starts)."""
        return 0

    def _hooks(self, written: set[str], fence: Fence) -> CallHooks:
        """The delivered-keys log around each completing Marketo call; `written` collects the
        delivered keys published by the hooks. `fence` withdraws a call that another worker may
        be making too."""

        async def on_sending(requests: Sequence[DeliveryRequest]) -> None:
            keys = [delivery_key(r) for r in requests]
            fence.check(self.rebalances(), keys, self.delivered)
            records = self.delivered.note_sending(keys)
            fence.mine.update(key for key, _ in records)
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
        self,
        connection_id: str,
        requests: list[DeliveryRequest],
        hooks: CallHooks | None = None,
        windows: Windows | None = None,
    ) -> list[OutcomeRecord]:
        snapshot = self.view.snapshot
        connection = snapshot.account.connection(connection_id)
        if connection is None:
            return unreachable_outcomes(
                requests, f"connection {connection_id!r} is not in the configuration"
            )
        try:
            client = await self.pool.get(
                connection, snapshot.secret(connection_id), snapshot.tested.get(connection_id)
            )
        except Unusable as error:
            return unreachable_outcomes(requests, str(error))
        if windows is not None:
            window = client.limits.window
            windows[connection_id] = (window, window.sent)
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
