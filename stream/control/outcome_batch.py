"""Decoded outcome records → the ledger's Arrow batch, without a row object per outcome.

The record agent takes up to 5,000 outcomes a transaction and the ledger must keep up with
50,000 a second, so the per-outcome Python work is what bounds recording: building an
`OutcomeRow` (a validated dataclass) per outcome and then reading it back attribute by
attribute into Arrow cost about 36 µs an outcome, more than DuckDB's whole share. Here each
outcome becomes one plain tuple in `OUTCOME_COLUMNS` order, checked by the same rules
`OutcomeRow.__post_init__` applies (same messages, so an unreadable record is kept in
`rejected_records` with the same reasons), and the batch is transposed into typed Arrow arrays
once. `outcome_row`/`outcome_rows` in the recorder remain the row-object form of the same
mapping; tests hold the two equal.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Sequence
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from stream.messages import OutcomeRecord, SharedFlow
from stream.store.arrow_batches import OUTCOME_COLUMNS
from stream.store.rows import MODES, aware, outcome_key_at, utc

OutcomeValues = tuple[Any, ...]
"""One ledger row of an outcome, in `OUTCOME_COLUMNS` order."""

_SCHEMA = pa.schema(list(OUTCOME_COLUMNS.items()))
_TYPES = tuple(OUTCOME_COLUMNS.values())
_STATUS_QUEUED = "queued"


def _checked(outcome: OutcomeRecord) -> tuple[str, str, str, int]:
    """The record's key fields, checked in `OutcomeRow.__post_init__`'s order and words (each
    `also` flow's too, as the row it becomes)."""
    change_id = outcome.change_id
    flow_id = outcome.flow_id
    if not change_id:
        raise ValueError("change_id must not be empty")
    if not flow_id:
        raise ValueError("flow_id must not be empty")
    mode = outcome.mode
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    attempt = outcome.attempt
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    for group in outcome.also:
        for shared_id, _ in group.flows:
            if not shared_id:
                raise ValueError("flow_id must not be empty")
            if group.mode not in MODES:
                raise ValueError(f"mode must be one of {sorted(MODES)}, got {group.mode!r}")
    return change_id, flow_id, mode, attempt


def outcome_values(outcome: OutcomeRecord) -> list[OutcomeValues]:
    """The ledger rows of one outcome record, as `recorder.outcome_rows` makes them: its own,
    and for a `queued` record one per sibling flow (named by flow id, no action or
    connection). Raises ValueError for what `OutcomeRow` refuses."""
    change_id, flow_id, mode, attempt = _checked(outcome)
    status = outcome.status.value
    category = outcome.category.value if outcome.category is not None else None
    if status == "failed" and category is None:
        category = "technical"
    occurred_at = utc(outcome.occurred_at, "occurred_at")
    processed_at = utc(outcome.processed_at, "processed_at")
    replay_id = outcome.replay_id
    replayed = replay_id is not None
    stamp = processed_at.isoformat()
    tail = (
        status,
        category,
        outcome.reason,
        outcome.marketo_lead_id,
        outcome.lead_result,
        attempt,
        replayed,
        occurred_at,
        processed_at,
        outcome.latency_ms,
        outcome.request_id,
    )
    own = (
        outcome_key_at(change_id, flow_id, attempt, replayed, stamp, replay_id),
        change_id,
        flow_id,
        outcome.flow_name,
        mode,
        outcome.registration_code,
        outcome.event_code,
        outcome.action,
        *tail,
        outcome.connection_id,
        outcome.marketo_code,
        replay_id,
        outcome.possible_repeat,
    )
    if outcome.also:
        return [own, *(_shared_row(own, flow, stamp, replay_id) for flow in outcome.shared())]
    if status != _STATUS_QUEUED or not outcome.siblings:
        return [own]
    rows = [own]
    for flow in dict.fromkeys(outcome.siblings):
        if flow and flow != flow_id:
            rows.append(
                (
                    outcome_key_at(change_id, flow, attempt, replayed, stamp, replay_id),
                    change_id,
                    flow,
                    flow,
                    mode,
                    outcome.registration_code,
                    outcome.event_code,
                    None,
                    *tail[:-1],
                    None,  # request_id: a sibling's call is not this record's
                    None,
                    outcome.marketo_code,
                    replay_id,
                    outcome.possible_repeat,
                )
            )
    return rows


def _shared_row(
    own: OutcomeValues, flow: SharedFlow, stamp: str, replay_id: str | None
) -> OutcomeValues:
    """The row of an `also` flow: the record's own row with the flow's fields and key."""
    row = list(own)
    flow_id, flow_name, mode, action, connection_id = flow
    change_id, attempt, replayed = own[1], own[13], own[14]
    row[0] = outcome_key_at(change_id, flow_id, attempt, replayed, stamp, replay_id)
    row[2], row[3], row[4], row[7], row[19] = flow_id, flow_name, mode, action, connection_id
    return tuple(row)


def outcome_id_of(outcome: OutcomeRecord) -> str:
    """The outcome_id of the record's own row, after the checks `outcome_values` makes (same
    order, same messages). Raises ValueError for what `OutcomeRow` refuses."""
    check(outcome)
    replay_id = outcome.replay_id
    stamp = utc(outcome.processed_at, "processed_at").isoformat()
    return outcome_key_at(
        outcome.change_id,
        outcome.flow_id,
        outcome.attempt,
        replay_id is not None,
        stamp,
        replay_id,
    )


def check(outcome: OutcomeRecord) -> None:
    """The checks `outcome_values` and `outcome_id_of` make, in their order and words, with
    nothing computed: `outcomes_batch` keys the whole batch at once. Raises ValueError for
    what `OutcomeRow` refuses."""
    _checked(outcome)
    aware(outcome.occurred_at, "occurred_at")
    aware(outcome.processed_at, "processed_at")


_COLUMN_FIELDS = (
    "change_id",
    "flow_id",
    "flow_name",
    "mode",
    "registration_code",
    "event_code",
    "action",
    "status",
    "category",
    "reason",
    "marketo_lead_id",
    "lead_result",
    "attempt",
    "occurred_at",
    "processed_at",
    "latency_ms",
    "connection_id",
    "marketo_code",
    "replay_id",
    "possible_repeat",
    "request_id",
)
"""The record's fields that are ledger columns as they are (the enums are `StrEnum`s, which
Arrow takes as their text)."""
_FIELDS_OF = operator.attrgetter(*_COLUMN_FIELDS)

_WHOLE_SECOND = ".000000"
_UTC_SUFFIX = "+00:00"
_WALL_TIME = pa.timestamp("us")


def _iso_utc(stamps: pa.ChunkedArray) -> pa.ChunkedArray:
    """`datetime.isoformat` of UTC timestamps, from Arrow's text of them: Arrow writes
    "2026-03-01 09:30:02.000250" (six digits always), Python "2026-03-01T09:30:02.000250+00:00"
    with no fraction when it is zero. Read as wall times without a zone (the same instants in
    UTC): Arrow's text of a zoned timestamp goes through the zone database, 20 times slower;
    slices rather than a regular expression, which took 9 ms per 5,000."""
    text = pc.cast(stamps.cast(_WALL_TIME), pa.string())
    date = pc.utf8_slice_codeunits(text, 0, 10)
    whole = pc.utf8_slice_codeunits(text, 11, 19)
    fraction = pc.if_else(
        pc.ends_with(text, _WHOLE_SECOND), "", pc.utf8_slice_codeunits(text, 19, 26)
    )
    return pc.binary_join_element_wise(date, "T", whole, fraction, _UTC_SUFFIX, "")


def outcome_ids(table: pa.Table) -> pa.Array:
    """`outcome_key_at` of each row of an `OUTCOME_COLUMNS` table (its outcome_id column
    aside), computed a column at a time: the key's text is joined by Arrow and only the hash
    is taken per row. Per 5,000 outcomes this was 25 ms of `outcome_id_of` per record (two
    time-zone conversions and an ISO text each)."""
    stamp = _iso_utc(table["processed_at"])
    text = pc.binary_join_element_wise(
        table["change_id"],
        table["flow_id"],
        pc.cast(table["attempt"], pa.string()),
        pc.if_else(table["replayed"], "1", "0"),
        stamp,
        pc.fill_null(table["replay_id"], ""),
        "\x1f",
    )
    blake2b = hashlib.blake2b
    return pa.array(
        [blake2b(key, digest_size=16).hexdigest() for key in text.cast(pa.binary()).to_pylist()],
        type=_TYPES[0],
    )


def outcomes_batch(outcomes: Sequence[OutcomeRecord]) -> pa.Table:
    """`outcomes_arrow` of the records' `outcome_values`, built a column at a time from
    records `check` passed. The usual batch (no queued record naming siblings, no outcome
    twice) is one list per column straight from the records (one `attrgetter` call per
    record, then transposed) and its ids are keyed a column at a time (`outcome_ids`); any
    other batch takes the tuple path."""
    if not outcomes:
        return _SCHEMA.empty_table()
    if any(o.siblings for o in outcomes if o.status == _STATUS_QUEUED):
        return _by_rows(outcomes)
    fields = list(map(_FIELDS_OF, outcomes))
    if any(o.also for o in outcomes):
        fields = _with_shared(outcomes, fields)
    count = len(fields)
    values = dict(zip(_COLUMN_FIELDS, zip(*fields, strict=True), strict=True))
    arrays = {name: pa.array(column, type=OUTCOME_COLUMNS[name]) for name, column in values.items()}
    status = arrays["status"]
    # A failure without a category is a technical one (`outcome_row`).
    untold = pc.and_(pc.equal(status, "failed"), pc.is_null(arrays["category"]))
    arrays["category"] = pc.if_else(untold, "technical", arrays["category"])
    arrays["replayed"] = pc.is_valid(arrays["replay_id"])
    table = pa.Table.from_arrays(
        [arrays[name] for name in _SCHEMA.names[1:]], names=_SCHEMA.names[1:]
    )
    ids = outcome_ids(table)
    if pc.count_distinct(ids).as_py() != count:
        return _by_rows(outcomes)
    return pa.Table.from_arrays([ids, *table.columns], schema=_SCHEMA)


_FLOW_FIELDS = tuple(
    _COLUMN_FIELDS.index(name)
    for name in ("flow_id", "flow_name", "mode", "action", "connection_id")
)


def _with_shared(
    outcomes: Sequence[OutcomeRecord], fields: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """`fields` with, after each record's, one entry per `also` flow: the record's values with
    the flow's own (`outcome_values`' rows, a column tuple at a time)."""
    flow_id, flow_name, mode, action, connection_id = _FLOW_FIELDS
    out: list[tuple[Any, ...]] = []
    for outcome, own in zip(outcomes, fields, strict=True):
        out.append(own)
        if not outcome.also:
            continue
        row = list(own)
        for shared in outcome.shared():
            (
                row[flow_id],
                row[flow_name],
                row[mode],
                row[action],
                row[connection_id],
            ) = shared
            out.append(tuple(row))
    return out


def _by_rows(outcomes: Sequence[OutcomeRecord]) -> pa.Table:
    return outcomes_arrow([row for o in outcomes for row in outcome_values(o)])


def outcomes_arrow(rows: Sequence[OutcomeValues]) -> pa.Table:
    """The batch as `Store.record_outcomes` builds it from row objects: each outcome_id once,
    with its first row's values, in the order of its last row."""
    unique: dict[str, OutcomeValues] = {}
    for row in reversed(rows):
        unique[row[0]] = row
    if not unique:
        return _SCHEMA.empty_table()
    columns = zip(*reversed(unique.values()), strict=True)
    arrays = [pa.array(values, type=dtype) for values, dtype in zip(columns, _TYPES, strict=True)]
    return pa.Table.from_arrays(arrays, schema=_SCHEMA)


__all__ = [
    "OutcomeValues",
    "check",
    "outcome_id_of",
    "outcome_ids",
    "outcome_values",
    "outcomes_arrow",
    "outcomes_batch",
]
