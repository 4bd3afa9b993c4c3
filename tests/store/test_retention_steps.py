"""Retention's drop steps on a real DuckDB file, one step at a time: every step takes at most a
batch of the oldest due rows, a row leaves its table in the same transaction its count enters the
rollups (so table plus rollup is constant after every batch), a pair with a retry item keeps its
rows, and nothing younger than the cutoff goes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from stream.store import Store
from stream.store.retention import (
    DROP_ATTEMPTS,
    DROP_OUTCOMES,
    STEPS,
    Drop,
    Step,
)
from stream.store.rows import RetryItem
from stream.store.writer import Con
from tests.store.conftest import T0, outcome

CUTOFF = T0 + timedelta(hours=10)


def _step(drop: Drop) -> Step:
    return next(s for s in STEPS if s.table == drop.table and s.action == "drop")


async def _count(store: Store, sql: str) -> int:
    return int(await _value(store, sql))


async def _ids(store: Store, table: str) -> str:
    return str(
        await _value(store, f"SELECT string_agg(change_id, ',' ORDER BY change_id) FROM {table}")
    )


async def _value(store: Store, sql: str) -> Any:
    def read(con: Con) -> Any:
        return con.execute(sql).fetchall()[0][0]

    return await store.read(read)


async def _run(store: Store, step: Step, before: datetime, batch: int) -> int:
    def work(con: Con) -> int:
        return step.run(con, before, batch)

    return await store.write(work)


async def _ledger(store: Store) -> None:
    """Seven pairs an hour apart (hours 0..6, the third retried once), due; one held by a retry
    item, due too; two at hours 11 and 12, not due."""
    for hour in range(7):
        at = T0 + timedelta(hours=hour)
        await store.record_outcomes(
            [outcome(f"c{hour}", processed_at=at, occurred_at=at - timedelta(seconds=2))]
        )
    at = T0 + timedelta(hours=2, minutes=5)
    await store.record_outcomes(
        [outcome("c2", processed_at=at, occurred_at=T0, attempt=2, lead_result="updated")]
    )
    held = T0 + timedelta(hours=3, minutes=30)
    await store.record_outcomes(
        [outcome("held", status="failed", category="data", reason="bad", processed_at=held)],
        [RetryItem("held", "flow-1", "pending", "data", 1, held)],
    )
    for hour in (11, 12):
        at = T0 + timedelta(hours=hour)
        await store.record_outcomes([outcome(f"young{hour}", processed_at=at)])


async def test_outcome_steps_take_a_batch_at_a_time_and_keep_table_plus_rollup(
    store: Store,
) -> None:
    await _ledger(store)
    for drop, rollup, expected in (
        (DROP_OUTCOMES, "SELECT coalesce(sum(pairs), 0) FROM rollup_outcomes", 7),
        (DROP_ATTEMPTS, "SELECT coalesce(sum(attempts), 0) FROM rollup_attempts", 8),
    ):
        step = _step(drop)
        total = await _count(store, f"SELECT count(*) FROM {drop.table}")
        done = []
        while True:
            n = await _run(store, step, CUTOFF, 3)
            done.append(n)
            kept = await _count(store, f"SELECT count(*) FROM {drop.table}")
            assert kept + await _count(store, rollup) == total, (drop.table, done)
            if n < 3:
                break
        assert done == [3] * (expected // 3) + [expected % 3], drop.table
        assert await _ids(store, drop.table) == "held,young11,young12", drop.table


async def test_a_step_takes_the_oldest_due_rows_first(store: Store) -> None:
    await _ledger(store)
    step = _step(DROP_OUTCOMES)
    assert await _run(store, step, CUTOFF, 2) == 2
    assert await _ids(store, "delivery_state") == "c2,c3,c4,c5,c6,held,young11,young12"


async def test_nothing_is_dropped_before_the_cutoff(store: Store) -> None:
    await _ledger(store)
    for step in STEPS:
        if step.action == "drop":
            assert await _run(store, step, T0, 100) == 0, step.table
