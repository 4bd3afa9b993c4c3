from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from stream.store import ApiCallRow, RejectedRow, Store, StoreReadError, StoreWriteError
from tests.store.conftest import T0, change, outcome


async def test_archive_is_idempotent_by_change_id(store: Store) -> None:
    assert await store.archive_changes([change("c1"), change("c2")]) == 2
    assert await store.archive_changes([change("c2"), change("c3"), change("c3")]) == 1
    assert await store.archive_changes([]) == 0
    result = await store.query("SELECT change_id FROM changes ORDER BY change_id")
    assert result.rows == (("c1",), ("c2",), ("c3",))


async def test_archived_change_keeps_payload_as_json(store: Store) -> None:
    await store.archive_changes([change("c1", payload='{"registration": {"isTest": true}}')])
    result = await store.query("SELECT payload->'registration'->>'isTest' FROM changes")
    assert result.rows == (("true",),)
    found = await store.get_changes(["c1", "missing"])
    assert set(found) == {"c1"}
    assert json.loads(found["c1"].payload) == {"registration": {"isTest": True}}
    assert found["c1"].occurred_at == T0


async def test_timestamps_are_stored_as_utc_whatever_the_input_offset(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    await store.archive_changes(
        [change("c1", occurred_at=datetime(2026, 11, 28, 13, tzinfo=paris))]
    )
    result = await store.query("SELECT occurred_at, strftime(occurred_at, '%H:%M') FROM changes")
    stored, text = result.rows[0]
    assert stored == T0
    assert stored.utcoffset() == timedelta(0)
    assert text == "12:00"


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        change("c1", occurred_at=datetime(2026, 11, 28, 12))


async def test_a_bad_row_fails_the_whole_batch_and_writes_nothing(store: Store) -> None:
    with pytest.raises(StoreWriteError, match=r"(?i)json"):
        await store.archive_changes([change("ok"), change("bad", payload="{not json")])
    result = await store.query("SELECT count(*) FROM changes")
    assert result.rows == ((0,),)
    assert await store.archive_changes([change("ok")]) == 1


async def test_list_changes_pages_in_time_order(store: Store) -> None:
    await store.archive_changes([change(f"c{i}", minutes=i) for i in range(5)])
    await store.archive_changes([change("other", minutes=2, event_code="OTHER")])
    first = await store.list_changes(event_code="SUMMIT26", limit=2)
    assert [c.change_id for c in first] == ["c0", "c1"]
    last = first[-1]
    rest = await store.list_changes(
        event_code="SUMMIT26", after=(last.occurred_at, last.change_id), limit=10
    )
    assert [c.change_id for c in rest] == ["c2", "c3", "c4"]
    window = await store.list_changes(
        occurred_from=T0 + timedelta(minutes=1), occurred_to=T0 + timedelta(minutes=3)
    )
    assert [c.change_id for c in window] == ["c1", "c2", "other"]


async def test_rejected_input_keeps_raw_text_and_reasons(store: Store) -> None:
    await store.record_rejected(
        [RejectedRow(T0, ("changeId: missing", "type: unknown 'x'"), '{"type": "x"', "api")]
    )
    result = await store.query("SELECT source, reasons, payload FROM rejected_changes")
    assert result.rows == (("api", ["changeId: missing", "type: unknown 'x'"], '{"type": "x"'),)
    with pytest.raises(ValueError, match="reason"):
        RejectedRow(T0, (), "x")


async def test_ten_thousand_outcomes_in_one_call(store: Store) -> None:
    rows = [outcome(f"c{i}", f"flow-{i % 7}") for i in range(10_000)]
    assert await store.record_outcomes(rows) == 10_000
    result = await store.query(
        "SELECT count(*), count(DISTINCT flow_id), min(attempts), max(attempts) FROM outcomes"
    )
    assert result.rows == ((10_000, 7, 1, 1),)


async def test_redelivered_outcomes_are_stored_once(store: Store) -> None:
    rows = [outcome("c1"), outcome("c2")]
    assert await store.record_outcomes(rows) == 2
    assert await store.record_outcomes(rows) == 0
    result = await store.query("SELECT count(*) FROM outcome_attempts")
    assert result.rows == ((2,),)


async def test_a_redelivered_outcome_is_found_among_a_days_later_outcomes(store: Store) -> None:
    """outcome_log has no key: a stored outcome is found by its processed_at and id, wherever
    its row group lies and however wide the resent batch's range of processed_at is."""
    first = outcome("c0", processed_at=T0)
    assert await store.record_outcomes([first]) == 1
    later = [
        outcome(f"c{i}", processed_at=T0 + timedelta(days=3, seconds=i)) for i in range(1, 3001)
    ]
    assert await store.record_outcomes(later) == 3000
    # The old outcome again with new ones of a day later still: only the new ones are stored.
    newer = [outcome(f"n{i}", processed_at=T0 + timedelta(days=4, seconds=i)) for i in range(5)]
    assert await store.record_outcomes([*newer, first, later[1500]]) == 5
    # Same change, flow and attempt processed a moment apart: a different outcome, kept.
    assert (
        await store.record_outcomes([outcome("c0", processed_at=T0 + timedelta(microseconds=1))])
        == 1
    )
    result = await store.query(
        "SELECT count(*), count(DISTINCT outcome_id), count(*) FILTER (WHERE change_id = 'c0') "
        "FROM outcome_log"
    )
    assert result.rows == ((3007, 3007, 2),)


async def test_outcomes_view_shows_the_latest_attempt_per_change_and_flow(store: Store) -> None:
    s = timedelta(seconds=1)
    failed1 = outcome("c1", status="failed", category="technical", reason="HTTP 503",
                      lead_result=None, processed_at=T0 + 10 * s, attempt=1)  # fmt: skip
    failed2 = outcome("c1", status="failed", category="technical", reason="timeout",
                      lead_result=None, processed_at=T0 + 20 * s, attempt=2)  # fmt: skip
    delivered = outcome("c1", processed_at=T0 + 30 * s, attempt=3, lead_result="updated")
    other_flow = outcome("c1", "flow-2", status="not_activated", reason="status not tagged",
                         lead_result=None)  # fmt: skip
    # Arrival order differs from processing order: the newest attempt still wins.
    await store.record_outcomes([delivered, other_flow])
    await store.record_outcomes([failed2, failed1])
    result = await store.query(
        "SELECT flow_id, status, reason, lead_result, attempts, attempt FROM outcomes "
        "ORDER BY flow_id"
    )
    assert result.rows == (
        ("flow-1", "delivered", None, "updated", 3, 3),
        ("flow-2", "not_activated", "status not tagged", None, 1, 1),
    )


async def test_equal_processed_at_is_broken_by_attempt_number(store: Store) -> None:
    first = outcome("c1", status="failed", category="data", lead_result=None, attempt=1)
    second = outcome("c1", attempt=2)
    await store.record_outcomes([second, first])
    result = await store.query("SELECT status, attempt FROM outcomes")
    assert result.rows == (("delivered", 2),)


async def test_outcomes_view_window_filter(store: Store) -> None:
    old = outcome("old", processed_at=T0 - timedelta(days=2))
    new = outcome("new", processed_at=T0)
    await store.record_outcomes([old, new])
    result = await store.query(
        "SELECT change_id FROM outcomes "
        "WHERE processed_at >= TIMESTAMPTZ '2026-11-28 12:00:00+00' - INTERVAL 24 HOUR"
    )
    assert result.rows == (("new",),)


async def test_seen_reports_delivered_pairs_only(store: Store) -> None:
    await store.record_outcomes(
        [
            outcome("c1"),
            outcome("c2", status="failed", category="technical", lead_result=None),
            outcome("c3", status="filtered_out", lead_result=None),
        ]
    )
    assert await store.seen("c1", "flow-1")
    assert not await store.seen("c1", "flow-2")
    assert not await store.seen("c2", "flow-1")
    assert await store.seen_many([("c1", "flow-1"), ("c2", "flow-1"), ("c3", "flow-1")]) == {
        ("c1", "flow-1")
    }
    assert await store.seen_many([]) == set()


def test_outcome_rows_validate_their_fields() -> None:
    with pytest.raises(ValueError, match="status"):
        outcome("c1", status="sent")
    with pytest.raises(ValueError, match="category"):
        outcome("c1", status="failed", lead_result=None)
    with pytest.raises(ValueError, match="mode"):
        outcome("c1", mode="prod")
    with pytest.raises(ValueError, match="attempt"):
        outcome("c1", attempt=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        outcome("c1", processed_at=datetime(2026, 1, 1))


def test_outcome_id_is_deterministic_and_distinguishes_attempts() -> None:
    assert outcome("c1").outcome_id == outcome("c1").outcome_id
    assert outcome("c1").outcome_id != outcome("c1", attempt=2).outcome_id
    assert outcome("c1").outcome_id != outcome("c1", replayed=True).outcome_id
    assert dataclasses.replace(outcome("c1"), outcome_id="mine").outcome_id == "mine"


async def test_api_calls_are_recorded(store: Store) -> None:
    calls = [
        ApiCallRow("conn-1", "/rest/v1/leads.json", T0, 120.5, http_status=200, batch_size=300,
                   request_id="e42b#1"),
        ApiCallRow("conn-1", "/rest/v1/campaigns/7/trigger.json", T0, 80.0, http_status=200,
                   marketo_error="606", error_class="throttle"),
    ]  # fmt: skip
    await store.record_api_calls(calls)
    result = await store.query(
        "SELECT endpoint, batch_size, marketo_error, request_id FROM api_calls ORDER BY endpoint"
    )
    assert result.rows == (
        ("/rest/v1/campaigns/7/trigger.json", 1, "606", None),
        ("/rest/v1/leads.json", 300, None, "e42b#1"),
    )
    with pytest.raises(ValueError, match="duration"):
        ApiCallRow("conn-1", "/x", T0, -1.0)


async def test_processed_at_round_trips_with_microseconds(store: Store) -> None:
    at = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
    await store.record_outcomes([outcome("c1", processed_at=at)])
    result = await store.query("SELECT processed_at FROM outcomes")
    assert result.rows == ((at,),)


async def test_state_follows_newer_batches_and_remembers_delivery(store: Store) -> None:
    s = timedelta(seconds=1)
    await store.record_outcomes([outcome("c1", processed_at=T0 + s)])
    replay_failed = outcome("c1", status="failed", category="data", reason="email missing",
                            lead_result=None, processed_at=T0 + 9 * s, replayed=True)  # fmt: skip
    await store.record_outcomes([replay_failed])
    await store.record_outcomes([replay_failed])  # redelivered: no extra attempt
    result = await store.query(
        "SELECT status, reason, replayed, attempts, first_processed_at, delivered_at FROM outcomes"
    )
    # a replay after the delivery is an attempt of its own: the delivered state stays
    assert result.rows == (("delivered", None, False, 2, T0 + s, T0 + s),)
    assert await store.seen("c1", "flow-1")
    await store.record_outcomes([outcome("c1", status="failed", category="technical",
                                         reason="timeout", lead_result=None,
                                         processed_at=T0 + 10 * s, attempt=2)])  # fmt: skip
    result = await store.query("SELECT status, reason, replayed, attempts FROM outcomes")
    assert result.rows == (("failed", "timeout", False, 3),), "other newer rows still replace it"


async def test_state_matches_ranking_every_attempt(store: Store) -> None:
    """Whatever the batching and arrival order, the state equals the newest attempt per pair."""
    rng = random.Random(7)
    rows = [
        outcome(
            f"c{rng.randrange(30)}",
            f"flow-{rng.randrange(3)}",
            status=rng.choice(["delivered", "filtered_out", "parked"]),
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
        "SELECT change_id, flow_id, outcome_id, count(*) OVER pair AS attempts "
        "FROM outcome_attempts WINDOW pair AS (PARTITION BY change_id, flow_id) "
        "QUALIFY row_number() OVER (PARTITION BY change_id, flow_id "
        "ORDER BY processed_at DESC, attempt DESC, outcome_id DESC) = 1 ORDER BY 1, 2",
        max_rows=10_000,
    )
    actual = await store.query(
        "SELECT change_id, flow_id, outcome_id, attempts FROM outcomes ORDER BY 1, 2",
        max_rows=10_000,
    )
    assert actual.rows == expected.rows
    assert len(actual.rows) > 50


async def test_replay_outcomes_are_distinct_and_carry_their_context(store: Store) -> None:
    original = outcome("c1")
    replay = outcome("c1", replay_id="rp-7", connection_id="mkto", marketo_code="1004",
                     status="failed", category="data", lead_result=None,
                     processed_at=T0 + timedelta(hours=1))  # fmt: skip
    assert replay.replayed and replay.outcome_id != original.outcome_id
    assert await store.record_outcomes([original, replay]) == 2
    result = await store.query(
        "SELECT status, replayed, replay_id, connection_id, marketo_code FROM outcome_attempts "
        "WHERE replayed"
    )
    assert result.rows == (("failed", True, "rp-7", "mkto", "1004"),)
    state = await store.query("SELECT status, replayed, attempts FROM outcomes")
    assert state.rows == (("delivered", False, 2),), "the replay did not undo the delivery"
    never_delivered = outcome("c2", status="filtered_out", lead_result=None)
    replay_delivers = outcome("c2", replay_id="rp-7", processed_at=T0 + timedelta(hours=1))
    await store.record_outcomes([never_delivered])
    await store.record_outcomes([replay_delivers])
    state = await store.query("SELECT status, replay_id FROM outcomes WHERE change_id = 'c2'")
    assert state.rows == (("delivered", "rp-7"),), "a replay still delivers what never was"


async def test_dry_run_and_duplicate_rows_stay_in_the_ledger_only(store: Store) -> None:
    delivered = outcome("c1")
    dry_run = outcome("c1", replay_id="rp-dry", status="would_send", lead_result=None,
                      processed_at=T0 + timedelta(hours=1))  # fmt: skip
    duplicate = outcome("c1", status="skipped_duplicate", lead_result=None, attempt=2,
                        processed_at=T0 + timedelta(hours=2))  # fmt: skip
    only_dry = outcome("c2", replay_id="rp-dry", status="would_send", lead_result=None)
    assert await store.record_outcomes([delivered, dry_run, duplicate, only_dry]) == 4
    state = await store.query("SELECT change_id, status, attempts FROM outcomes ORDER BY 1")
    assert state.rows == (("c1", "delivered", 1),)
    ledger = await store.query("SELECT count(*) FROM outcome_log")
    assert ledger.rows == ((4,),)


async def test_internal_reads_and_writes_run_through_the_store_threads(store: Store) -> None:
    view = "CREATE VIEW recent_delivered AS SELECT * FROM outcomes WHERE status = 'delivered'"
    await store.write(lambda con: con.execute(view))
    await store.record_outcomes([outcome("c1"), outcome("c2", status="parked", lead_result=None)])
    sql = "SELECT change_id FROM recent_delivered WHERE change_id = ?"
    rows = await store.read(lambda cur: cur.execute(sql, ["c1"]).fetchall())
    assert rows == [("c1",)]
    with pytest.raises(StoreReadError, match="nope"):
        await store.read(lambda cur: cur.execute("SELECT * FROM nope").fetchall())
    with pytest.raises(StoreWriteError):
        await store.write(lambda con: con.execute("CREATE VIEW recent_delivered AS SELECT 1"))


async def test_batches_of_one_status_each_keep_the_state_rules(store: Store) -> None:
    """A batch runs only the state statements its statuses need; each kind alone still does
    what it does in a mixed batch."""
    s = timedelta(seconds=1)
    await store.record_outcomes([outcome("c1", status="queued", lead_result=None)])
    await store.record_outcomes([outcome("c2", status="skipped_duplicate", lead_result=None)])
    await store.record_outcomes([outcome("c3", status="would_send", lead_result=None)])
    state = await store.query("SELECT change_id, status, attempts FROM outcomes ORDER BY 1")
    assert state.rows == (("c1", "queued", 0), ("c2", "delivered", 1))
    failed = outcome("c1", status="failed", category="technical", reason="timeout",
                     lead_result=None, processed_at=T0 - s)  # fmt: skip
    await store.record_outcomes([failed])
    late_queued = outcome("c2", status="queued", lead_result=None, processed_at=T0 + 9 * s)
    await store.record_outcomes([late_queued])
    state = await store.query("SELECT change_id, status, attempts FROM outcomes ORDER BY 1")
    assert state.rows == (("c1", "failed", 1), ("c2", "delivered", 1)), (
        "a final row replaces a queued state whatever its time; queued never replaces a final"
    )
    ledger = await store.query("SELECT count(*) FROM outcome_log")
    assert ledger.rows == ((5,),)
