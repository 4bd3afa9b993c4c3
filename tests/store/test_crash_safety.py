"""The ledger side of the crash contract: the ingest outbox (`published_at`), the `queued` state
of a delivery in flight, and rejected records of Signal's own topics."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from stream.store import (
    ChangeRow,
    OutcomeRow,
    RejectedRecordRow,
    RejectedRow,
    RetryItem,
    Store,
    StoreWriteError,
)
from stream.store.schema import MIGRATIONS, migrate
from tests.store.conftest import T0, change, outcome

S = timedelta(seconds=1)


def unpublished(change_id: str, *, minutes: int = 0) -> ChangeRow:
    return change(change_id, minutes=minutes, source="api", received_at=T0 + minutes * 60 * S)


# -- the ingest outbox ------------------------------------------------------------------------


async def test_migration_2_marks_rows_archived_before_it_as_published(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    con = duckdb.connect(str(db_path))
    migrate(con, MIGRATIONS[:1])
    con.execute(
        "INSERT INTO change_log VALUES ('old', 'registration.create_update', 'ACME', 'EV', 'R1', "
        "false, ?, ?, 'topic', 0, 7, '{}')",
        [T0, T0 + S],
    )
    con.close()
    store = await Store.open(db_path)
    try:
        result = await store.query("SELECT change_id, published_at FROM changes")
        assert result.rows == (("old", T0 + S),)
        assert await store.unpublished_changes(T0 + timedelta(days=1)) == []
        empty = await store.query("SELECT count(*) FROM rejected_records")
        assert empty.rows == ((0,),)
    finally:
        await store.close()


async def test_accepted_changes_wait_unpublished_until_marked(store: Store) -> None:
    accepted = await store.accept_changes([unpublished("a"), unpublished("b", minutes=1)])
    assert accepted.added == 2
    assert [r.change_id for r in accepted.unpublished] == ["a", "b"]
    assert all(r.published_at is None and r.source == "api" for r in accepted.unpublished)

    waiting = await store.unpublished_changes(T0 + 10 * 60 * S)
    assert [r.change_id for r in waiting] == ["a", "b"]
    assert json.loads(waiting[0].payload)["changeId"] == "a"
    # Only what is older than the grace period, oldest first, `limit` at most.
    assert [r.change_id for r in await store.unpublished_changes(T0 + 30 * S)] == ["a"]
    assert [r.change_id for r in await store.unpublished_changes(T0 + 600 * S, limit=1)] == ["a"]

    assert await store.mark_published(["a", "missing"], T0 + 5 * S) == 1
    assert await store.mark_published(["a"], T0 + 9 * S) == 0  # keeps its first time
    result = await store.query("SELECT change_id, published_at FROM changes ORDER BY 1")
    assert result.rows == (("a", T0 + 5 * S), ("b", None))
    assert [r.change_id for r in await store.unpublished_changes(T0 + 600 * S)] == ["b"]


async def test_a_resent_change_is_archived_once_and_not_published_twice(store: Store) -> None:
    first = await store.accept_changes([unpublished("a")])
    assert (first.added, [r.change_id for r in first.unpublished]) == (1, ["a"])
    # Resent before its publication was marked: still to publish (the earlier try failed).
    again = await store.accept_changes([unpublished("a")])
    assert (again.added, [r.change_id for r in again.unpublished]) == (0, ["a"])
    await store.mark_published(["a"], T0 + S)
    # Resent after: nothing to add, nothing to publish.
    late = await store.accept_changes([unpublished("a"), unpublished("new")])
    assert (late.added, [r.change_id for r in late.unpublished]) == (1, ["new"])
    count = await store.query("SELECT count(*) FROM changes WHERE change_id = 'a'")
    assert count.rows == ((1,),)


async def test_reading_an_accepted_change_from_the_topic_proves_it_published(store: Store) -> None:
    await store.accept_changes([unpublished("a")])
    echoed = change("a", source="topic", received_at=T0 + 3 * S, kafka_partition=2)
    assert await store.archive_changes([echoed, change("other")]) == 1
    result = await store.query(
        "SELECT change_id, source, published_at, kafka_partition FROM changes ORDER BY 1"
    )
    other_received = change("other").received_at
    assert result.rows == (("a", "api", T0 + 3 * S, None), ("other", "topic", other_received, None))


async def test_rows_archived_from_the_topic_are_published_when_received(store: Store) -> None:
    await store.archive_changes([change("t", received_at=T0 + 4 * S)])
    found = await store.get_changes(["t"])
    assert found["t"].published_at == T0 + 4 * S
    assert await store.unpublished_changes(T0 + timedelta(days=1)) == []


async def test_accepting_commits_changes_and_rejected_input_together(store: Store) -> None:
    bad = RejectedRow(received_at=T0, reasons=("type: unknown",), payload="{}", source="api")
    with pytest.raises(StoreWriteError):
        await store.accept_changes([unpublished("ok"), change("x", payload="{no")], [bad])
    counts = await store.query(
        "SELECT (SELECT count(*) FROM changes), (SELECT count(*) FROM rejected_changes)"
    )
    assert counts.rows == ((0, 0),)
    accepted = await store.accept_changes([unpublished("ok")], [bad])
    assert accepted.added == 1
    counts = await store.query(
        "SELECT (SELECT count(*) FROM changes), (SELECT count(*) FROM rejected_changes)"
    )
    assert counts.rows == ((1, 1),)
    only_rejected = await store.accept_changes([], [bad])
    assert (only_rejected.added, only_rejected.unpublished) == (0, [])


async def test_rejected_records_keep_topic_position_and_reasons(store: Store) -> None:
    row = RejectedRecordRow(
        received_at=T0,
        topic="signal-outcomes",
        agent="record",
        reasons=("invalid JSON: Expecting value",),
        payload="{oops",
        kafka_partition=3,
        kafka_offset=41,
    )
    await store.record_rejected_records([row])
    result = await store.query(
        "SELECT topic, agent, reasons, payload, kafka_partition, kafka_offset FROM rejected_records"
    )
    assert result.rows == (
        ("signal-outcomes", "record", ["invalid JSON: Expecting value"], "{oops", 3, 41),
    )
    with pytest.raises(ValueError, match="reason"):
        RejectedRecordRow(received_at=T0, topic="t", agent="a", reasons=(), payload="")


# -- queued: a delivery in flight ---------------------------------------------------------------


async def _state(store: Store, change_id: str = "c1") -> tuple[object, ...]:
    result = await store.query(
        "SELECT status, attempts, reason, processed_at, first_processed_at, delivered_at "
        f"FROM outcomes WHERE change_id = '{change_id}'"
    )
    assert len(result.rows) == 1, result.rows
    return tuple(result.rows[0])


def queued(change_id: str = "c1", *, at: int = 1, attempt: int = 1) -> OutcomeRow:
    return outcome(
        change_id, status="queued", lead_result=None, marketo_lead_id=None, latency_ms=None,
        processed_at=T0 + at * S, attempt=attempt,
    )  # fmt: skip


async def test_a_queued_pair_is_in_flight_and_not_an_attempt(store: Store) -> None:
    assert await store.record_outcomes([queued(at=1)]) == 1
    assert await _state(store) == ("queued", 0, None, T0 + S, T0 + S, None)
    assert not await store.seen("c1", "flow-1")


async def test_the_final_outcome_replaces_the_queued_state(store: Store) -> None:
    await store.record_outcomes([queued(at=1)])
    await store.record_outcomes([outcome("c1", processed_at=T0 + 2 * S)])
    assert await _state(store) == ("delivered", 1, None, T0 + 2 * S, T0 + S, T0 + 2 * S)
    ledger = await store.query("SELECT status FROM outcome_attempts ORDER BY processed_at")
    assert ledger.rows == (("queued",), ("delivered",))


@pytest.mark.parametrize(
    ("status", "extra"),
    [
        ("delivered", {}),
        ("failed", {"category": "technical", "reason": "Marketo 502"}),
        ("parked", {"reason": "daily quota"}),
        ("not_activated", {"reason": "no activate-for tag matched"}),
        ("filtered_out", {"reason": "filter 1 does not hold"}),
        ("skipped_stale", {"reason": "older than the lead"}),
    ],
)
async def test_a_queued_row_recorded_after_the_final_outcome_never_replaces_it(
    store: Store, status: str, extra: dict[str, str]
) -> None:
    final = outcome("c1", status=status, processed_at=T0 + 2 * S, **extra)
    await store.record_outcomes([final])
    before = await _state(store)
    # Out of order: the queued row arrives later, even with a later time (another worker's clock).
    await store.record_outcomes([queued(at=5)])
    after = await _state(store)
    assert after[0] == status
    assert after[1:4] == before[1:4]
    assert after[4] == T0 + 2 * S  # first processed stays the final's (the queued came later)
    ledger = await store.query("SELECT count(*) FROM outcome_attempts")
    assert ledger.rows == ((2,),)


async def test_an_earlier_queued_row_arriving_late_keeps_the_final_state(store: Store) -> None:
    failed = outcome("c1", status="failed", category="data", reason="email missing",
                     processed_at=T0 + 2 * S)  # fmt: skip
    await store.record_outcomes([failed])
    await store.record_outcomes([queued(at=1)])
    assert await _state(store) == ("failed", 1, "email missing", T0 + 2 * S, T0 + S, None)


async def test_in_one_batch_the_final_row_wins_over_a_later_queued_row(store: Store) -> None:
    await store.record_outcomes([queued(at=9), outcome("c1", processed_at=T0 + 2 * S)])
    assert (await _state(store))[:2] == ("delivered", 1)


async def test_a_queued_pair_follows_its_newest_queued_row(store: Store) -> None:
    await store.record_outcomes([queued(at=1)])
    await store.record_outcomes([queued(at=30, attempt=2), queued(at=20, attempt=2)])
    result = await store.query("SELECT status, attempt, attempts, processed_at FROM outcomes")
    assert result.rows == (("queued", 2, 0, T0 + 30 * S),)


async def test_a_duplicate_noticed_for_a_queued_pair_proves_its_delivery(store: Store) -> None:
    await store.record_outcomes([queued(at=1)])
    duplicate = outcome("c1", status="skipped_duplicate", lead_result=None, attempt=1,
                        reason="already delivered (delivered-keys log)",
                        processed_at=T0 + 40 * S)  # fmt: skip
    await store.record_outcomes([duplicate])
    assert await _state(store) == (
        "delivered", 1, "already delivered (delivered-keys log)", T0 + 40 * S, T0 + S, T0 + 40 * S
    )  # fmt: skip
    assert await store.seen("c1", "flow-1")


async def test_queued_and_duplicate_in_one_batch_make_the_pair_delivered(store: Store) -> None:
    duplicate = outcome("c1", status="skipped_duplicate", lead_result=None,
                        reason="already delivered", processed_at=T0 + 3 * S)  # fmt: skip
    await store.record_outcomes([duplicate, queued(at=2)])
    assert (await _state(store))[:3] == ("delivered", 1, "already delivered")


def dup(change_id: str, *, at: int, attempt: int = 1) -> OutcomeRow:
    return outcome(
        change_id, status="skipped_duplicate", lead_result=None, attempt=attempt,
        reason="already delivered", processed_at=T0 + at * S,
    )  # fmt: skip


async def test_a_duplicate_never_replaces_a_final_state(store: Store) -> None:
    failed = outcome("c1", status="failed", category="technical", reason="Marketo 502")
    duplicate = outcome("c1", status="skipped_duplicate", lead_result=None, attempt=2,
                        processed_at=T0 + 9 * S)  # fmt: skip
    await store.record_outcomes([failed])
    await store.record_outcomes([duplicate])
    assert (await _state(store))[:3] == ("failed", 1, "Marketo 502")
    delivered = outcome("c2", processed_at=T0 + 2 * S)
    await store.record_outcomes([delivered])
    await store.record_outcomes([dup("c2", at=9, attempt=2)])
    assert await _state(store, "c2") == ("delivered", 1, None, T0 + 2 * S, T0 + 2 * S, T0 + 2 * S)


async def test_a_duplicate_for_a_pair_without_state_proves_its_delivery(store: Store) -> None:
    """After a crash of everything, a pair's queued and delivered outcomes may both have been
    lost with the broker: recovery re-drives its change as unrouted, the worker finds the pair's
    re-seeded key and skips it; the duplicate is the ledger's only proof of the delivery."""
    await store.record_outcomes([dup("c2", at=9, attempt=2), dup("c2", at=7)])
    assert await _state(store, "c2") == (
        "delivered", 1, "already delivered", T0 + 7 * S, T0 + 7 * S, T0 + 7 * S
    )  # fmt: skip
    assert await store.seen("c2", "flow-1")
    # A later duplicate (another redrive) changes nothing: the pair is final now.
    await store.record_outcomes([dup("c2", at=30, attempt=3)])
    assert (await _state(store, "c2"))[:4] == ("delivered", 1, "already delivered", T0 + 7 * S)
    # Its delivered outcome, recorded late, keeps the pair delivered at the first delivery.
    await store.record_outcomes([outcome("c2", processed_at=T0 + 3 * S)])
    state = await _state(store, "c2")
    assert (state[0], state[1], state[5]) == ("delivered", 2, T0 + 3 * S)


async def test_a_final_row_in_the_same_batch_decides_over_a_duplicate(store: Store) -> None:
    """A pair without state, its duplicate and a final row in one batch: the final row decides."""
    failed = outcome("c3", status="failed", category="technical", reason="Marketo 502",
                     processed_at=T0 + 5 * S)  # fmt: skip
    await store.record_outcomes([dup("c3", at=4), failed])
    assert (await _state(store, "c3"))[:3] == ("failed", 1, "Marketo 502")


async def test_a_queued_row_does_not_resolve_a_retry_item(store: Store) -> None:
    item = RetryItem("c1", "flow-1", "retrying", "technical", 1, updated_at=T0, created_at=T0)
    failed = outcome("c1", status="failed", category="technical", processed_at=T0)
    await store.record_outcomes([failed], [item])
    await store.record_outcomes([queued(at=5, attempt=2)])
    found = await store.get_retry_item("c1", "flow-1")
    assert found is not None and found.status == "retrying"
    assert (await _state(store))[0] == "failed"


async def test_state_with_queued_rows_matches_the_rule_whatever_the_order(store: Store) -> None:
    """Batched and shuffled at random: each pair's state is its newest final row, or its
    newest queued row when it has no final one; attempts count the final rows only."""
    rng = random.Random(11)
    rows = [
        outcome(
            f"c{rng.randrange(30)}",
            f"flow-{rng.randrange(3)}",
            status=rng.choice(["queued", "queued", "delivered", "failed", "parked"]),
            category="technical",
            processed_at=T0 + timedelta(seconds=rng.randrange(20)),
            attempt=rng.randrange(1, 4),
            lead_result=None,
        )
        for _ in range(400)
    ]
    rng.shuffle(rows)
    while rows:
        size = rng.randrange(1, 60)
        batch, rows = rows[:size], rows[size:]
        await store.record_outcomes(batch + batch[: rng.randrange(3)])
    expected = await store.query(
        "SELECT change_id, flow_id, outcome_id, "
        "count(*) FILTER (WHERE status <> 'queued') OVER pair AS attempts "
        "FROM outcome_attempts WINDOW pair AS (PARTITION BY change_id, flow_id) "
        "QUALIFY row_number() OVER (PARTITION BY change_id, flow_id "
        "ORDER BY status <> 'queued' DESC, processed_at DESC, attempt DESC, outcome_id DESC) = 1 "
        "ORDER BY 1, 2",
        max_rows=10_000,
    )
    actual = await store.query(
        "SELECT change_id, flow_id, outcome_id, attempts FROM outcomes ORDER BY 1, 2",
        max_rows=10_000,
    )
    assert actual.rows == expected.rows
    statuses = await store.query("SELECT DISTINCT status FROM outcomes ORDER BY 1")
    assert ("queued",) in statuses.rows
