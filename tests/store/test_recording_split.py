"""Recording splits a batch by whether its (change, flow) pairs are stored: new pairs take a
plain insert, stored ones the upsert. The ledger it leaves is the one the upsert alone leaves,
and a batch recorded again (whole or in part) still counts once."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from stream.control import recorder as recorder_module
from stream.control import retry_scheduler
from stream.control.recorder import Recorder
from stream.store import RetryItem, Store
from stream.store import store as store_module
from stream.store.base import registered
from stream.store.retry_queue import upsert_retries
from tests.store.test_recording_paths import batches

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

LEDGER = (
    "SELECT * EXCLUDE (updated_at) FROM delivery_state ORDER BY change_id, flow_id",
    "SELECT * EXCLUDE (recorded_at) FROM outcome_log ORDER BY outcome_id",
    "SELECT * FROM retry_items ORDER BY change_id, flow_id",
)


def retry_item(change_id: str, flow_id: str, n: int) -> RetryItem:
    return RetryItem(
        change_id=change_id,
        flow_id=flow_id,
        flow_name=f"Flow {flow_id}",
        integration="mkto",
        status="pending",
        category="technical",
        attempts=1 + n % 3,
        reason=f"timeout {n}",
        next_attempt_at=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(seconds=n),
        created_at=T0 - timedelta(hours=1),
    )


async def ledger_after(path: Path, seed: int) -> list[list[tuple[Any, ...]]]:
    rng = random.Random(seed)
    store = await Store.open(path, reader_threads=1, threads=1)
    try:
        for n, rows in enumerate(batches(seed)):
            # Items for some pairs of the batch (stored or not) and one of no pair of it.
            items = [retry_item(r.change_id, r.flow_id, n) for r in rows if rng.random() < 0.3]
            items.append(retry_item(f"other-{rng.randrange(5)}", "flow-9", n))
            await store.record_outcomes(rows, items)
            if n % 7 == 6:
                await store.record_outcomes(rows)  # redelivered: nothing changes
        return await store.read(lambda con: [con.execute(q).fetchall() for q in LEDGER])
    finally:
        await store.close()


def on_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stored pairs take the ON CONFLICT upsert (state and retry items) instead of the UPDATE."""

    def upsert_state(con: Any, statement: str, stored: pa.Table, within: Any = None) -> None:
        with registered(con, "batch", stored):
            con.execute(statement).fetchall()

    monkeypatch.setattr(store_module, "_update_stored", upsert_state)
    monkeypatch.setattr(store_module, "_update_stored_retries", upsert_retries)


@pytest.mark.parametrize("seed", [5, 23, 41])
async def test_the_split_leaves_what_the_upsert_alone_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Three ways to one ledger: new pairs inserted and stored ones updated (what recording
    does), stored ones upserted instead, and every pair through the upsert."""
    updates: list[str] = []
    as_update = store_module._as_update
    split_by_stored = store_module._split_by_stored
    looked_within: list[bool] = []

    def watched(statement: str, within: Any = None) -> str:
        updates.append(statement)
        return as_update(statement, within)

    def watched_split(con: Any, table: pa.Table, stored_in: str, within: Any = None) -> Any:
        if stored_in == "delivery_state":
            looked_within.append(within is not None)
        return split_by_stored(con, table, stored_in, within)

    monkeypatch.setattr(store_module, "_as_update", watched)
    monkeypatch.setattr(store_module, "_split_by_stored", watched_split)
    updated = await ledger_after(tmp_path / "update.duckdb", seed)
    assert len(set(updates)) >= 3, "the final, queued and duplicate statements ran as updates"
    # Most batches look for stored pairs within their occurred_at range; one whose pair's
    # state has an occurred_at outside it (`occurred`) is recorded again looking at them all.
    assert looked_within.count(True) > looked_within.count(False) > 0
    monkeypatch.setattr(store_module, "_split_by_stored", split_by_stored)

    on_conflict(monkeypatch)
    split = await ledger_after(tmp_path / "split.duckdb", seed)

    def all_stored(
        con: Any, table: pa.Table, stored_in: str, within: Any = None
    ) -> tuple[pa.Table, pa.Table]:
        return table.slice(0, 0), table

    monkeypatch.setattr(store_module, "_split_by_stored", all_stored)
    upserted = await ledger_after(tmp_path / "upsert.duckdb", seed)
    state, outcomes, items = split
    assert len(state) > 30 and len(outcomes) > 100 and len(items) > 10
    assert split == upserted
    assert updated == upserted


def outcome(i: int, **fields: Any) -> bytes:
    failed = i % 6 == 5
    base: dict[str, Any] = {
        "change_id": f"c-{i:05d}",
        "flow_id": "f1",
        "flow_name": "F1",
        "mode": "live",
        "status": "failed" if failed else "delivered",
        "category": "technical" if failed else None,
        "retryable": failed,
        "reason": "HTTP 503" if failed else None,
        "marketo_lead_id": None if failed else i,
        "lead_result": None if failed else "created",
        "occurred_at": T0.isoformat(),
        "processed_at": (T0 + timedelta(seconds=1)).isoformat(),
    }
    return json.dumps({**base, **fields}).encode()


async def counts(store: Store) -> tuple[int, ...]:
    sql = """SELECT (SELECT count(*) FROM outcome_log), (SELECT count(*) FROM delivery_state),
                    (SELECT count(*) FROM retry_items),
                    (SELECT count(*) FROM delivery_state WHERE status = 'delivered')"""
    row = await store.read(lambda con: con.execute(sql).fetchall())
    return tuple(int(v) for v in row[0])


async def test_a_redelivered_batch_through_the_recorder_records_once(db_path: Path) -> None:
    store = await Store.open(db_path, reader_threads=2, threads=2)
    try:
        recorder = Recorder(store, None)  # type: ignore[arg-type]  # outcomes need no config
        first = [outcome(i) for i in range(600)]
        first.append(outcome(600, status="queued", siblings=["f2", "f3"]))
        assert await recorder.record_outcomes(first) == 603
        after_first = await counts(store)
        assert after_first == (603, 603, 100, 500)

        assert await recorder.record_outcomes(first) == 0
        assert await counts(store) == after_first

        # Half recorded before, half new; the new half resolves a failed pair.
        later = (T0 + timedelta(minutes=5)).isoformat()
        fix = outcome(5, status="delivered", attempt=2, processed_at=later, lead_result="updated")
        mixed = [*first[300:], *(outcome(i) for i in range(1000, 1300)), fix]
        assert await recorder.record_outcomes(mixed) == 301
        assert await counts(store) == (904, 903, 150, 751)
        state = await store.read(
            lambda con: con.execute(
                "SELECT d.status, d.attempts, r.status FROM delivery_state d "
                "JOIN retry_items r USING (change_id, flow_id) WHERE change_id = 'c-00005'"
            ).fetchall()
        )
        assert state == [("delivered", 2, "resolved")]
    finally:
        await store.close()


async def test_a_planning_failure_rolls_the_batch_back(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When planning the retry items fails nothing of the batch is kept, and the batch can
    run again."""
    store = await Store.open(db_path, reader_threads=2, threads=2)
    try:
        recorder = Recorder(store, None)  # type: ignore[arg-type]  # outcomes need no config
        plan = retry_scheduler.plan_retry

        def broken(*args: Any, **kwargs: Any) -> RetryItem | None:
            raise RuntimeError("planner fault")

        monkeypatch.setattr(recorder_module, "plan_retry", broken)
        batch = [outcome(i) for i in range(12)]
        with pytest.raises(RuntimeError, match="planner fault"):
            await recorder.record_outcomes(batch)
        assert await counts(store) == (0, 0, 0, 0)

        monkeypatch.setattr(recorder_module, "plan_retry", plan)
        assert await recorder.record_outcomes(batch) == 12
        assert await counts(store) == (12, 12, 2, 10)
    finally:
        await store.close()
