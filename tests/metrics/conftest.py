from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stream.store import Store
from tests.metrics.metrics_stream_gen import FLOWS, RATE_SHARES, Stream, generate


async def _record(path: Path, stream: Stream) -> None:
    store = await Store.open(path, reader_threads=2, threads=2)
    try:
        await store.archive_changes(stream.changes)
        await store.record_rejected(stream.rejected)
        await store.record_api_calls(stream.calls)
        # Outcomes arrive in batches in processing order, as the record agent writes them,
        # each failure's retry item in the batch of the pair's last attempt.
        rows = sorted(stream.outcome_rows, key=lambda r: r.processed_at)
        last_seen = {(p.change_id, p.flow.flow_id): p.state.outcome_id for p in stream.pairs}
        items = {(i.change_id, i.flow_id): i for i in stream.retry_items}
        for start in range(0, len(rows), 250):
            batch = rows[start : start + 250]
            retries = [
                items[(r.change_id, r.flow_id)]
                for r in batch
                if (r.change_id, r.flow_id) in items
                and last_seen[(r.change_id, r.flow_id)] == r.outcome_id
            ]
            await store.record_outcomes(batch, retries)
        for flow in FLOWS:
            body = {"name": flow.flow_id, "mode": flow.mode, "active": flow.active}
            await store.save_config_object("flow", flow.flow_id, body, "test")
        for cid, share in RATE_SHARES.items():
            await store.save_config_object("connection", cid, {"rate_share": share}, "test")
    finally:
        await store.close()


@pytest.fixture(scope="session")
def recorded_stream() -> Stream:
    return generate()


@pytest.fixture(scope="session")
def recorded_db(tmp_path_factory: pytest.TempPathFactory, recorded_stream: Stream) -> Path:
    path = tmp_path_factory.mktemp("metrics") / "signal.duckdb"
    asyncio.run(_record(path, recorded_stream))
    return path


@pytest.fixture
async def metrics_store(recorded_db: Path, tmp_path: Path) -> AsyncIterator[Store]:
    """A store on a private copy of the recorded database (tests may install views)."""
    path = tmp_path / "signal.duckdb"
    shutil.copyfile(recorded_db, path)
    store = await Store.open(path, reader_threads=2, threads=2)
    try:
        yield store
    finally:
        await store.close()
