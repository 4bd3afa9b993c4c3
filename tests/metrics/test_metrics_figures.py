"""Every Summary and Troubleshooting figure against counts made in Python from the generated
stories, for both modes and two periods, through the real Store on a real DuckDB file."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stream.metrics import RuntimeStatus, parse_window, queries
from stream.metrics.definitions import Mode
from stream.metrics.lag import GroupLag, LagReading
from stream.store import Store
from tests.metrics.metrics_stream_gen import (
    NOW,
    Stream,
    expected_summary,
    expected_troubleshooting,
)

CASES = [(mode, period) for mode in ("live", "test") for period in ("24h", "7d")]


def test_generated_stream_covers_every_figure(recorded_stream: Stream) -> None:
    """The stream must exercise what the figures count, or equal zeros would prove nothing."""
    window = parse_window("24h", now=NOW)
    for mode in ("live", "test"):
        s = expected_summary(recorded_stream, mode, window.start, window.end, window.bucket)
        t = expected_troubleshooting(recorded_stream, mode, window.start, window.end, window.bucket)
        assert s["actions_triggered"] > 0 and s["actions_not_triggered"]["total"] > 0
        assert t["connection_activity"]
    week = parse_window("7d", now=NOW)
    s = expected_summary(recorded_stream, "live", week.start, week.end, week.bucket)
    t = expected_troubleshooting(recorded_stream, "live", week.start, week.end, week.bucket)
    nt = s["actions_not_triggered"]
    assert len(nt["not_activated"]["by_reason"]) >= 6
    assert len(nt["filtered_out"]["by_reason"]) == 3
    assert all(nt["failed"]["by_category"].values())
    assert s["leads_created"] and s["leads_updated"] and s["form_posts"] and s["other_outcomes"]
    assert t["total_retried"] and t["retried_abandoned"] and t["validation_errors"]["data_failures"]
    assert t["retry_queue"]["by_status"]["resolved"] and t["retry_queue"]["by_status"]["pending"]
    assert len(t["connection_activity"]) == 3
    assert all(c["errors_by_code"] for c in t["connection_activity"])


@pytest.mark.parametrize(("mode", "period"), CASES)
async def test_summary_figures(
    metrics_store: Store, recorded_stream: Stream, mode: Mode, period: str
) -> None:
    window = parse_window(period, now=NOW)
    got = await queries.summary(metrics_store, mode, window)
    want = expected_summary(recorded_stream, mode, window.start, window.end, window.bucket)

    assert got["mode"] == mode
    assert got["period"] == {
        "label": period,
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "bucket_seconds": {"24h": 3600, "7d": 6 * 3600}[period],
    }
    last = want.pop("last_change_recorded_at")
    for name, value in want.items():
        assert got[name] == value, name
    assert got["processing_status"] == {
        "last_change_recorded_at": last,
        "in_flight": {"queued": 0, "oldest_queued_at": None, "oldest_queued_age_s": None},
        "last_change_seen_at": None,
        "consumer_lag": None,
        "consumer_lag_by_topic": None,
        "workers_alive": None,
    }
    assert sum(b["triggered"] for b in got["registration_activity"]) == got["actions_triggered"]


@pytest.mark.parametrize(("mode", "period"), CASES)
async def test_troubleshooting_figures(
    metrics_store: Store, recorded_stream: Stream, mode: Mode, period: str
) -> None:
    window = parse_window(period, now=NOW)
    got = await queries.troubleshooting(metrics_store, mode, window)
    want = expected_troubleshooting(recorded_stream, mode, window.start, window.end, window.bucket)

    got_connections = got.pop("connection_activity")
    want_connections = want.pop("connection_activity")
    for name, value in want.items():
        assert got[name] == value, name
    assert [c["connection_id"] for c in got_connections] == [
        c["connection_id"] for c in want_connections
    ]
    for g, w in zip(got_connections, want_connections, strict=True):
        latency: dict[str, Any] = g.pop("latency_ms")
        assert latency == pytest.approx(w.pop("latency_ms"), rel=1e-9)
        assert g == w


async def test_runtime_inputs_and_given_counts_are_reported(metrics_store: Store) -> None:
    window = parse_window("1h", now=NOW)
    seen = NOW - timedelta(seconds=3)
    got = await queries.summary(
        metrics_store,
        "live",
        window,
        active_flows=11,
        runtime=RuntimeStatus(
            last_change_seen_at=seen,
            consumer_lag=LagReading(
                (
                    GroupLag("certain-changes", "signal-pipeline", 40),
                    GroupLag("certain-changes", "signal-control", 12),
                    GroupLag("signal-deliveries", "signal-pipeline", 2),
                )
            ),
            workers_alive=2,
        ),
    )
    assert got["active_flows"] == 11
    status = got["processing_status"]
    assert (status["last_change_seen_at"], status["consumer_lag"], status["workers_alive"]) == (
        seen.isoformat(),
        42,
        2,
    )
    # A topic's lag is its slowest reader's; the total adds the topics.
    assert status["consumer_lag_by_topic"] == {"certain-changes": 40, "signal-deliveries": 2}
    assert got["period"]["bucket_seconds"] == 60
    assert len(got["registration_activity"]) == 60


async def test_explicit_shares_override_the_stored_connections(metrics_store: Store) -> None:
    window = parse_window("24h", now=NOW)
    got = await queries.troubleshooting(metrics_store, "live", window, rate_shares={"c1": 0.2})
    budgets = {
        c["connection_id"]: c["rate_limit"]["budget_per_20s"] for c in got["connection_activity"]
    }
    assert budgets == {"c1": 20, "c2": 100, "c3": 100}


async def test_an_empty_database_gives_zeros_not_errors(tmp_path: Any) -> None:
    store = await Store.open(tmp_path / "empty.duckdb", reader_threads=1, threads=1)
    try:
        window = parse_window("24h", now=NOW)
        s = await queries.summary(store, "live", window)
        t = await queries.troubleshooting(store, "test", window)
    finally:
        await store.close()
    assert (s["changes_processed"], s["actions_triggered"], s["active_flows"]) == (0, 0, 0)
    assert s["processing_status"]["last_change_recorded_at"] is None
    assert len(s["registration_activity"]) == 24
    assert all(
        b == {"start": b["start"], "changes": 0, "triggered": 0, "not_triggered": 0}
        for b in s["registration_activity"]
    )
    assert t["connection_activity"] == [] and t["retry_queue"]["open"] == 0
    assert t["validation_errors"] == {"total": 0, "rejected_input": 0, "data_failures": 0}
