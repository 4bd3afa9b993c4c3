"""The record agent plans retry items only for the outcomes whose plan can matter
(`recorder._NOT_PLANNED`): the retry queue it leaves is the one planning every outcome leaves,
over random batches on stored items of every status."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.control import recorder as recorder_module
from stream.control.recorder import Recorder
from stream.messages import OutcomeStatus
from stream.store import RetryItem, Store
from tests.control.test_outcome_batch import T0, record

PAIRS = [(f"c-{n:03d}", flow) for n in range(40) for flow in ("f1", "f2")]
STORED_STATUSES = ("pending", "retrying", "resolved", "abandoned")
NOW = T0 + timedelta(hours=1)


async def all_retry_items(store: Store) -> list[tuple[object, ...]]:
    """Every stored retry item's row, in pair order: what two ways of recording are compared by."""
    return await store.read(
        lambda con: con.execute("SELECT * FROM retry_items ORDER BY change_id, flow_id").fetchall()
    )


def stored_items(rng: random.Random) -> list[RetryItem]:
    """Items for about two pairs in three, of every status, some leased."""
    items = []
    for change_id, flow_id in PAIRS:
        if rng.random() < 0.33:
            continue
        status = rng.choice(STORED_STATUSES)
        items.append(
            RetryItem(
                change_id=change_id,
                flow_id=flow_id,
                flow_name=flow_id,
                status=status,  # type: ignore[arg-type]
                category=rng.choice(("technical", "data")),
                attempts=rng.randint(1, 3),
                updated_at=T0,
                integration="mkto",
                next_attempt_at=T0 + timedelta(minutes=5) if status == "pending" else None,
                created_at=T0 - timedelta(minutes=rng.randint(1, 60)),
                lease_owner="w1" if status == "retrying" else None,
                lease_until=T0 + timedelta(minutes=1) if status == "retrying" else None,
            )
        )
    return items


def outcome(rng: random.Random, n: int) -> bytes:
    change_id, flow_id = rng.choice(PAIRS)
    status = rng.choice(list(OutcomeStatus))
    fields: dict[str, Any] = {
        "change_id": change_id,
        "flow_id": flow_id,
        "flow_name": flow_id,
        "status": status.value,
        "attempt": rng.randint(1, 4),
        "processed_at": T0 + timedelta(seconds=n),
        "retryable": rng.random() < 0.7,
        "replay_id": "rp-1" if rng.random() < 0.1 else None,
    }
    if status is OutcomeStatus.FAILED:
        fields |= {"category": rng.choice(("technical", "data")), "reason": "HTTP 503"}
        fields |= {"marketo_lead_id": None, "lead_result": None}
    if status is OutcomeStatus.PARKED:
        fields["resume_at"] = T0 + timedelta(minutes=rng.randint(1, 9))
    if status is OutcomeStatus.WOULD_SEND:
        fields["mode"] = "test"
    return record(**fields).model_dump_json().encode()


async def retry_queue_after(path: Path, seed: int, read: list[int]) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    store = await Store.open(path)
    try:
        await store.upsert_retry_items(stored_items(rng))
        reading = store.retry_items_of

        async def counted(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RetryItem]:
            wanted = list(pairs)
            read.append(len(wanted))
            return await reading(wanted)

        store.retry_items_of = counted  # type: ignore[method-assign]
        recorder = Recorder(store, None, jitter=lambda: 0.5)  # type: ignore[arg-type]
        n = 0
        for _ in range(6):
            batch = []
            for _ in range(rng.randint(1, 30)):
                n += 1
                batch.append(outcome(rng, n))
            await recorder.record_outcomes(batch)
        return await all_retry_items(store)
    finally:
        await store.close()


@pytest.mark.parametrize("seed", [2, 17, 29])
async def test_planning_fewer_outcomes_leaves_the_same_retry_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(recorder_module, "utcnow", lambda: NOW)
    fewer: list[int] = []
    skipping = await retry_queue_after(tmp_path / "skipping.duckdb", seed, fewer)

    monkeypatch.setattr(recorder_module, "_NOT_PLANNED", frozenset())
    every: list[int] = []
    planning_all = await retry_queue_after(tmp_path / "all.duckdb", seed, every)

    assert skipping == planning_all
    assert sum(fewer) < sum(every), "pairs of skipped outcomes were read"
    status = [row[4] for row in skipping]
    assert "resolved" in status and "pending" in status, status
