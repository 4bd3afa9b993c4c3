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


def outcome_values(outcome: OutcomeRecord) -> list[OutcomeValues]:
    """The ledger rows of one outcome record, as `recorder.outcome_rows` makes them: its own,
    and for a `queued` record one per sibling flow (named by flow id, no action or
    connection). Raises ValueError for what `OutcomeRow` refuses."""
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


__all__ = ["OutcomeValues", "outcome_values", "outcomes_arrow"]
