"""A replay does not rewrite the figures: leads the first delivery created stay created (and
triggered, in the period of that delivery) when the replay's outcomes say "updated" or
"failed", through the real Store and the Summary query; the replay's rows stay in the ledger as
attempts of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.metrics import parse_window, queries
from stream.store import OutcomeRow, Store
from tests.support.ledger import ledger_with_views, outcome

NOW = datetime.now(UTC).replace(microsecond=0)
S = timedelta(seconds=1)
CREATED, UPDATED, FILTERED = 829, 120, 40
REPLAY = "rp-0123456789ab"


def row(change_id: str, status: str, at: datetime, **extra: Any) -> OutcomeRow:
    return outcome(change_id, status, at, occurred_at=NOW - timedelta(hours=6), **extra)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with ledger_with_views(tmp_path) as opened:
        yield opened


async def _first_deliveries(store: Store) -> None:
    first = NOW - timedelta(hours=5)
    rows = [row(f"c{i}", "delivered", first + i * S, lead_result="created") for i in range(CREATED)]
    rows += [
        row(f"u{i}", "delivered", first + i * S, lead_result="updated") for i in range(UPDATED)
    ]
    rows += [
        row(f"f{i}", "filtered_out", first, reason="filter 1 does not hold")
        for i in range(FILTERED)
    ]
    await store.record_outcomes(rows)


def _replayed(change_id: str, status: str, at: datetime, **extra: Any) -> OutcomeRow:
    return row(change_id, status, at, replay_id=REPLAY, **extra)


async def _figures(store: Store) -> tuple[int, int, int, int]:
    got = await queries.summary(store, "live", parse_window("24h", now=NOW), active_flows=1)
    return (
        got["leads_created"],
        got["leads_updated"],
        got["actions_triggered"],
        got["actions_not_triggered"]["total"],
    )


async def test_a_replay_keeps_created_leads_created(store: Store) -> None:
    await _first_deliveries(store)
    assert await _figures(store) == (CREATED, UPDATED, CREATED + UPDATED, FILTERED)
    replayed_at = NOW - timedelta(minutes=10)
    # Marketo finds every lead now: the replay's deliveries say "updated"; a few fail.
    replay = [
        _replayed(f"c{i}", "delivered", replayed_at + i * S, lead_result="updated")
        for i in range(CREATED - 681)
    ]
    replay += [
        _replayed(f"c{i}", "failed", replayed_at, category="data", reason="email: required")
        for i in range(CREATED - 681, CREATED - 671)
    ]
    replay += [
        _replayed(f"u{i}", "delivered", replayed_at, lead_result="updated") for i in range(UPDATED)
    ]
    # the replay delivers what the flow filtered out before: those are new deliveries
    replay += [
        _replayed(f"f{i}", "delivered", replayed_at, lead_result="created") for i in range(10)
    ]
    await store.record_outcomes(replay)
    assert await _figures(store) == (
        CREATED + 10,
        UPDATED,
        CREATED + UPDATED + 10,
        FILTERED - 10,
    ), "the first deliveries' figures stay put; only pairs never delivered change"
    attempts = await store.query(
        f"SELECT count(*) FROM outcome_attempts WHERE replay_id = '{REPLAY}'"
    )
    assert attempts.rows == ((len(replay),),), "every replayed outcome is kept as an attempt"


async def test_a_replay_in_the_same_batch_as_the_delivery_does_not_replace_it(
    store: Store,
) -> None:
    """The outcome recorder batches what arrives together: the first delivery and its replay
    may be folded in one transaction."""
    first = NOW - timedelta(minutes=30)
    rows = [
        row("c1", "delivered", first, lead_result="created"),
        _replayed("c1", "delivered", first + S, lead_result="updated"),
        _replayed("c1", "failed", first + 2 * S, category="technical", reason="HTTP 503"),
    ]
    await store.record_outcomes(rows)
    assert await _figures(store) == (1, 0, 1, 0)
    state = await store.query("SELECT status, lead_result, replayed, attempts FROM outcomes")
    assert state.rows == (("delivered", "created", False, 3),)
