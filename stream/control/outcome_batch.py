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

from collections.abc import Sequence
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]

from stream.messages import OutcomeRecord
from stream.store.arrow_batches import OUTCOME_COLUMNS
from stream.store.rows import MODES, outcome_key_at, utc

OutcomeValues = tuple[Any, ...]
"""One ledger row of an outcome, in `OUTCOME_COLUMNS` order."""

_SCHEMA = pa.schema(list(OUTCOME_COLUMNS.items()))
_TYPES = tuple(OUTCOME_COLUMNS.values())
_STATUS_QUEUED = "queued"


def _checked(outcome: OutcomeRecord) -> tuple[str, str, str, int]:
    """The record's key fields, checked in `OutcomeRow.__post_init__`'s order and words."""
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
        None,  # request_id: outcome_row leaves it unset
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
                    *tail,
                    None,
                    outcome.marketo_code,
                    replay_id,
                    outcome.possible_repeat,
                )
            )
    return rows


def outcome_id_of(outcome: OutcomeRecord) -> str:
    """The outcome_id of the record's own row, after the checks `outcome_values` makes (same
    order, same messages). Raises ValueError for what `OutcomeRow` refuses."""
    change_id, flow_id, _mode, attempt = _checked(outcome)
    utc(outcome.occurred_at, "occurred_at")
    replay_id = outcome.replay_id
    stamp = utc(outcome.processed_at, "processed_at").isoformat()
    return outcome_key_at(change_id, flow_id, attempt, replay_id is not None, stamp, replay_id)


def outcomes_batch(outcomes: Sequence[OutcomeRecord], ids: Sequence[str]) -> pa.Table:
    """`outcomes_arrow` of the records' `outcome_values`, built a column at a time: `ids` are
    the records' `outcome_id_of`, so each record was checked already. The usual batch (no
    queued record naming siblings, no outcome twice) is one list per column straight from the
    records, about half the time of a tuple per row transposed; any other batch takes the
    tuple path."""
    if len(set(ids)) != len(ids) or any(o.siblings for o in outcomes if o.status == "queued"):
        return outcomes_arrow([row for o in outcomes for row in outcome_values(o)])
    if not outcomes:
        return _SCHEMA.empty_table()
    replay_ids = [o.replay_id for o in outcomes]
    statuses = [o.status.value for o in outcomes]
    categories = [
        o.category.value if o.category is not None else ("technical" if s == "failed" else None)
        for o, s in zip(outcomes, statuses, strict=True)
    ]
    columns: dict[str, list[Any]] = {
        "outcome_id": list(ids),
        "change_id": [o.change_id for o in outcomes],
        "flow_id": [o.flow_id for o in outcomes],
        "flow_name": [o.flow_name for o in outcomes],
        "mode": [o.mode for o in outcomes],
        "registration_code": [o.registration_code for o in outcomes],
        "event_code": [o.event_code for o in outcomes],
        "action": [o.action for o in outcomes],
        "status": statuses,
        "category": categories,
        "reason": [o.reason for o in outcomes],
        "marketo_lead_id": [o.marketo_lead_id for o in outcomes],
        "lead_result": [o.lead_result for o in outcomes],
        "attempt": [o.attempt for o in outcomes],
        "replayed": [r is not None for r in replay_ids],
        # Arrow takes an aware datetime at its UTC instant, as `utc` would give it.
        "occurred_at": [o.occurred_at for o in outcomes],
        "processed_at": [o.processed_at for o in outcomes],
        "latency_ms": [o.latency_ms for o in outcomes],
        "request_id": [None] * len(outcomes),
        "connection_id": [o.connection_id for o in outcomes],
        "marketo_code": [o.marketo_code for o in outcomes],
        "replay_id": replay_ids,
        "possible_repeat": [o.possible_repeat for o in outcomes],
    }
    arrays = [pa.array(columns[name], type=dtype) for name, dtype in OUTCOME_COLUMNS.items()]
    return pa.Table.from_arrays(arrays, schema=_SCHEMA)


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
    "outcome_id_of",
    "outcome_values",
    "outcomes_arrow",
    "outcomes_batch",
]
