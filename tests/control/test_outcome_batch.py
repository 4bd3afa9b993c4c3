"""The record agent's Arrow batch (`outcome_batch`) is the batch the row objects make: same
columns, values, outcome ids and refusals as `outcome_rows` → `outcomes_table`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from stream.control.outcome_batch import outcome_values, outcomes_arrow
from stream.control.recorder import outcome_rows
from stream.messages import OutcomeRecord
from stream.store.arrow_batches import outcomes_table

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def record(**fields: Any) -> OutcomeRecord:
    base: dict[str, Any] = {
        "change_id": "c-1",
        "flow_id": "f1",
        "flow_name": "Flow 1",
        "mode": "live",
        "status": "delivered",
        "occurred_at": T0,
        "processed_at": T0 + timedelta(seconds=2),
        "registration_code": "R-1",
        "event_code": "EXPO",
        "action": "create_update_lead",
        "connection_id": "mkto",
        "marketo_lead_id": 7,
        "lead_result": "created",
        "latency_ms": 12.5,
        "request_id": "req-1",
    }
    return OutcomeRecord.model_validate({**base, **fields})


CASES = [
    record(),
    record(change_id="c-2", status="failed", marketo_lead_id=None, reason="HTTP 503"),
    record(change_id="c-3", status="failed", category="data", marketo_code="1003"),
    record(change_id="c-4", status="queued", siblings=["f2", "f1", "", "f3", "f2"]),
    record(change_id="c-5", replay_id="rp-1", attempt=3, possible_repeat=True),
    record(change_id="c-6", mode="test", status="would_send"),
    record(
        change_id="c-7",
        occurred_at=datetime(2026, 3, 1, 11, 0, tzinfo=timezone(timedelta(hours=2))),
        processed_at=datetime(2026, 3, 1, 4, 0, 1, 250, tzinfo=timezone(timedelta(hours=-5))),
    ),
    record(change_id="c-8", status="not_activated", action=None, connection_id=None),
]


def as_rows(records: list[OutcomeRecord]) -> list[Any]:
    rows = [row for r in records for row in outcome_rows(r)]
    return list({r.outcome_id: r for r in reversed(rows)}.values())[::-1]


def test_the_arrow_batch_equals_the_row_objects_batch() -> None:
    built = outcomes_arrow([v for r in CASES for v in outcome_values(r)])
    expected = outcomes_table(as_rows(CASES))
    assert built.schema == expected.schema
    assert built.to_pylist() == expected.to_pylist()
    assert built.num_rows == 10  # c-4 is queued with two sibling flows
    # Marketo's request id of the call behind each outcome, for tracing it with Marketo:
    # a sibling's queued row names no call.
    request_ids = {(r["change_id"], r["flow_id"]): r["request_id"] for r in built.to_pylist()}
    assert request_ids[("c-1", "f1")] == "req-1"
    assert request_ids[("c-4", "f1")] == "req-1" and request_ids[("c-4", "f3")] is None


def test_a_redelivered_outcome_is_one_row() -> None:
    twice = [CASES[0], CASES[1], CASES[0]]
    built = outcomes_arrow([v for r in twice for v in outcome_values(r)])
    assert built.to_pylist() == outcomes_table(as_rows(twice)).to_pylist()
    assert built.num_rows == 2


def test_an_empty_batch_has_the_outcome_columns() -> None:
    assert outcomes_arrow([]).schema == outcomes_table([]).schema


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": "sometimes"},
        {"attempt": 0},
        {"change_id": ""},
        {"flow_id": ""},
        {"processed_at": datetime(2026, 3, 1, 9, 30)},  # naive: refused
        {"occurred_at": datetime(2026, 3, 1, 9, 30)},
    ],
)
def test_refused_as_the_row_objects_refuse_it(fields: dict[str, Any]) -> None:
    bad = record(**fields)
    with pytest.raises(ValueError) as by_rows:
        outcome_rows(bad)
    with pytest.raises(ValueError) as by_values:
        outcome_values(bad)
    assert str(by_values.value) == str(by_rows.value)
