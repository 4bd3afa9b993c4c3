"""Control's rollup fold on its timer: rounds follow each other while hours are left, until
every complete hour of the ledger is folded, and the Summary is then read from the rollups with
the same figures as from the rows."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from stream.control.rollup_folding import RollupFolding
from stream.metrics import live, parse_window, queries
from stream.store import Store, rollup_fold
from tests.metrics.conftest import _record
from tests.metrics.metrics_stream_gen import NOW, generate

LATER = NOW + rollup_fold.HOUR * 72


async def test_folds_the_ledger_in_bounded_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rows are written a moment before the fold: with the slack against a clock stepped
    # back, each round would take them out again for its length (two minutes).
    monkeypatch.setattr(rollup_fold, "SLACK", timedelta(0))
    path = tmp_path / "signal.duckdb"
    await _record(path, generate(seed=5, changes=80))
    store = await Store.open(path, reader_threads=2, threads=2)
    folding = RollupFolding(store, every_s=3600.0, catch_up_s=0.0, budget=7, clock=lambda: LATER)
    try:
        oldest = await store.read(
            lambda con: con.execute("SELECT min(processed_at) FROM outcome_log").fetchone()
        )
        assert oldest is not None and oldest[0] is not None
        hours = (rollup_fold.floor_hour(LATER) - rollup_fold.floor_hour(oldest[0])) // (
            rollup_fold.HOUR
        )
        folding.start()
        deadline = time.monotonic() + 120
        folded = 0
        while time.monotonic() < deadline:
            folded = await store.read(
                lambda con: int(
                    (con.execute("SELECT count(*) FROM live_hours").fetchone() or [0])[0]
                )
            )
            if folded == hours:
                break
            await asyncio.sleep(0.05)
        assert folded == hours
        assert folding.last is not None and folding.last.folded <= 7
        await folding.stop()
        window = parse_window("30d", now=LATER)
        parts = await store.read(lambda con: live.split(con, window))
        assert parts.clean
        live.ENABLED = False
        try:
            raw = await queries.summary(store, "live", window, active_flows=0)
        finally:
            live.ENABLED = True
        assert await queries.summary(store, "live", window, active_flows=0) == raw
    finally:
        await folding.stop()
        await store.close()
