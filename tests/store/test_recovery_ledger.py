"""The ledger side of recovery on a real DuckDB file: which pairs and changes have no final
outcome, the recovery log, the figures for metrics and the delivered keys to re-seed.

Times are arguments, so every moment is relative to the shared fixed T0."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from stream.store import Store
from stream.store.recovery import (
    delivered_keys,
    ledger_figures,
    note_nothing_expected,
    note_redriven,
    note_stranded,
    queued_overdue,
    unrouted_changes,
)
from stream.store.schema import MIGRATIONS
from tests.store.conftest import T0, change, outcome

GRACE = timedelta(seconds=60)
HORIZON = timedelta(days=7)
NOW = T0 + timedelta(hours=1)
CUTOFF = NOW - GRACE


async def test_migration_3_adds_the_recovery_log(store: Store) -> None:
    assert 3 in [m.version for m in MIGRATIONS]
    assert await store.schema_version() >= 3
    result = await store.query("SELECT count(*) FROM recovery_log")
    assert result.rows == ((0,),)


async def test_queued_overdue_takes_old_queued_pairs_within_the_horizon(store: Store) -> None:
    await store.archive_changes(
        [
            change("old", received_at=NOW - timedelta(minutes=10)),
            change("young", received_at=NOW - timedelta(minutes=10)),
            change("done", received_at=NOW - timedelta(minutes=10)),
            change("ancient", received_at=NOW - HORIZON - timedelta(minutes=1)),
        ]
    )
    queued: dict[str, Any] = {"status": "queued", "lead_result": None, "marketo_lead_id": None}
    await store.record_outcomes(
        [
            outcome("old", processed_at=NOW - timedelta(minutes=5), **queued),
            outcome("young", processed_at=NOW - timedelta(seconds=30), **queued),
            outcome("done", processed_at=NOW - timedelta(minutes=5), **queued),
            outcome("done", processed_at=NOW - timedelta(minutes=4)),
            outcome("ancient", processed_at=NOW - timedelta(minutes=5), **queued),
        ]
    )
    pairs = await queued_overdue(store, cutoff=CUTOFF, horizon=NOW - HORIZON, limit=10)
    assert [(p.change_id, p.flow_id, p.entry) for p in pairs] == [("old", "flow-1", None)]
    assert pairs[0].since == NOW - timedelta(minutes=5)
    assert pairs[0].attempt == 1

    # re-driven within the grace: left alone; re-driven before it: back, with its count
    await note_redriven(store, [("old", "flow-1", "queued")], NOW - timedelta(seconds=10))
    assert await queued_overdue(store, cutoff=CUTOFF, horizon=NOW - HORIZON, limit=10) == []
    later = NOW + GRACE
    again = await queued_overdue(store, cutoff=later - GRACE, horizon=later - HORIZON, limit=10)
    assert [(p.change_id, p.entry.redrives if p.entry else None) for p in again] == [
        ("old", 1),
        ("young", None),
    ], "and the young one has become overdue meanwhile"

    # given up on: never offered again
    await note_stranded(store, [("old", "flow-1", "queued")], later)
    left = await queued_overdue(store, cutoff=later, horizon=later - HORIZON, limit=10)
    assert [p.change_id for p in left] == ["young"]


async def test_unrouted_changes_are_published_changes_without_any_outcome(store: Store) -> None:
    ten = timedelta(minutes=10)
    await store.archive_changes(
        [
            change("lost", received_at=NOW - ten),
            change("routed", received_at=NOW - ten),
            change("fresh", received_at=NOW - timedelta(seconds=20)),
            change("expects-nothing", received_at=NOW - ten),
        ]
    )
    # accepted by the ingest API and never published: the outbox's, not an unrouted change
    await store.accept_changes(
        [dataclasses.replace(change("outbox"), received_at=NOW - ten, source="api")]
    )
    await store.record_outcomes([outcome("routed", status="not_activated", lead_result=None)])
    await note_nothing_expected(store, [("expects-nothing", "no flow")], NOW)

    found = await unrouted_changes(store, cutoff=CUTOFF, horizon=NOW - HORIZON, limit=10)
    assert [(c.row.change_id, c.since, c.entries) for c in found] == [("lost", NOW - ten, {})]
    assert found[0].row.payload.startswith("{")

    await note_redriven(store, [("lost", "flow-1", "unrouted")], NOW - timedelta(minutes=2))
    found = await unrouted_changes(store, cutoff=CUTOFF, horizon=NOW - HORIZON, limit=10)
    assert [c.row.change_id for c in found] == ["lost"]
    entry = found[0].entries["flow-1"]
    assert (entry.redrives, entry.last_at, entry.stranded_at) == (
        1,
        NOW - timedelta(minutes=2),
        None,
    )
    assert (
        await unrouted_changes(
            store, cutoff=NOW - timedelta(minutes=3), horizon=NOW - HORIZON, limit=10
        )
        == []
    ), "re-driven after that cutoff: waits"
    assert (
        await unrouted_changes(store, cutoff=CUTOFF, horizon=NOW - timedelta(minutes=5), limit=10)
        == []
    ), "received before the horizon"


async def test_the_log_counts_redrives_and_keeps_the_first_stranding(store: Store) -> None:
    first, second = NOW, NOW + timedelta(minutes=1)
    await note_redriven(store, [("c", "f", "queued"), ("c", "f", "queued")], first)
    await note_redriven(store, [("c", "f", "queued")], second)
    await note_stranded(store, [("c", "f", "queued")], second)
    await note_stranded(store, [("c", "f", "queued")], second + timedelta(minutes=1))
    await note_nothing_expected(store, [("d", "no flow")], first)
    await note_nothing_expected(store, [("d", "still no flow")], second)
    result = await store.query(
        "SELECT change_id, flow_id, reason, note, redrives, first_at, last_at, stranded_at "
        "FROM recovery_log ORDER BY change_id"
    )
    assert result.rows == (
        ("c", "f", "queued", None, 2, first, second, second),
        ("d", "", "nothing_expected", "no flow", 0, first, first, None),
    )


async def test_figures_count_what_waits_and_what_was_given_up(store: Store) -> None:
    ten = timedelta(minutes=10)
    await store.archive_changes(
        [
            change("lost", received_at=NOW - ten),
            change("queued", received_at=NOW - ten),
            change("stranded", received_at=NOW - ten),
            change("stranded-then-delivered", received_at=NOW - ten),
        ]
    )
    await store.accept_changes(
        [
            dataclasses.replace(
                change("outbox"), received_at=NOW - timedelta(minutes=20), source="api"
            )
        ]
    )
    queued: dict[str, Any] = {"status": "queued", "lead_result": None, "marketo_lead_id": None}
    await store.record_outcomes(
        [
            outcome("queued", processed_at=NOW - timedelta(minutes=9), **queued),
            outcome("stranded", processed_at=NOW - timedelta(minutes=9), **queued),
            outcome("stranded-then-delivered", processed_at=NOW - timedelta(minutes=9), **queued),
            outcome("stranded-then-delivered", processed_at=NOW - timedelta(minutes=1)),
        ]
    )
    await note_redriven(store, [("stranded", "flow-1", "queued")], NOW - ten)
    await note_redriven(store, [("stranded", "flow-1", "queued")], NOW - ten)
    await note_stranded(
        store,
        [("stranded", "flow-1", "queued"), ("stranded-then-delivered", "flow-1", "queued")],
        NOW,
    )
    figures = await ledger_figures(store, cutoff=CUTOFF, horizon=NOW - HORIZON)
    assert figures.unpublished == 1
    assert figures.unrouted == 1
    assert figures.queued_overdue == 2
    assert figures.redriven_total == 2
    assert figures.stranded == 1, "a stranded pair delivered since no longer counts"
    assert figures.oldest == NOW - timedelta(minutes=20)


async def test_delivered_keys_name_each_delivery_and_replay_once(store: Store) -> None:
    await store.record_outcomes(
        [
            outcome("a", processed_at=NOW - timedelta(hours=2)),
            outcome("a", processed_at=NOW - timedelta(hours=1), attempt=2, outcome_id="a-again"),
            outcome(
                "a",
                processed_at=NOW - timedelta(minutes=5),
                replayed=True,
                replay_id="rp-1",
                outcome_id="a-replay",
            ),
            outcome("b", status="failed", category="technical", lead_result=None),
            outcome("old", processed_at=NOW - HORIZON - timedelta(hours=1)),
        ]
    )
    keys = await delivered_keys(store, since=NOW - HORIZON)
    assert sorted((k.change_id, k.flow_id, k.replay_id or "", k.delivered_at) for k in keys) == [
        ("a", "flow-1", "", NOW - timedelta(hours=2)),
        ("a", "flow-1", "rp-1", NOW - timedelta(minutes=5)),
    ]
