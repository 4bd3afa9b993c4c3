"""Recording's fast paths leave what the careful ones leave: a batch with one final row per
(change, flow) updates the state without window functions, and a batch whose outcomes are all new
is inserted without conflict handling."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from stream.store import OutcomeRow, Store
from stream.store import store as store_module
from tests.store.conftest import T0, outcome

STATUSES = ["delivered", "failed", "filtered_out", "queued", "skipped_duplicate", "would_send"]


BATCHES = 15
"""Batches per ledger. At 15 as at 30 (half the CPU of these tests and of
test_recording_split.py), every seed's ledger differs from the reference when stored pairs skip
the UPDATE, their retry items skip theirs, the UPDATE loses the upsert's conflict condition, or
every batch takes the one-final-row-per-pair statement; and it holds 80-90 pairs from 110-210
outcomes, most pairs written more than once."""


def occurred(change_id: str, flow_id: str, attempt: int) -> datetime:
    """A change's time, the same for its every outcome; except, as for an outcome salvaged
    from a broken record (the time it was read), a third attempt of flow-2's."""
    if attempt == 3 and flow_id == "flow-2":
        return T0 + timedelta(minutes=5)
    return T0 - timedelta(minutes=int(change_id.removeprefix("c")))


def batches(seed: int) -> list[list[OutcomeRow]]:
    """Batches over a few pairs: most with one row per pair, some with several, replays and
    rows older than the state among them; each change with a time of its own, and a few
    outcomes with another (`occurred`)."""
    rng = random.Random(seed)
    out = []
    for n in range(BATCHES):
        size = rng.randrange(1, 25)
        repeat_pairs = n % 5 == 4
        pairs = [(f"c{rng.randrange(40)}", f"flow-{rng.randrange(3)}") for _ in range(size)]
        if not repeat_pairs:
            pairs = list(dict.fromkeys(pairs))
        rows = []
        for change_id, flow_id in pairs:
            status = rng.choice(STATUSES)
            fields: dict[str, Any] = {
                "status": status,
                "processed_at": T0 + timedelta(seconds=rng.randrange(30)),
                "attempt": rng.randrange(1, 4),
                "lead_result": "created" if status == "delivered" else None,
            }
            fields["occurred_at"] = occurred(change_id, flow_id, fields["attempt"])
            if status == "failed":
                fields.update(category="technical", reason="timeout")
            if rng.random() < 0.2:
                fields["replay_id"] = f"rp-{rng.randrange(3)}"
            rows.append(outcome(change_id, flow_id, **fields))
        if repeat_pairs:
            again = T0 + timedelta(seconds=rng.randrange(30))
            attempt = rng.randrange(1, 4)
            rows.append(
                outcome(
                    *pairs[0],
                    processed_at=again,
                    attempt=attempt,
                    occurred_at=occurred(*pairs[0], attempt),
                )
            )
        out.append(rows)
    return out


async def state_after(path: Path, seed: int) -> list[tuple[Any, ...]]:
    store = await Store.open(path, reader_threads=1, threads=1)
    try:
        for rows in batches(seed):
            await store.record_outcomes(rows)
        return await store.read(
            lambda con: con.execute(
                "SELECT * EXCLUDE (updated_at) FROM delivery_state ORDER BY change_id, flow_id"
            ).fetchall()
        )
    finally:
        await store.close()


@pytest.mark.parametrize("seed", [3, 11])
async def test_the_one_per_pair_statement_leaves_the_ranked_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    taken: list[bool] = []
    decide = store_module._one_final_row_per_pair

    def watched(final: pa.Table) -> bool:
        taken.append(decide(final))
        return taken[-1]

    monkeypatch.setattr(store_module, "_one_final_row_per_pair", watched)
    fast = await state_after(tmp_path / "fast.duckdb", seed)
    assert any(taken) and not all(taken), "both statements ran"

    monkeypatch.setattr(store_module, "_one_final_row_per_pair", lambda final: False)
    ranked = await state_after(tmp_path / "ranked.duckdb", seed)
    assert len(fast) > 30
    assert fast == ranked


async def test_a_batch_partly_recorded_before_adds_only_its_new_outcomes(store: Store) -> None:
    """A redelivered batch fails the plain insert and is written again skipping what the
    ledger has: its new outcomes count once, the old ones not again."""
    s = timedelta(seconds=1)
    first = [outcome("c1"), outcome("c2", status="failed", category="data", lead_result=None)]
    assert await store.record_outcomes(first) == 2
    later = outcome("c2", processed_at=T0 + 9 * s, attempt=2)
    assert await store.record_outcomes([*first, later, outcome("c3")]) == 2
    state = await store.read(
        lambda con: con.execute(
            "SELECT change_id, status, attempts FROM delivery_state ORDER BY 1"
        ).fetchall()
    )
    assert state == [("c1", "delivered", 1), ("c2", "delivered", 2), ("c3", "delivered", 1)]


async def test_a_state_of_another_time_is_found_by_recording_the_batch_again(
    store: Store,
) -> None:
    """Recording looks for a batch's stored pairs among states of the batch's occurred_at
    range. A state written with another time (an outcome salvaged from a broken record takes
    the time it was read) looks new: its plain insert fails the key, and the batch is recorded
    again looking at every state, so the pair is updated, once, and nothing is written twice."""
    salvaged = outcome(
        "c1",
        status="failed",
        category="technical",
        lead_result=None,
        occurred_at=T0 + timedelta(hours=1),
    )
    assert await store.record_outcomes([salvaged]) == 1
    later = [
        outcome("c1", processed_at=T0 + timedelta(seconds=9), attempt=2),
        outcome("c2", status="queued", lead_result=None),
    ]
    assert await store.record_outcomes(later) == 2
    state = await store.read(
        lambda con: con.execute(
            "SELECT change_id, status, attempts, occurred_at FROM delivery_state ORDER BY 1"
        ).fetchall()
    )
    assert state == [("c1", "delivered", 2, T0), ("c2", "queued", 0, T0)]
    logged = await store.read(
        lambda con: con.execute("SELECT count(*) FROM outcome_log").fetchall()
    )
    assert logged == [(3,)]
