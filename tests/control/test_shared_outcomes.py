"""A `not_activated` record standing for several flows (`OutcomeRecord.also`) is recorded as
the records of its pairs, one by one, would be: same rows in the Arrow batch (column and tuple
paths) and in the ledger, the same retry queue, and idempotent when the batch comes again,
whole or after a crash cut it short."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.control import recorder as recorder_module
from stream.control.outcome_batch import outcome_values, outcomes_arrow, outcomes_batch
from stream.control.recorder import Recorder, outcome_rows
from stream.messages import OutcomeRecord, SharedFlows
from stream.store import RetryItem, Store
from stream.store.arrow_batches import outcomes_table
from tests.control.test_outcome_batch import T0, as_rows, record
from tests.control.test_retry_planning import (
    NOW,
    PAIRS,
    all_retry_items,
    outcome,
    stored_items,
)

FLOWS = [
    SharedFlows(mode="live", flows=[(f"f{n}", f"Flow {n}") for n in range(2, 40) if n % 3]),
    SharedFlows(mode="test", flows=[(f"f{n}", f"Flow {n}") for n in range(2, 40) if n % 3 == 0]),
    SharedFlows(
        mode="live", action="trigger_campaign", connection_id="m2", flows=[("f40", "Flow 40")]
    ),
]
SHARED = sum(len(group.flows) for group in FLOWS)


def shared(change_id: str, reason: str = "no activate-for tag matched", **fields: Any) -> Any:
    return record(
        change_id=change_id,
        status="not_activated",
        reason=reason,
        marketo_lead_id=None,
        lead_result=None,
        request_id=None,
        also=FLOWS,
        **fields,
    )


BATCH = [
    record(change_id="c-1", flow_id="f0", status="queued", siblings=["f1"]),
    shared("c-1"),
    record(change_id="c-2", flow_id="f0", status="filtered_out", reason="country"),
    shared("c-2", reason="flow watches session_registration.status_change; ..."),
    shared("c-3", processed_at=T0 + timedelta(microseconds=7), mode="test"),
    record(change_id="c-4", flow_id="f1", status="delivered"),
]


def pairs_of(records: list[OutcomeRecord]) -> list[OutcomeRecord]:
    return [pair for r in records for pair in r.pairs()]


def test_pairs_carry_each_flows_own_fields() -> None:
    record_ = shared("c-9")
    pairs = record_.pairs()
    assert [p.flow_id for p in pairs] == ["f1", *(f for g in FLOWS for f, _ in g.flows)]
    assert all(p.also == [] and p.reason == record_.reason for p in pairs)
    (six,) = [p for p in pairs if p.flow_id == "f6"]
    assert (six.flow_name, six.mode, six.action, six.connection_id) == (
        "Flow 6",
        "test",
        None,
        None,
    )
    (forty,) = [p for p in pairs if p.flow_id == "f40"]
    assert (forty.flow_name, forty.mode, forty.action, forty.connection_id) == (
        "Flow 40",
        "live",
        "trigger_campaign",
        "m2",
    )
    assert OutcomeRecord.loads(record_.dumps()) == record_


@pytest.mark.parametrize("records", [BATCH, [*BATCH, BATCH[1]], BATCH[1:2]])
def test_the_batch_of_a_shared_record_is_the_batch_of_its_pairs(
    records: list[OutcomeRecord],
) -> None:
    expected = outcomes_arrow([row for r in pairs_of(records) for row in outcome_values(r)])
    by_tuples = outcomes_arrow([row for r in records for row in outcome_values(r)])
    by_columns = outcomes_batch(records)
    assert by_columns.schema == expected.schema
    assert by_columns.to_pylist() == expected.to_pylist()
    assert by_tuples.to_pylist() == expected.to_pylist()
    assert outcomes_table(as_rows(records)).to_pylist() == expected.to_pylist()
    assert [r.outcome_id for r in outcome_rows(records[-1])] == [
        row[0] for r in records[-1].pairs() for row in outcome_values(r)
    ]


@pytest.mark.parametrize(
    ("group", "words"),
    [
        ({"flows": [("f2", "Flow 2"), ("", "nameless")]}, "flow_id must not be empty"),
        ({"mode": "often"}, "mode must be one of"),
    ],
)
def test_a_shared_flow_is_refused_as_its_row_would_be(group: dict[str, Any], words: str) -> None:
    bad = shared("c-1").model_copy(update={"also": [*FLOWS[:2], FLOWS[2].model_copy(update=group)]})
    with pytest.raises(ValueError, match=words) as by_values:
        outcome_values(bad)
    with pytest.raises(ValueError) as by_rows:
        outcome_rows(bad)
    assert str(by_values.value) == str(by_rows.value)


LEDGER = (
    "SELECT * EXCLUDE (first_processed_at, delivered_at) FROM outcomes ORDER BY change_id, flow_id"
)


async def ledger_after(path: Path, *batches: list[OutcomeRecord]) -> list[tuple[Any, ...]]:
    """The `outcomes` view and retry queue after the record agent took each batch in turn,
    each on a store opened afresh (a control restarted between them)."""
    for batch in batches:
        store = await Store.open(path)
        try:
            recorder = Recorder(store, None, jitter=lambda: 0.5)  # type: ignore[arg-type]
            await recorder.record_outcomes([r.dumps() for r in batch])
        finally:
            await store.close()
    store = await Store.open(path)
    try:
        rows = await store.read(lambda con: con.execute(LEDGER).fetchall())
        items = await store.read(
            lambda con: con.execute(
                "SELECT change_id, flow_id, status FROM retry_items ORDER BY ALL"
            ).fetchall()
        )
        return [*rows, *items]
    finally:
        await store.close()


async def test_the_ledger_of_shared_records_is_the_ledger_of_their_pairs(tmp_path: Path) -> None:
    one_by_one = await ledger_after(tmp_path / "pairs.duckdb", pairs_of(BATCH))
    shared_ = await ledger_after(tmp_path / "shared.duckdb", BATCH)
    assert shared_ == one_by_one
    # c-1: f0 queued, f1 and the shared flows not activated; c-2 alike with f0 filtered out;
    # c-3: f1 and the shared flows; c-4: f1 delivered. No retry item.
    assert len(one_by_one) == 2 * (2 + SHARED) + (1 + SHARED) + 1


async def test_a_redelivered_batch_and_one_cut_by_a_crash_record_nothing_twice(
    tmp_path: Path,
) -> None:
    once = await ledger_after(tmp_path / "once.duckdb", BATCH)
    assert await ledger_after(tmp_path / "twice.duckdb", BATCH, BATCH) == once
    # A crash after the shared record of c-1 was recorded: the whole batch comes again.
    assert await ledger_after(tmp_path / "cut.duckdb", BATCH[:2], BATCH) == once


async def test_a_shared_not_activated_resolves_the_open_items_of_its_flows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "items.duckdb"
    store = await Store.open(path)
    try:
        await store.upsert_retry_items(
            [
                RetryItem(
                    change_id="c-1",
                    flow_id=flow_id,
                    flow_name=flow_id,
                    status="pending",
                    category="technical",
                    attempts=1,
                    updated_at=T0 - timedelta(minutes=1),
                    integration="mkto",
                    next_attempt_at=T0 + timedelta(minutes=5),
                    created_at=T0 - timedelta(minutes=1),
                )
                for flow_id in ("f1", "f6", "not-shared")
            ]
        )
    finally:
        await store.close()
    after = await ledger_after(path, [shared("c-1")])
    items = {row[1]: row[2] for row in after if len(row) == 3}
    assert items == {"f1": "resolved", "f6": "resolved", "not-shared": "pending"}


async def retry_queue_after(path: Path, seed: int, expand: bool) -> list[tuple[Any, ...]]:
    """The retry queue after random batches mixing shared records with other outcomes of the
    same pairs, over stored items of every status; `expand`: each shared record's pairs
    recorded one by one instead."""
    rng = random.Random(seed)
    store = await Store.open(path)
    try:
        await store.upsert_retry_items(stored_items(rng))
        recorder = Recorder(store, None, jitter=lambda: 0.5)  # type: ignore[arg-type]
        n = 0
        for _ in range(5):
            batch: list[bytes] = []
            for _ in range(rng.randint(1, 20)):
                n += 1
                if rng.random() < 0.5:
                    batch.append(outcome(rng, n))
                    continue
                change_id = rng.choice(PAIRS)[0]
                made = record(
                    change_id=change_id,
                    flow_id=rng.choice(("f1", "f2", "f3")),
                    # Route shares not-activated outcomes only; any status is recorded alike.
                    status=rng.choice(("not_activated", "not_activated", "filtered_out", "failed")),
                    category="technical",
                    retryable=True,
                    processed_at=T0 + timedelta(seconds=n),
                    attempt=rng.randint(1, 2),
                    also=[
                        SharedFlows(
                            mode="live",
                            flows=[
                                (f, f)
                                for f in rng.sample(("f1", "f2", "f3", "f4"), rng.randint(1, 3))
                            ],
                        )
                    ],
                )
                records = made.pairs() if expand else [made]
                batch.extend(r.dumps() for r in records)
            await recorder.record_outcomes(batch)
        return await all_retry_items(store)
    finally:
        await store.close()


@pytest.mark.parametrize("seed", [3, 11])
async def test_shared_records_leave_the_retry_queue_their_pairs_leave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(recorder_module, "utcnow", lambda: NOW)
    shared_ = await retry_queue_after(tmp_path / "shared.duckdb", seed, expand=False)
    pairs = await retry_queue_after(tmp_path / "pairs.duckdb", seed, expand=True)
    assert shared_ == pairs
    statuses = {row[4] for row in pairs}
    assert "resolved" in statuses and "pending" in statuses, statuses
