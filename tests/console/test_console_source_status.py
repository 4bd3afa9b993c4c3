"""How a Certain source's poller state reads on the Connections screen (console.source_status),
from the JSON `GET /api/v1/sources` answers with."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from apiclient.rows import SourceRow
from console import source_status
from tests.support.clock import FIXED


def _row(**fields: Any) -> SourceRow:
    body: dict[str, Any] = {
        "id": "acme",
        "name": "ACME",
        "host": "https://app.certain.com/",
        "account_code": "ACME",
        "state": "polling",
        "password_set": True,
        "last_poll": {"records": 12, "changes": 3, "requests": 2},
        "totals": {"errors": 0},
    }
    body.update(fields)
    return SourceRow.from_json(body)


def test_each_state_reads_as_what_happened() -> None:
    assert source_status.state_text(_row()).plain == "polling"
    backing = _row(state="backing off", retry_at=(FIXED + timedelta(seconds=5)).isoformat())
    assert source_status.state_text(backing).plain == (
        f"backing off until {(FIXED + timedelta(seconds=5)).strftime('%H:%M:%S')}"
    )
    refused = _row(state="stopped: unauthorized", last_error="Event/ACME: 401 Invalid credentials")
    assert source_status.state_text(refused).plain == "stopped: credentials refused (401)"
    forbidden = _row(state="stopped: unauthorized", last_error="Event/NOPE: 403 no access")
    assert source_status.state_text(forbidden).plain == "stopped: credentials refused (403)"
    assert source_status.state_text(_row(state="stopped: no password")).plain == (
        "stopped: no password"
    )
    assert source_status.state_text(_row(state="inactive")).plain == "inactive"


def test_lag_last_poll_and_records() -> None:
    assert source_status.lag_text(_row()) == "—"
    assert source_status.lag_text(_row(lag_s=42.7)) == "42s"
    assert source_status.lag_text(_row(lag_s=600)) == "10m"
    assert source_status.lag_text(_row(lag_s=3 * 3600)) == "3h"
    assert source_status.last_poll_text(_row(), FIXED) == "—"
    polled = _row(last_poll_at=(FIXED - timedelta(seconds=7)).isoformat())
    assert source_status.last_poll_text(polled, FIXED) == "7s ago"
    assert source_status.records_text(polled) == "12"


def test_the_detail_names_the_last_error_and_a_missing_password() -> None:
    row = _row(
        state="stopped: unauthorized",
        password_set=False,
        last_error="Event/ACME: 401 Invalid credentials",
        totals={"errors": 1},
    )
    text = source_status.detail_text(row).plain
    assert "https://app.certain.com · account ACME · no password · 1 error" in text
    assert text.endswith("last error: Event/ACME: 401 Invalid credentials")
