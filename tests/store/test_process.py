from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stream.store import Store, StoreClosedError, StoreError, StoreLockedError
from tests.store.conftest import change
from tests.support.processes import run_to_end, wait_exit

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _run_python(code: str, *args: str) -> tuple[int, str, str]:
    return await run_to_end([sys.executable, "-c", textwrap.dedent(code), *args], within=60)


OPEN_IN_CHILD = """
import asyncio, sys
from pathlib import Path
from stream.store import Store, StoreLockedError

async def main() -> int:
    try:
        store = await Store.open(Path(sys.argv[1]))
    except StoreLockedError as exc:
        print(exc)
        return 3
    await store.close()
    return 0

sys.exit(asyncio.run(main()))
"""


async def test_second_process_gets_a_clear_error(store: Store) -> None:
    code, out, err = await _run_python(OPEN_IN_CHILD, str(store.path))
    assert code == 3, err
    assert "in use by another process" in out
    assert str(store.path) in out
    assert "Only one control service" in out


async def test_after_close_another_process_can_open(db_path: Path) -> None:
    store = await Store.open(db_path)
    await store.close()
    code, _, err = await _run_python(OPEN_IN_CHILD, str(db_path))
    assert code == 0, err


async def test_second_open_in_the_same_process_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        await Store.open(store.path)
    result = await store.query("SELECT 1")
    assert result.rows == ((1,),)


async def test_use_after_close_is_an_error(db_path: Path) -> None:
    store = await Store.open(db_path)
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreClosedError):
        await store.archive_changes([change("c1")])
    with pytest.raises(StoreClosedError):
        await store.query("SELECT 1")


async def test_graceful_close_checkpoints_the_wal(db_path: Path) -> None:
    store = await Store.open(db_path)
    await store.archive_changes([change(f"c{i}") for i in range(100)])
    wal = db_path.with_name(db_path.name + ".wal")
    assert wal.exists() and wal.stat().st_size > 0
    await store.close()
    assert not wal.exists() or wal.stat().st_size == 0


WRITE_THEN_WAIT = """
import asyncio, json, sys
from datetime import UTC, datetime
from pathlib import Path
from stream.store import ChangeRow, Store

async def main() -> None:
    store = await Store.open(Path(sys.argv[1]))
    now = datetime.now(UTC)
    rows = [ChangeRow(f"c{i}", "registration.create_update", "ACME", "EV", f"R{i}", False,
                      now, now, json.dumps({"i": i})) for i in range(500)]
    await store.archive_changes(rows)
    print("committed", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_committed_batch_survives_sigkill(db_path: Path) -> None:
    child = _python(WRITE_THEN_WAIT, str(db_path))
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "committed", child.stderr.read() if child.stderr else ""
    os.kill(child.pid, signal.SIGKILL)
    wait_exit(child, 30)
    child.stdout.close()
    if child.stderr:
        child.stderr.close()

    store = await Store.open(db_path)
    try:
        result = await store.query("SELECT count(*), count(DISTINCT change_id) FROM changes")
        assert result.rows == ((500, 500),)
    finally:
        await store.close()


async def test_locked_error_is_a_store_error() -> None:
    assert issubclass(StoreLockedError, StoreError)
