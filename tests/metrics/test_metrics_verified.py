"""Deliveries verified in Marketo's activity log after a crash are counted apart from the
possible repeats: Troubleshooting `verified_after_crash` and `signal_verified_after_crash_total`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.messages import VERIFIED_IN_MARKETO
from stream.metrics import parse_window, prometheus, queries
from stream.store import OutcomeRow, Store
from tests.support.ledger import ledger_with_views, outcome

NOW = datetime.now(UTC).replace(microsecond=0)
S = timedelta(seconds=1)


def row(change_id: str, status: str, at: timedelta, **extra: Any) -> OutcomeRow:
    occurred = NOW - timedelta(hours=1)
    return outcome(
        change_id, status, NOW - at, occurred_at=occurred, action="trigger_campaign", **extra
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with ledger_with_views(tmp_path) as opened:
        yield opened


async def test_verified_deliveries_are_counted_and_not_as_repeats(store: Store) -> None:
    await store.record_outcomes(
        [
            row("verified", "queued", 50 * S),
            row("verified", "delivered", 40 * S, lead_result=VERIFIED_IN_MARKETO),
            row("repeated", "delivered", 30 * S, lead_result="updated", possible_repeat=True),
            row("plain", "delivered", 20 * S, lead_result="campaign_triggered"),
        ]
    )
    got = await queries.troubleshooting(
        store, "live", parse_window("1h", now=NOW + S), rate_shares={}
    )
    assert (got["verified_after_crash"], got["repeat_after_crash"]) == (1, 1)
    before = parse_window("1h", now=NOW - 45 * S)
    assert (await queries.troubleshooting(store, "live", before))["verified_after_crash"] == 0
    text = await prometheus.exposition(store, rate_shares={}, now=NOW + S)
    assert 'signal_verified_after_crash_total{mode="live"} 1' in text
    assert 'signal_verified_after_crash_total{mode="test"} 0' in text
    assert 'signal_repeat_after_crash_total{mode="live"} 1' in text
