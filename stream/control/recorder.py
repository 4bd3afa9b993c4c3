"""What control's agents do with a batch, apart from Faust: parse, convert, write durably.

A batch is written in one store call (one transaction) and the call returns only once it is
committed; the agent acks the batch afterwards. A store failure is retried until it succeeds,
so the agent blocks (and the partition waits in Kafka) rather than acking unrecorded work. If
the worker is stopped while a write is still failing, the process exits at once without
committing offsets, so the batch is redelivered to the next worker.

No record is dropped with only a log line:
- an unreadable change is kept in `rejected_changes` (source `topic`) with its reasons;
- an unreadable outcome, Marketo-call or delivered-keys record is kept in `rejected_records`
  (topic, agent, partition, offset, raw text, reasons; a keyed record's payload carries its key
  and value);
- an unexpected error (anything but a store failure, which blocks as above) fails the batch.
  `guarded` runs it again, up to `batch_tries` times, since every write of the batch is
  idempotent (changes by change_id, outcomes by outcome_id, delivery marks by key) and the
  error may have been
  transient; if it keeps failing, every record of the batch is kept with the error (changes in
  `rejected_changes`, other topics in `rejected_records`) and only then is the batch acked. An
  error that does not go away would otherwise block its partition forever (the pipeline's
  outcomes and every later change waiting behind one bad batch) — keeping the records where an
  operator queries them, with the reason, is the lesser harm, and recovery re-drives a delivery
  whose outcome was lost that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from stream.certain.events import ChangeEvent
from stream.certain.parsing import MAX_PROBLEMS, Rejection, more_problems, parse_change
from stream.control.archive import Received, archive_valid
from stream.control.config_service import ConfigService
from stream.control.outcome_batch import check, outcomes_batch
from stream.control.retry_scheduler import DEFAULT_SCHEDULE, Jitter, RetrySchedule, plan_retry
from stream.delivery_keys import parse_key, parse_value
from stream.messages import ApiCallRecord, OutcomeRecord, OutcomeStatus, utcnow
from stream.store import (
    ApiCallRow,
    ChangeRow,
    OutcomeRow,
    RejectedRecordRow,
    RejectedRow,
    RetryItem,
    Store,
)
from stream.store.delivery_marks import DeliveryMark, record_delivery_marks
from stream.topics import API_CALLS, CHANGES, DELIVERED, OUTCOMES

log = logging.getLogger("signal.control.recorder")

T = TypeVar("T")

_NO_ITEM_WITHOUT_ONE = frozenset(
    {
        OutcomeStatus.DELIVERED,
        OutcomeStatus.NOT_ACTIVATED,
        OutcomeStatus.FILTERED_OUT,
        OutcomeStatus.SKIPPED_DUPLICATE,
        OutcomeStatus.WOULD_SEND,
    }
)
"""Outcomes `plan_retry` answers None for when the pair has no item: the statuses that end a
stay in the queue (they resolve an open item, never create one) and dry runs."""

_NOT_PLANNED = frozenset({OutcomeStatus.QUEUED, OutcomeStatus.WOULD_SEND})
"""Outcomes the record agent neither plans nor reads an item for: `plan_retry` plans nothing
after a queued outcome or a dry run, whatever the pair's item (nor after a replay's outcome,
also skipped). In a batch under load about half the outcomes are queued (the route step's
record of each delivery in flight): planning them built a `RetryItem` each to throw away,
about 30 ms of a 5,000-outcome batch, and read their pairs' items for nothing. The statuses
that resolve an item are still planned: the store's own resolution (`resolve_retries`) leaves
alone an item created after the outcome, which `plan_retry` resolves."""

EXIT_UNRECORDED = 75
"""Exit status when stopped with a batch the store never took (EX_TEMPFAIL)."""


@dataclass(frozen=True)
class RawRecord:
    """One Kafka record as an agent saw it."""

    value: bytes | None
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None
    """Kept only where the key carries meaning (`signal-delivered`)."""


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a stretch of work that only allocates.

    Decoding a batch makes some 20,000 tracked objects that all live until the batch is
    written; with the collector on, the collections their allocations set off (each going
    through every young object again, and now and then the whole heap) took about half the
    decoding time (32 against 60-87 ms per 5,000 outcomes). The stretch has no await, so no
    other coroutine runs while it is off, and the collector catches up once it is back on."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _hard_exit(what: str) -> None:
    log.critical("stopping with %s not recorded; exiting without committing offsets", what)
    logging.shutdown()
    os._exit(EXIT_UNRECORDED)


class Recorder:
    def __init__(
        self,
        store: Store,
        config: ConfigService,
        *,
        schedule: RetrySchedule = DEFAULT_SCHEDULE,
        jitter: Jitter = random.random,
        max_backoff_s: float = 5.0,
        on_unrecorded: Callable[[str], None] = _hard_exit,
        batch_tries: int = 3,
    ) -> None:
        self.store = store
        self.config = config
        self.schedule = schedule
        self.jitter = jitter
        self.max_backoff_s = max_backoff_s
        self.on_unrecorded = on_unrecorded
        self.batch_tries = batch_tries
        self.last_change_seen: datetime | None = None
        self.counts: dict[str, int] = {
            "changes": 0,
            "rejected": 0,
            "outcomes": 0,
            "retry_items": 0,
            "api_calls": 0,
            "invalid_outcomes": 0,
            "invalid_api_calls": 0,
            "marks": 0,
            "invalid_marks": 0,
            "write_failures": 0,
            "batch_failures": 0,
            "unprocessed": 0,
        }

    # --- durable writes --------------------------------------------------------------------

    async def durably(self, what: str, write: Callable[[], Awaitable[T]]) -> T:
        """Run `write` until it succeeds; see the module docstring for cancellation."""
        failures = 0
        while True:
            task: asyncio.Future[T] = asyncio.ensure_future(write())
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                try:
                    async with asyncio.timeout(30.0):
                        await task
                except BaseException:
                    self.on_unrecorded(what)
                raise
            except Exception as error:
                failures += 1
                self.counts["write_failures"] += 1
                log.error(
                    "writing %s failed (%s: %s); retrying, the batch is not acked",
                    what,
                    type(error).__name__,
                    error,
                )
                try:
                    await asyncio.sleep(min(self.max_backoff_s, 0.1 * 2**failures))
                except asyncio.CancelledError:
                    self.on_unrecorded(what)
                    raise

    async def guarded(
        self,
        agent: str,
        topic: str,
        batch: Sequence[RawRecord],
        work: Callable[[Sequence[RawRecord]], Awaitable[object]],
    ) -> None:
        """Run `work(batch)`; on an unexpected error run it again (`batch_tries` in all), then
        keep the batch's records in the ledger with the error. See the module docstring."""
        failures = 0
        while True:
            try:
                await work(batch)
                return
            except Exception as error:
                failures += 1
                self.counts["batch_failures"] += 1
                if failures >= self.batch_tries:
                    log.exception(
                        "agent %s: unexpected error, try %d of %d; keeping the batch's %d "
                        "records in the ledger with the error",
                        agent,
                        failures,
                        self.batch_tries,
                        len(batch),
                    )
                    await self.keep_unprocessed(agent, topic, batch, error)
                    return
                log.exception(
                    "agent %s: unexpected error, try %d of %d; the batch runs again",
                    agent,
                    failures,
                    self.batch_tries,
                )
                await asyncio.sleep(min(self.max_backoff_s, 0.1 * 2**failures))

    async def keep_unprocessed(
        self, agent: str, topic: str, batch: Sequence[RawRecord], error: BaseException
    ) -> None:
        """Every record of a batch that could not be processed, into the ledger with `error`."""
        now = utcnow()
        reason = (
            f"not processed: agent {agent} failed on its batch after {self.batch_tries} tries "
            f"({type(error).__name__}: {_brief(error)}); parts of the batch may be recorded"
        )
        if topic == CHANGES.name:
            changes = [_unprocessed_change(record, reason, now) for record in batch]
            await self.durably(
                f"{len(changes)} unprocessed changes", lambda: self.store.record_rejected(changes)
            )
        else:
            records = [_rejected_record(record, topic, agent, (reason,), now) for record in batch]
            await self.durably(
                f"{len(records)} unprocessed records",
                lambda: self.store.record_rejected_records(records),
            )
        self.counts["unprocessed"] += len(batch)

    # --- certain-changes -------------------------------------------------------------------

    async def archive(self, records: Sequence[RawRecord]) -> tuple[int, int]:
        """Archive valid changes (`archive_valid`, shared with the ingest API), keep invalid
        ones as rejected. Returns (changes archived, rejected)."""
        now = utcnow()
        valid: list[Received] = []
        rejected: list[RejectedRow] = []
        for record in records:
            parsed, text = _parse_record(record)
            if isinstance(parsed, Rejection):
                rejected.append(_rejected(parsed, record, text, now))
            else:
                valid.append(Received(parsed, text, record.partition, record.offset))

        async def write(rows: list[ChangeRow]) -> int:
            if not rows:
                return 0
            return await self.durably(
                f"{len(rows)} changes", lambda: self.store.archive_changes(rows)
            )

        added = await archive_valid(self.config, valid, now=now, source="topic", write=write)
        if rejected:
            await self.durably(
                f"{len(rejected)} rejected changes", lambda: self.store.record_rejected(rejected)
            )
        if valid:
            self.last_change_seen = now
        self.counts["changes"] += added
        self.counts["rejected"] += len(rejected)
        return added, len(rejected)

    # --- signal-outcomes -------------------------------------------------------------------

    async def record_outcomes(self, values: Sequence[RawRecord | bytes | None]) -> int:
        """Outcomes into the ledger and, through `plan_retry` (the retry queue's transition
        rule), their retry items, in one transaction; unreadable records into
        `rejected_records`. The batch goes to the store as one Arrow table built from the
        decoded records (`outcome_batch`), with no row object per outcome."""
        now = utcnow()
        outcomes: list[OutcomeRecord] = []
        unreadable: list[RejectedRecordRow] = []
        with _collector_paused():
            for record in map(_raw, values):
                try:
                    outcome = OutcomeRecord.loads(record.value or b"")
                    check(outcome)
                except (ValidationError, ValueError) as error:
                    self.counts["invalid_outcomes"] += 1
                    log.error(
                        "unreadable outcome record kept in rejected_records: %s", _brief(error)
                    )
                    unreadable.append(
                        _rejected_record(record, OUTCOMES.name, "record", _reasons(error), now)
                    )
                    continue
                outcomes.append(outcome)
        await self._keep_unreadable(unreadable)
        if not outcomes:
            return 0
        planning = [o for o in outcomes if o.status not in _NOT_PLANNED and o.replay_id is None]
        keys = {(o.change_id, o.flow_id) for o in planning}
        # A record standing for many flows plans only the flows with an item (a not-activated
        # outcome resolves an item, never makes one): its change's items are read, not a key
        # per flow.
        shared = {o.change_id for o in planning if o.also}
        # The read runs on a reader thread (DuckDB, without the GIL) while the Arrow batch is
        # built here: one step of the loop takes it to its thread. A failed read is read again
        # (`durably`), as before. A batch with nothing to plan reads nothing.
        reads: list[Awaitable[dict[tuple[str, str], RetryItem]]] = []

        def read_items() -> Awaitable[dict[tuple[str, str], RetryItem]]:
            if shared:
                return self.store.retry_items_with(keys, shared)
            return self.store.retry_items_of(keys)

        if keys:
            reads.append(asyncio.ensure_future(read_items()))
            await asyncio.sleep(0)
        try:
            with _collector_paused():
                table = outcomes_batch(outcomes)
        finally:
            known = (
                await self.durably(
                    "retry items read",
                    lambda: reads.pop() if reads else read_items(),
                )
                if keys
                else {}
            )
        planned: dict[tuple[str, str], RetryItem] = {}
        with _collector_paused():
            for outcome in _with_items(planning, known, planned):
                key = (outcome.change_id, outcome.flow_id)
                existing = planned.get(key) or known.get(key)
                if existing is None and outcome.status in _NO_ITEM_WITHOUT_ONE:
                    continue  # plan_retry: such an outcome only resolves an item it finds
                item = plan_retry(
                    outcome,
                    existing,
                    schedule=self.schedule,
                    now=now,
                    integration=outcome.connection_id,
                    jitter=self.jitter,
                )
                if item is not None:
                    planned[key] = item
        items = list(planned.values())
        added = await self.durably(
            f"{table.num_rows} outcomes", lambda: self.store.record_outcome_batch(table, items)
        )
        self.counts["outcomes"] += added
        self.counts["retry_items"] += len(items)
        return added

    # --- signal-api-calls ------------------------------------------------------------------

    async def record_api_calls(self, values: Sequence[RawRecord | bytes | None]) -> int:
        """Marketo calls into the ledger; unreadable records into `rejected_records`."""
        now = utcnow()
        rows: list[ApiCallRow] = []
        unreadable: list[RejectedRecordRow] = []
        for record in map(_raw, values):
            try:
                rows.append(api_call_row(ApiCallRecord.loads(record.value or b"")))
            except (ValidationError, ValueError) as error:
                self.counts["invalid_api_calls"] += 1
                log.error("unreadable API call record kept in rejected_records: %s", _brief(error))
                unreadable.append(
                    _rejected_record(record, API_CALLS.name, "api_calls", _reasons(error), now)
                )
        await self._keep_unreadable(unreadable)
        if rows:
            await self.durably(f"{len(rows)} API calls", lambda: self.store.record_api_calls(rows))
        self.counts["api_calls"] += len(rows)
        return len(rows)

    # --- signal-delivered --------------------------------------------------------------------

    async def record_marks(self, records: Sequence[RawRecord]) -> int:
        """Delivered keys, "sending" marks and tombstones of `signal-delivered` into
        `delivery_marks`, in log order, in one transaction; unreadable records (a key or value
        no writer of the log produces) into `rejected_records`. Returns the records kept as
        marks."""
        now = utcnow()
        marks: list[DeliveryMark] = []
        unreadable: list[RejectedRecordRow] = []
        for record in records:
            try:
                if record.key is None:
                    raise ValueError("a delivered-keys record without a key")
                key = record.key.decode("utf-8")
                parts = parse_key(key)
                read = parse_value(record.value)
            except ValueError as error:  # UnicodeDecodeError is one
                self.counts["invalid_marks"] += 1
                log.error("unreadable delivered-keys record kept in rejected_records: %s", error)
                unreadable.append(
                    _rejected_record(
                        record, DELIVERED.name, "delivery_marks", (_brief(error),), now
                    )
                )
                continue
            marks.append(
                DeliveryMark(
                    key, parts.change_id, parts.flow_id, parts.replay_id, read.state, read.at
                )
            )
        await self._keep_unreadable(unreadable)
        if marks:
            await self.durably(
                f"{len(marks)} delivery marks",
                lambda: record_delivery_marks(self.store, marks, now),
            )
        self.counts["marks"] += len(marks)
        return len(marks)

    async def _keep_unreadable(self, rows: list[RejectedRecordRow]) -> None:
        if rows:
            await self.durably(
                f"{len(rows)} unreadable records", lambda: self.store.record_rejected_records(rows)
            )


def _with_items(
    planning: Sequence[OutcomeRecord],
    known: dict[tuple[str, str], RetryItem],
    planned: dict[tuple[str, str], RetryItem],
) -> Iterator[OutcomeRecord]:
    """The outcomes to plan, in order, each record standing for several flows as the records
    of its pairs (`OutcomeRecord.pairs`) but only of the pairs with an item known or planned
    before it: a `not_activated` outcome of a pair without one plans nothing, so a record of a
    hundred flows costs a look-up per flow, not a record each."""
    for outcome in planning:
        if not outcome.also:
            yield outcome
            continue
        if outcome.status not in _NO_ITEM_WITHOUT_ONE:  # may make items: every pair
            yield from outcome.pairs()
            continue
        change_id = outcome.change_id
        own = outcome.model_copy(update={"also": []})
        yield own
        for flow in outcome.shared():
            key = (change_id, flow[0])
            if key in planned or key in known:
                yield own.for_flow(flow)


def outcome_row(outcome: OutcomeRecord) -> OutcomeRow:
    category = outcome.category.value if outcome.category is not None else None
    if outcome.status.value == "failed" and category is None:
        category = "technical"
    return OutcomeRow(
        change_id=outcome.change_id,
        flow_id=outcome.flow_id,
        flow_name=outcome.flow_name,
        mode=outcome.mode,  # type: ignore[arg-type]
        status=outcome.status.value,
        occurred_at=outcome.occurred_at,
        processed_at=outcome.processed_at,
        attempt=outcome.attempt,
        registration_code=outcome.registration_code,
        event_code=outcome.event_code,
        action=outcome.action,
        category=category,  # type: ignore[arg-type]
        reason=outcome.reason,
        marketo_lead_id=outcome.marketo_lead_id,
        lead_result=outcome.lead_result,
        latency_ms=outcome.latency_ms,
        replayed=outcome.replay_id is not None,
        connection_id=outcome.connection_id,
        marketo_code=outcome.marketo_code,
        replay_id=outcome.replay_id,
        possible_repeat=outcome.possible_repeat,
        request_id=outcome.request_id,
    )


def outcome_rows(outcome: OutcomeRecord) -> list[OutcomeRow]:
    """The ledger rows of one outcome record: its own, one per `also` flow (the same outcome
    with the flow's fields), and for a `queued` record one `queued` row per sibling flow the
    same route queued (named by flow id until its own record comes).
    The store never lets `queued` replace a final state, so a sibling already recorded keeps
    what it has."""
    if outcome.also:
        return [outcome_row(pair) for pair in outcome.pairs()]
    row = outcome_row(outcome)
    if outcome.status.value != "queued":
        return [row]
    siblings = [
        replace(
            row,
            flow_id=flow,
            flow_name=flow,
            action=None,
            connection_id=None,
            outcome_id="",
            request_id=None,
        )
        for flow in dict.fromkeys(outcome.siblings)
        if flow and flow != outcome.flow_id
    ]
    return [row, *siblings]


def api_call_row(call: ApiCallRecord) -> ApiCallRow:
    return ApiCallRow(
        connection_id=call.connection_id,
        endpoint=call.endpoint,
        started_at=call.started_at,
        duration_ms=max(0.0, call.duration_ms),
        method=call.method,
        http_status=call.http_status,
        marketo_error=call.marketo_error,
        batch_size=call.batch_size,
        request_id=call.request_id,
        error_class=call.error_class,
    )


def _parse_record(record: RawRecord) -> tuple[ChangeEvent | Rejection, str]:
    raw = record.value or b""
    try:
        text = raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as error:
        text = raw.decode("utf-8", errors="replace")
        reason = f"expected UTF-8 text, found an invalid byte at offset {error.start}"
        return Rejection(None, "", reason, text), text
    try:
        obj: Any = json.loads(text)
    except ValueError as error:
        return Rejection(None, "", f"invalid JSON: {error}", text), text
    return parse_change(obj), text


def _rejected(rejection: Rejection, record: RawRecord, text: str, now: datetime) -> RejectedRow:
    reasons = tuple(f"{p.path}: {p.reason}" if p.path else p.reason for p in rejection.problems)
    change_id = rejection.raw.get("changeId") if isinstance(rejection.raw, dict) else None
    return RejectedRow(
        received_at=now,
        reasons=reasons or (rejection.reason,),
        payload=text,
        source="topic",
        change_id=change_id if isinstance(change_id, str) else None,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
    )


def _raw(value: RawRecord | bytes | None) -> RawRecord:
    return value if isinstance(value, RawRecord) else RawRecord(value)


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", errors="replace")


def _reasons(error: Exception) -> tuple[str, ...]:
    """One reason per problem: pydantic's field errors by path, else the error's first line; the
    first `MAX_PROBLEMS` and a count of the rest, as a rejected change keeps them."""
    if isinstance(error, ValidationError):
        found = tuple(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
            for e in error.errors(include_url=False)[:MAX_PROBLEMS]
        )
        more = more_problems(error.error_count(), len(found))
        if more is not None:
            found += (more,)
        if found:
            return found
    return (_brief(error),)


def _rejected_record(
    record: RawRecord, topic: str, agent: str, reasons: tuple[str, ...], now: datetime
) -> RejectedRecordRow:
    payload = _text(record.value)
    if record.key is not None:
        value = None if record.value is None else payload
        payload = json.dumps({"key": _text(record.key), "value": value})
    return RejectedRecordRow(
        received_at=now,
        topic=topic,
        agent=agent,
        reasons=reasons,
        payload=payload,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
    )


def _unprocessed_change(record: RawRecord, reason: str, now: datetime) -> RejectedRow:
    text = _text(record.value)
    change_id = None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("changeId"), str):
        change_id = value["changeId"]
    return RejectedRow(
        received_at=now,
        reasons=(reason,),
        payload=text,
        source="topic",
        change_id=change_id,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
    )


def _brief(error: BaseException) -> str:
    text = str(error).splitlines()
    return text[0][:200] if text else type(error).__name__
