"""Rows → Arrow tables for bulk inserts.

DuckDB inserts fastest from an Arrow table (`INSERT INTO t SELECT … FROM arrow_table`); one
batch becomes one table and one statement, never a loop of single-row inserts. Column types are
spelled out so an all-NULL column in a batch still has the table's type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pyarrow as pa  # type: ignore[import-untyped]

from stream.store.rows import (
    ApiCallRow,
    ChangeRow,
    OutcomeRow,
    RejectedRecordRow,
    RejectedRow,
    RetryItem,
)

R = TypeVar("R")

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()

CHANGE_COLUMNS: dict[str, pa.DataType] = {
    "change_id": STR,
    "type": STR,
    "account_code": STR,
    "event_code": STR,
    "registration_code": STR,
    "is_test": pa.bool_(),
    "occurred_at": TS,
    "received_at": TS,
    "source": STR,
    "kafka_partition": pa.int32(),
    "kafka_offset": pa.int64(),
    "payload": STR,
    "published_at": TS,
}

REJECTED_COLUMNS: dict[str, pa.DataType] = {
    "received_at": TS,
    "source": STR,
    "change_id": STR,
    "reasons": pa.list_(STR),
    "payload": STR,
    "kafka_partition": pa.int32(),
    "kafka_offset": pa.int64(),
}

REJECTED_RECORD_COLUMNS: dict[str, pa.DataType] = {
    "received_at": TS,
    "topic": STR,
    "agent": STR,
    "reasons": pa.list_(STR),
    "payload": STR,
    "kafka_partition": pa.int32(),
    "kafka_offset": pa.int64(),
}

OUTCOME_COLUMNS: dict[str, pa.DataType] = {
    "outcome_id": STR,
    "change_id": STR,
    "flow_id": STR,
    "flow_name": STR,
    "mode": STR,
    "registration_code": STR,
    "event_code": STR,
    "action": STR,
    "status": STR,
    "category": STR,
    "reason": STR,
    "marketo_lead_id": pa.int64(),
    "lead_result": STR,
    "attempt": pa.int32(),
    "replayed": pa.bool_(),
    "occurred_at": TS,
    "processed_at": TS,
    "latency_ms": pa.float64(),
    "request_id": STR,
    "connection_id": STR,
    "marketo_code": STR,
    "replay_id": STR,
    "possible_repeat": pa.bool_(),
}

API_CALL_COLUMNS: dict[str, pa.DataType] = {
    "connection_id": STR,
    "endpoint": STR,
    "method": STR,
    "started_at": TS,
    "duration_ms": pa.float64(),
    "http_status": pa.int32(),
    "marketo_error": STR,
    "batch_size": pa.int32(),
    "request_id": STR,
    "error_class": STR,
}

RETRY_COLUMNS: dict[str, pa.DataType] = {
    "change_id": STR,
    "flow_id": STR,
    "flow_name": STR,
    "integration": STR,
    "status": STR,
    "category": STR,
    "reason": STR,
    "attempts": pa.int32(),
    "next_attempt_at": TS,
    "last_error": STR,
    "created_at": TS,
    "updated_at": TS,
    "resubmitted_by": STR,
    "resubmitted_at": TS,
    "lease_owner": STR,
    "lease_until": TS,
}


def to_table(
    rows: Sequence[R],
    columns: dict[str, pa.DataType],
    getters: dict[str, Callable[[R], Any]] | None = None,
) -> pa.Table:
    """Column-wise build: one Python list per column, then one typed Arrow array each."""
    getters = getters or {}
    arrays = []
    for name, dtype in columns.items():
        get = getters.get(name)
        values = [get(r) for r in rows] if get else [getattr(r, name) for r in rows]
        arrays.append(pa.array(values, type=dtype))
    return pa.Table.from_arrays(arrays, schema=pa.schema(list(columns.items())))


def changes_table(rows: Sequence[ChangeRow]) -> pa.Table:
    return to_table(rows, CHANGE_COLUMNS)


def rejected_table(rows: Sequence[RejectedRow]) -> pa.Table:
    return to_table(rows, REJECTED_COLUMNS, {"reasons": lambda r: list(r.reasons)})


def rejected_records_table(rows: Sequence[RejectedRecordRow]) -> pa.Table:
    return to_table(rows, REJECTED_RECORD_COLUMNS, {"reasons": lambda r: list(r.reasons)})


def outcomes_table(rows: Sequence[OutcomeRow]) -> pa.Table:
    return to_table(rows, OUTCOME_COLUMNS)


def api_calls_table(rows: Sequence[ApiCallRow]) -> pa.Table:
    return to_table(rows, API_CALL_COLUMNS)


def retry_table(rows: Sequence[RetryItem]) -> pa.Table:
    return to_table(rows, RETRY_COLUMNS, {"created_at": lambda r: r.created_at or r.updated_at})
