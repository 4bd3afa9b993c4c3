"""Deliveries in flight (state `queued`) count in no figure; they are reported apart, with the
oldest, in the Summary, Troubleshooting, the `metric_*` views and Prometheus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stream.metrics import parse_window, prometheus, queries
from stream.metrics.definitions import SUMMARY_METRICS, TROUBLESHOOTING_METRICS
from stream.store import OutcomeRow, Store
from stream.store.schema import MIGRATIONS, latest_version, migrate
from tests.support.ledger import ledger_with_views, outcome

NOW = datetime.now(UTC).replace(microsecond=0)
S = timedelta(seconds=1)


def row(
    change_id: str, status: str, at: timedelta, *, attempt: int = 1, **extra: Any
) -> OutcomeRow:
    occurred = NOW - timedelta(hours=1)
    return outcome(change_id, status, NOW - at, occurred_at=occurred, attempt=attempt, **extra)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with ledger_with_views(tmp_path) as opened:
        yield opened


async def _record_mix(store: Store) -> None:
    await store.record_outcomes(
        [
            # answered: queued, then delivered
            row("done", "queued", 50 * S),
            row("done", "delivered", 40 * S, lead_result="created"),
            # in flight, the oldest one 30 s old
            row("wait-1", "queued", 30 * S),
            row("wait-2", "queued", 10 * S),
            # a retry routed again (attempt 2) and not answered: the pair stays failed
            row("retry", "failed", 20 * S, category="technical", reason="Marketo 502"),
            row("retry", "queued", 5 * S, attempt=2),
        ]
    )


async def test_summary_counts_no_queued_pair_and_reports_them_in_flight(store: Store) -> None:
    await _record_mix(store)
    window = parse_window("1h", now=NOW + S)
    got = await queries.summary(store, "live", window, active_flows=1)
    assert got["changes_processed"] == 2  # done and retry
    assert got["actions_triggered"] == 1
    assert got["actions_not_triggered"]["total"] == 1
    assert got["other_outcomes"] == {}
    activity = got["registration_activity"]
    assert sum(b["changes"] for b in activity) == 2
    assert sum(b["triggered"] + b["not_triggered"] for b in activity) == 2
    status = got["processing_status"]
    assert status["last_change_recorded_at"] == (NOW - 20 * S).isoformat()
    in_flight = status["in_flight"]
    assert (in_flight["queued"], in_flight["oldest_queued_at"]) == (2, (NOW - 30 * S).isoformat())
    assert in_flight["oldest_queued_age_s"] >= 30


async def test_troubleshooting_counts_no_routed_retry_as_an_attempt(store: Store) -> None:
    await _record_mix(store)
    window = parse_window("1h", now=NOW + S)
    got = await queries.troubleshooting(store, "live", window, rate_shares={})
    assert (got["total_retried"], got["retry_attempts"]) == (0, 0)
    assert sum(b["retries"] for b in got["retry_activity"]) == 0
    assert got["in_flight"]["queued"] == 2
    empty = await queries.troubleshooting(store, "test", window, rate_shares={})
    assert empty["in_flight"] == {
        "queued": 0,
        "oldest_queued_at": None,
        "oldest_queued_age_s": None,
    }


async def test_views_mark_in_flight_pairs_and_leave_routing_out_of_retry_attempts(
    store: Store,
) -> None:
    await _record_mix(store)
    result = await store.query(
        "SELECT change_id, in_flight, triggered, not_triggered, reason_code "
        "FROM metric_outcomes ORDER BY change_id"
    )
    assert result.rows == (
        ("done", False, True, False, None),
        ("retry", False, False, True, "technical"),
        ("wait-1", True, False, False, None),
        ("wait-2", True, False, False, None),
    )
    attempts = await store.query("SELECT count(*) FROM metric_retry_attempts")
    assert attempts.rows == ((0,),)


async def test_prometheus_reports_in_flight_pairs_and_the_oldest_age(store: Store) -> None:
    await _record_mix(store)
    text = await prometheus.exposition(store, rate_shares={}, now=NOW + S)
    assert 'signal_in_flight_deliveries{mode="live"} 2' in text
    assert 'signal_in_flight_deliveries{mode="test"} 0' in text
    assert 'signal_in_flight_oldest_age_seconds{mode="live"} 31' in text
    assert 'signal_in_flight_oldest_age_seconds{mode="test"} 0' in text
    assert 'signal_outcomes{mode="live",status="queued"} 2' in text


async def test_a_delivery_repeated_after_a_crash_is_counted(store: Store) -> None:
    """A pair marked sending before a crash and delivered again is a possible repeat: it is the
    pair's state once (delivered), and counted in Troubleshooting and Prometheus."""
    await store.record_outcomes(
        [
            row("again", "queued", 50 * S),
            row("again", "delivered", 40 * S, lead_result="updated", possible_repeat=True),
            row("once", "delivered", 30 * S, lead_result="created"),
        ]
    )
    state = await store.query(
        "SELECT change_id, status, possible_repeat FROM outcomes ORDER BY change_id"
    )
    assert state.rows == (("again", "delivered", True), ("once", "delivered", False))
    got = await queries.troubleshooting(
        store, "live", parse_window("1h", now=NOW + S), rate_shares={}
    )
    assert got["repeat_after_crash"] == 1
    before = parse_window("1h", now=NOW - 45 * S)
    assert (await queries.troubleshooting(store, "live", before))["repeat_after_crash"] == 0
    text = await prometheus.exposition(store, rate_shares={}, now=NOW + S)
    assert 'signal_repeat_after_crash_total{mode="live"} 1' in text
    assert 'signal_repeat_after_crash_total{mode="test"} 0' in text


async def test_migration_4_keeps_older_outcomes_as_no_repeat(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, MIGRATIONS[:3])
    con.close()
    old = await Store.open(path)
    try:
        got = await old.query("SELECT count(*) FILTER (WHERE possible_repeat) FROM outcomes")
        assert got.rows == ((0,),)
        assert await old.schema_version() == latest_version()
    finally:
        await old.close()


async def test_the_metric_catalogue_names_what_the_endpoints_answer(store: Store) -> None:
    """`definitions.SUMMARY_METRICS` and `TROUBLESHOOTING_METRICS` describe the figures for
    readers of the code and the docs; each names a key of its endpoint's answer, so a renamed
    or dropped figure fails here instead of leaving the catalogue wrong."""
    await _record_mix(store)
    window = parse_window("1h", now=NOW + S)
    summary = await queries.summary(store, "live", window, active_flows=1)
    trouble = await queries.troubleshooting(store, "live", window, rate_shares={})
    assert {m.name for m in SUMMARY_METRICS} <= set(summary)
    assert {m.name for m in TROUBLESHOOTING_METRICS} <= set(trouble)
