"""The writer's checkpoints (`CheckpointPolicy`): by WAL size and by time, as jobs of their own
between writes, never DuckDB's automatic one inside a commit; and a kill at any point of
recording with checkpoints interleaved loses no committed batch."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stream.store import ChangeRow, Store
from stream.store.schema import migrate
from stream.store.writer import CheckpointPolicy, Database
from tests.support.processes import wait_exit

ROOT = Path(__file__).resolve().parents[2]
NEVER = float("inf")
KIB = 1024


def changes(start: int, count: int, size: int = 400) -> list[ChangeRow]:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        ChangeRow(
            f"c{i}", "registration.create_update", "ACME", "EV", f"R{i}", False, now, now,
            json.dumps({"i": i, "pad": "x" * size}),
        )
        for i in range(start, start + count)
    ]  # fmt: skip


async def open_store(path: Path, policy: CheckpointPolicy) -> tuple[Store, Database]:
    db = await Database.open(path, setup=migrate, checkpoints=policy)
    return Store(db), db


def wal_size(db: Database) -> int:
    return db.wal_path.stat().st_size if db.wal_path.exists() else 0


async def settled(db: Database) -> None:
    """Wait for the writer's queue: a checkpoint queued by the last write has run after it."""
    await db.write_raw(lambda con: None)


async def count(store: Store) -> int:
    rows = await store.read(lambda con: con.execute("SELECT count(*) FROM change_log").fetchall())
    return int(rows[0][0])


async def test_the_wal_is_checkpointed_once_it_reaches_the_bound(tmp_path: Path) -> None:
    bound = 256 * KIB
    store, db = await open_store(tmp_path / "s.duckdb", CheckpointPolicy(bound, every_s=NEVER))
    try:
        largest = 0
        for n in range(30):
            await store.archive_changes(changes(n * 50, 50))
            await settled(db)
            largest = max(largest, wal_size(db))
        assert db.checkpoint_count >= 3
        # What remains after each settle is less than the bound plus one batch (about 30 KiB).
        assert largest < bound + 64 * KIB
        assert await count(store) == 1500
    finally:
        await store.close()


async def test_a_wal_under_the_bound_is_checkpointed_when_the_time_comes(tmp_path: Path) -> None:
    now = [0.0]
    policy = CheckpointPolicy(wal_bytes=2**40, every_s=60.0, clock=lambda: now[0])
    store, db = await open_store(tmp_path / "s.duckdb", policy)
    try:
        await store.archive_changes(changes(0, 20))
        await settled(db)
        assert (db.checkpoint_count, wal_size(db) > 0) == (0, True)
        now[0] = 59.0
        await store.archive_changes(changes(20, 20))
        await settled(db)
        assert db.checkpoint_count == 0
        now[0] = 60.0
        await store.archive_changes(changes(40, 20))
        await settled(db)
        assert (db.checkpoint_count, wal_size(db)) == (1, 0)
        now[0] = 130.0  # due again, but nothing was written since: nothing to checkpoint
        await store.archive_changes([])
        await settled(db)
        assert db.checkpoint_count == 1
        assert await count(store) == 60
    finally:
        await store.close()


async def test_duckdb_checkpoints_inside_a_commit_only_past_its_own_threshold(
    tmp_path: Path,
) -> None:
    """The policy's `duckdb_bytes` is DuckDB's automatic checkpoint: a commit past it leaves
    no WAL (it checkpointed within the commit); under it the WAL stays for the writer."""
    for threshold, left in ((256 * KIB, False), (2**30, True)):
        policy = CheckpointPolicy(wal_bytes=2**40, every_s=NEVER, duckdb_bytes=threshold)
        store, db = await open_store(tmp_path / f"{threshold}.duckdb", policy)
        try:
            await store.archive_changes(changes(0, 1000))
            assert (wal_size(db) > 512 * KIB) is left
            assert db.checkpoint_count == 0
        finally:
            await store.close()


async def test_a_checkpoint_refused_beside_an_open_update_is_run_after_a_later_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """DuckDB refuses a plain CHECKPOINT while another transaction that updated rows is open
    (the apart lane's marks): the writer logs it and checkpoints after the next write."""
    store, db = await open_store(tmp_path / "s.duckdb", CheckpointPolicy(64 * KIB, NEVER))
    try:
        await db.write(lambda con: con.execute("CREATE TABLE scratch (n INTEGER, v INTEGER)"))
        await db.write(lambda con: con.execute("INSERT INTO scratch VALUES (1, 0)"))
        await settled(db)
        updated, release = threading.Event(), threading.Event()

        def hold(con: Any) -> None:
            con.execute("UPDATE scratch SET v = v + 1")
            updated.set()
            release.wait(60)

        holding = asyncio.ensure_future(db.write_apart(hold))
        assert await asyncio.to_thread(updated.wait, 60)
        with caplog.at_level(logging.INFO, logger="stream.store.writer"):
            await store.archive_changes(changes(0, 400))  # past the bound
            await settled(db)
        assert db.checkpoint_count == 0
        assert "checkpoint put off" in caplog.text
        release.set()
        await holding  # its commit's look at the WAL queues the checkpoint put off
        await store.archive_changes(changes(400, 1))
        await settled(db)
        assert db.checkpoint_count == 1
        assert wal_size(db) < 4 * KIB  # the last write's only
        assert await count(store) == 401
    finally:
        release.set()
        await store.close()


RECORD_UNTIL_KILLED = """
import asyncio, json, sys
from datetime import UTC, datetime
from pathlib import Path
from stream.store import ChangeRow, Store
from stream.store.schema import migrate
from stream.store.writer import CheckpointPolicy, Database

async def main() -> None:
    policy = CheckpointPolicy(wal_bytes=64 * 1024, every_s=float("inf"))
    db = await Database.open(Path(sys.argv[1]), setup=migrate, checkpoints=policy)
    store = Store(db)
    now = datetime.now(UTC)
    n = 0
    while True:
        rows = [ChangeRow(f"c{i}", "registration.create_update", "ACME", "EV", f"R{i}", False,
                          now, now, json.dumps({"i": i, "pad": "x" * 400}))
                for i in range(n, n + 40)]
        await store.archive_changes(rows)
        n += 40
        print(n, db.checkpoint_count, flush=True)

asyncio.run(main())
"""


def _recording(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(RECORD_UNTIL_KILLED), str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_a_kill_among_checkpoints_loses_no_committed_batch(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    child = _recording(path)
    assert child.stdout is not None and child.stderr is not None
    committed = checkpoints = 0
    try:
        # Until several checkpoints ran: the kill then lands while writes and checkpoints
        # alternate (each line is printed once its batch is committed).
        while checkpoints < 5:
            line = child.stdout.readline()
            assert line, child.stderr.read()
            committed, checkpoints = map(int, line.split())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        wait_exit(child, 30)
        child.stdout.close()
        child.stderr.close()

    store = await Store.open(path)
    try:
        rows = await store.read(
            lambda con: con.execute(
                "SELECT count(*), count(DISTINCT change_id) FROM change_log"
            ).fetchall()
        )
        total, distinct = rows[0]
        assert total == distinct >= committed
        assert total % 40 == 0  # whole batches only
    finally:
        await store.close()
