"""Retention against a real DuckDB file: the pruner drops exactly what is due (payloads past
their age redacted, outcomes, attempts, Marketo calls, marks and resolved retry items past theirs
dropped), keeps what is still open, and every dashboard figure of a period is the same before
and after. The clock is a FakeClock: the ledger is dated relative to it and aged by advancing it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from stream.control.retention import Retention
from stream.metrics import parse_window, prometheus, queries
from stream.store import ApiCallRow, OutcomeRow, Store
from stream.store.retention import REDACTED_PAYLOAD, RetentionPolicy
from stream.store.rows import RetryItem
from tests.support.changes import change_row, registration_json
from tests.support.clock import FakeClock
from tests.support.ledger import ledger_with_views, outcome

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
OLD = START - timedelta(days=500)
"""An hour boundary 500 days back: past the outcomes' 400 days."""
MID = START - timedelta(days=100)
"""Past the payloads' 90 days, within the outcomes' 400."""
POLICY = RetentionPolicy(
    payload=timedelta(days=90), outcomes=timedelta(days=400), retry=timedelta(days=30), batch=3
)


def period_rows(base: datetime) -> list[OutcomeRow]:
    """A period's mix: every status, reasons, program statuses, a change with two flows, two
    changes of one registration, retries and a repeat after a crash."""
    m = timedelta(minutes=1)
    return [
        outcome("c1", "delivered", base + 1 * m, lead_result="created", marketo_lead_id=11),
        outcome("c1", "delivered", base + 2 * m, flow_id="flow-2", lead_result="updated"),
        outcome("c2", "delivered", base + 3 * m, code="R-c1", action="form_post"),
        outcome("c3", "filtered_out", base + 70 * m, reason="filter 2 does not hold: x"),
        outcome("c4", "not_activated", base + 80 * m, reason="flow watches api only"),
        outcome("c5", "failed", base + 90 * m, category="data", reason="bad email"),
        outcome("c6", "failed", base + 100 * m, category="technical", reason="502"),
        outcome("c6", "delivered", base + 130 * m, attempt=2, lead_result="updated"),
        outcome("c7", "failed", base + 140 * m, category="technical", reason="502"),
        outcome("c7", "failed", base + 150 * m, attempt=2, category="technical", reason="502"),
        outcome("c7", "delivered", base + 200 * m, attempt=3, possible_repeat=True),
        outcome(
            "c8",
            "delivered",
            base + 210 * m,
            action="update_program_status",
            lead_result="not_changed",
        ),
        outcome("c9", "delivered", base + 220 * m, action="update_program_status"),
        outcome("c10", "dry_run", base + 230 * m, mode="test"),
    ]


def calls(base: datetime) -> list[ApiCallRow]:
    m = timedelta(minutes=1)
    return [
        ApiCallRow("mkto", "/rest/v1/leads.json", base + 1 * m, 120.0, http_status=200),
        ApiCallRow("mkto", "/rest/v1/leads.json", base + 2 * m, 80.0, http_status=502),
        ApiCallRow(
            "mkto", "/rest/v1/leads.json", base + 61 * m, 50.0, http_status=200, marketo_error="606"
        ),
        ApiCallRow("other", "/rest/v1/leads.json", base + 62 * m, 10.0, http_status=200),
    ]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with ledger_with_views(tmp_path) as opened:
        yield opened


async def seed(store: Store) -> None:
    changes = [
        change_row(
            registration_json(f"old-{i}", email=f"old{i}@example.com"),
            received_at=OLD + timedelta(minutes=i),
        )
        for i in range(5)
    ]
    changes += [
        change_row(
            registration_json(f"mid-{i}", email=f"mid{i}@example.com"),
            received_at=MID + timedelta(minutes=i),
        )
        for i in range(4)
    ]
    changes.append(
        change_row(registration_json("new-1", email="new@example.com"), received_at=START)
    )
    await store.archive_changes(changes)
    await store.record_outcomes(period_rows(OLD))
    await store.record_outcomes([outcome(f"mid-{i}", "delivered", MID) for i in range(4)])
    # Old but open: in flight, and a pair the operator still has to see in the retry queue.
    await store.record_outcomes(
        [
            outcome("stuck", "queued", OLD + timedelta(minutes=5)),
            outcome("held", "failed", OLD + timedelta(minutes=6), category="data", reason="x"),
        ],
        [RetryItem("held", "flow-1", "abandoned", "data", 1, OLD + timedelta(minutes=6))],
    )
    # Resolved long ago: counted in its period's resolved items, then dropped.
    await store.record_outcomes(
        [outcome("fixed", "delivered", OLD + timedelta(minutes=7), attempt=2)],
        [RetryItem("fixed", "flow-1", "resolved", "technical", 2, OLD + timedelta(minutes=7))],
    )
    await store.record_api_calls(calls(OLD))
    await store.record_api_calls(calls(START - timedelta(hours=1)))


def figures(got: dict[str, Any]) -> dict[str, Any]:
    """The Troubleshooting answer without what is documented to come from kept calls only,
    and without the in-flight age (the real clock's)."""
    got["in_flight"].pop("oldest_queued_age_s")
    for connection in got["connection_activity"]:
        connection.pop("latency_ms")
        connection["rate_limit"] = {}
    return got


async def dashboards(store: Store, start: datetime, days: int) -> dict[str, Any]:
    window = parse_window(start=start, end=start + timedelta(days=days))
    out: dict[str, Any] = {}
    for mode in ("live", "test"):
        summary = await queries.summary(store, mode, window, active_flows=1)
        summary.pop("processing_status")  # the newest rows: kept whatever the period
        out[f"summary-{mode}"] = summary
        trouble = await queries.troubleshooting(store, mode, window, rate_shares={})
        out[f"troubleshooting-{mode}"] = figures(trouble)
    return out


async def scalar(store: Store, sql: str) -> Any:
    result = await store.query(sql, max_rows=10)
    return result.rows[0][0]


async def test_prune_drops_what_is_due_and_every_figure_stays(store: Store) -> None:
    await seed(store)
    clock = FakeClock(START)
    old_before = await dashboards(store, OLD, 2)
    mid_before = await dashboards(store, MID - timedelta(hours=1), 2)
    assert old_before["summary-live"]["changes_processed"] == 11  # c1..c9, held, fixed
    assert old_before["summary-live"]["unique_registrations"] == 10  # c2 is R-c1's
    assert old_before["troubleshooting-live"]["retry_queue"]["by_status"]["resolved"] == 1
    counters_before = await prometheus.exposition(store, now=START)

    retention = Retention(store, POLICY, clock=clock)
    report = await retention.prune()

    assert report.rows["change_log:redact"] == 9  # the old and mid payloads; not the new one
    assert report.rows["delivery_state:drop"] == 12  # c1 (two flows), c2..c10, fixed
    assert report.rows["outcome_log:drop"] == 15  # every old attempt but stuck's and held's
    assert report.rows["api_call_log:drop"] == 4
    assert report.rows["retry_items:drop"] == 1
    assert report.batches > 10  # bounded steps of 3 rows
    assert await dashboards(store, OLD, 2) == old_before
    assert await dashboards(store, MID - timedelta(hours=1), 2) == mid_before
    counters_after = await prometheus.exposition(store, now=START)
    for family in (
        "signal_outcome_attempts_total",
        "signal_marketo_calls_total",
        "signal_marketo_call_errors_total",
        "signal_repeat_after_crash_total",
    ):
        assert _family(counters_after, family) == _family(counters_before, family), family

    # What is left: open pairs, recent rows; payloads past 90 days redacted, rows and counts kept.
    left = await store.query(
        "SELECT change_id, status FROM outcomes WHERE processed_at < "
        f"TIMESTAMPTZ '{(START - timedelta(days=400)).isoformat()}' ORDER BY 1",
        max_rows=10,
    )
    assert list(left.rows) == [("held", "failed"), ("stuck", "queued")]
    assert await scalar(store, "SELECT count(*) FROM changes") == 10
    payloads = await store.query("SELECT change_id, payload FROM changes ORDER BY 1", max_rows=20)
    for change_id, payload in payloads.rows:
        if change_id == "new-1":
            assert "new@example.com" in payload
        else:
            assert json.loads(payload) == json.loads(REDACTED_PAYLOAD), change_id
    assert mid_before["summary-live"]["changes_processed"] == 4  # redacted, still counted
    assert await scalar(store, "SELECT count(*) FROM api_calls") == 4  # the recent ones

    # A second pass finds nothing; the open pair goes once its item is resolved and aged.
    again = await retention.prune()
    assert sum(again.rows.values()) == 0
    await store.record_outcomes(
        [],
        [RetryItem("held", "flow-1", "resolved", "data", 1, OLD + timedelta(minutes=8))],
    )
    third = await retention.prune()
    assert third.rows["retry_items:drop"] == 1
    assert third.rows["delivery_state:drop"] == 1
    after = await dashboards(store, OLD, 2)
    assert after["summary-live"] == old_before["summary-live"]
    assert after["troubleshooting-live"]["retry_queue"]["by_status"]["resolved"] == 2
    assert after["troubleshooting-live"]["retry_queue"]["by_status"]["abandoned"] == 0


async def test_nothing_is_due_before_its_age(store: Store) -> None:
    await seed(store)
    clock = FakeClock(OLD + timedelta(days=1))
    report = await Retention(store, POLICY, clock=clock).prune()
    assert sum(report.rows.values()) == 0
    assert await scalar(store, "SELECT count(*) FROM outcome_attempts") == 21
    clock.advance(days=90)  # the oldest payloads are 91 days old now, the outcomes not 400
    report = await Retention(store, POLICY, clock=clock).prune()
    assert report.rows["change_log:redact"] == 5
    assert report.rows["delivery_state:drop"] == 0


async def test_status_shows_policy_disk_and_oldest_rows(store: Store) -> None:
    await seed(store)
    retention = Retention(store, POLICY, clock=FakeClock(START))
    before = await retention.status()
    assert before["policy"]["outcomes_days"] == 400
    assert before["file_bytes"]["database"] > 0
    assert before["oldest"]["outcome_log"] == (OLD + timedelta(minutes=1)).isoformat()
    await retention.prune()
    after = await retention.status()
    assert after["oldest"]["outcome_log"] == (OLD + timedelta(minutes=5)).isoformat()  # stuck
    assert after["oldest"]["api_call_log"] == (START - timedelta(minutes=59)).isoformat()
    assert after["oldest"]["change_log_payload"] == START.isoformat()
    assert after["last_pass"]["rows"]["api_call_log:drop"] == 4
    runtime = queries.RuntimeStatus(retention=retention.snapshot())
    text = await prometheus.exposition(store, now=START, runtime=runtime)
    assert 'signal_ledger_retention_days{what="payload"} 90' in text
    assert 'signal_ledger_file_bytes{file="database"} ' in text
    assert 'signal_ledger_oldest_row_timestamp_seconds{table="outcome_log"}' in text
    assert 'signal_ledger_retention_rows_total{action="drop",table="api_call_log"} 4' in text


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SIGNAL_RETAIN_PAYLOAD_DAYS", "0", "retain_payload_days"),
        ("SIGNAL_RETAIN_OUTCOMES_DAYS", "forever", "retain_outcomes_days"),
        ("SIGNAL_RETAIN_RETRY_DAYS", "-1", "retain_retry_days"),
        ("SIGNAL_RETENTION_BATCH", "5", "retention_batch"),
        ("SIGNAL_RETAIN_OUTCOMES_DAYS", "3", "SIGNAL_RECOVERY_HORIZON_DAYS"),
    ],
)
def test_nonsense_settings_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=expected) as error:
        Settings()
    assert value in str(error.value)


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert (s.retain_payload_days, s.retain_outcomes_days, s.retain_retry_days) == (90, 400, 30)


def _family(text: str, name: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith(name + "{"))
