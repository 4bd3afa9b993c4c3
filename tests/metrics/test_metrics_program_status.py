"""Program status changes in the Summary (changed and not changed) and in the Activity feed,
through the real Store on a real DuckDB file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stream.metrics import activity, parse_window, queries
from stream.store import OutcomeRow, Store

NOW = datetime.now(UTC).replace(microsecond=0)


def row(n: int, lead_result: str, reason: str, action: str = "update_program_status") -> OutcomeRow:
    at = NOW - timedelta(minutes=30 - n)
    return OutcomeRow(
        change_id=f"chg-{n}",
        flow_id="program-flow",
        flow_name="Program status",
        mode="live",
        status="delivered",
        occurred_at=at - timedelta(seconds=2),
        processed_at=at,
        registration_code=f"REG{n}",
        event_code="EV1",
        action=action,
        connection_id="mkto",
        lead_result=lead_result,
        reason=reason,
        marketo_lead_id=100 + n,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "signal.duckdb", reader_threads=1, threads=1)
    try:
        await opened.record_outcomes(
            [
                row(0, "created", "program 1044: status 'Registered'"),
                row(1, "updated", "program 1044: status 'Attended'"),
                row(
                    2,
                    "not_changed",
                    "program 1044: not changed to 'Registered': Lead already in or past status",
                ),
                row(3, "updated", "", action="create_update_lead"),
            ],
            [],
        )
        yield opened
    finally:
        await opened.close()


async def test_summary_counts_changed_and_not_changed(store: Store) -> None:
    window = parse_window("24h", now=NOW + timedelta(minutes=1))
    got = await queries.summary(store, "live", window)
    assert got["program_status_changes"] == {"changed": 2, "not_changed": 1}
    assert got["actions_triggered"] == 4
    empty = await queries.summary(store, "test", window)
    assert empty["program_status_changes"] == {"changed": 0, "not_changed": 0}


async def test_activity_feed_shows_the_program_and_status(store: Store) -> None:
    window = parse_window("24h", now=NOW + timedelta(minutes=1))
    page = await activity.page(store, "live", window)
    details = [i["detail"] for i in page["items"] if i["action"] == "update_program_status"]
    assert details == [
        "program 1044: not changed to 'Registered': Lead already in or past status",
        "program 1044: status 'Attended'",
        "program 1044: status 'Registered'",
    ]
