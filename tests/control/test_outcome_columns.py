"""The record agent's column-at-a-time batch (`outcomes_batch`) is the tuple-per-row batch
(`outcomes_arrow` of `outcome_values`), and the outcomes it skips `plan_retry` for are ones
`plan_retry` has nothing to do with."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from stream.control import recorder as recorder_module
from stream.control.outcome_batch import (
    check,
    outcome_id_of,
    outcome_ids,
    outcome_values,
    outcomes_arrow,
    outcomes_batch,
)
from stream.control.retry_scheduler import DEFAULT_SCHEDULE, plan_retry
from stream.messages import OutcomeRecord, OutcomeStatus
from tests.control.test_outcome_batch import T0, record

PLAIN = [
    record(),
    record(change_id="c-2", status="failed", marketo_lead_id=None, reason="HTTP 503"),
    record(change_id="c-3", status="failed", category="data", marketo_code="1003"),
    record(change_id="c-4", status="queued"),
    record(change_id="c-5", replay_id="rp-1", attempt=3, possible_repeat=True),
    record(change_id="c-6", mode="test", status="would_send"),
    record(
        change_id="c-7",
        occurred_at=datetime(2026, 3, 1, 11, 0, tzinfo=timezone(timedelta(hours=2))),
        processed_at=datetime(2026, 3, 1, 4, 0, 1, 250, tzinfo=timezone(timedelta(hours=-5))),
    ),
    record(change_id="c-8", status="not_activated", action=None, connection_id=None),
    record(change_id="c-9", status="parked", reason="rate limit", category=None),
]


def by_rows(records: list[OutcomeRecord]) -> list[dict[str, Any]]:
    table = outcomes_arrow([row for r in records for row in outcome_values(r)])
    return list(table.to_pylist())


@pytest.mark.parametrize(
    "records",
    [
        PLAIN,
        [*PLAIN, PLAIN[0]],  # an outcome twice: the tuple path
        [*PLAIN, record(change_id="c-10", status="queued", siblings=["f2", "f1", ""])],
        [],
    ],
    ids=["usual", "repeated", "siblings", "empty"],
)
def test_the_column_batch_is_the_row_batch(records: list[OutcomeRecord]) -> None:
    built = outcomes_batch(records)
    expected = outcomes_arrow([row for r in records for row in outcome_values(r)])
    assert built.schema == expected.schema
    assert built.to_pylist() == by_rows(records)


def test_the_id_is_the_own_rows_id() -> None:
    for r in PLAIN:
        assert outcome_id_of(r) == outcome_values(r)[0][0]


SCRIPTS = ("x", "é", "日本", "a b", "\x1e")


def varied(seed: int, count: int) -> list[OutcomeRecord]:
    """Records whose keys vary in every part: ids in any script, attempts of several digits,
    replays, processed_at in any zone, with or without microseconds, years 1 to 9999."""
    rng = random.Random(seed)
    zones = [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
    records = []
    for n in range(count):
        at = datetime(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28),
                      rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                      rng.choice((0, 0, 1, 250, 999_999)), tzinfo=UTC)  # fmt: skip
        if 2 <= at.year <= 9998:
            at = at.astimezone(rng.choice(zones))
        records.append(
            record(
                change_id=f"c-{n}-{rng.choice(SCRIPTS)}",
                flow_id=rng.choice(("f1", "flow ü", "f" * 40)),
                attempt=rng.choice((1, 2, 9, 10, 12345)),
                replay_id=rng.choice((None, None, "rp-1", "")),
                processed_at=at,
                status=rng.choice(("delivered", "failed", "queued", "not_activated")),
            )
        )
    return records


@pytest.mark.parametrize("seed", [1, 7, 13])
def test_ids_keyed_a_column_at_a_time_are_the_records_ids(seed: int) -> None:
    records = varied(seed, 300)
    built = outcomes_batch(records)
    assert built["outcome_id"].to_pylist() == [outcome_id_of(r) for r in records]
    assert outcome_ids(built).to_pylist() == built["outcome_id"].to_pylist()
    assert built.to_pylist() == by_rows(records)


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": "sometimes"},
        {"attempt": 0},
        {"change_id": ""},
        {"flow_id": ""},
        {"processed_at": datetime(2026, 3, 1, 9, 30)},
        {"occurred_at": datetime(2026, 3, 1, 9, 30)},
        {"change_id": "", "processed_at": datetime(2026, 3, 1, 9, 30)},
    ],
)
def test_refused_as_outcome_values_refuses_it(fields: dict[str, Any]) -> None:
    bad = record(**fields)
    with pytest.raises(ValueError) as by_values:
        outcome_values(bad)
    with pytest.raises(ValueError) as by_id:
        outcome_id_of(bad)
    with pytest.raises(ValueError) as by_check:
        check(bad)
    assert str(by_id.value) == str(by_values.value) == str(by_check.value)


@pytest.mark.parametrize("status", sorted(recorder_module._NO_ITEM_WITHOUT_ONE))
@pytest.mark.parametrize("replay_id", [None, "rp-1"])
def test_skipped_statuses_plan_nothing_for_a_pair_without_item(
    status: OutcomeStatus, replay_id: str | None
) -> None:
    outcome = record(status=status.value, replay_id=replay_id, category=None)
    assert plan_retry(outcome, None, schedule=DEFAULT_SCHEDULE, now=T0) is None


def test_statuses_not_skipped_can_plan_an_item() -> None:
    planned = {
        status
        for status in OutcomeStatus
        if plan_retry(
            record(status=status.value, retryable=True, resume_at=T0 + timedelta(hours=1)),
            None,
            schedule=DEFAULT_SCHEDULE,
            now=T0,
        )
        is not None
    }
    assert planned == set(OutcomeStatus) - recorder_module._NO_ITEM_WITHOUT_ONE - {
        OutcomeStatus.QUEUED
    }
