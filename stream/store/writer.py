"""The one DuckDB connection of the control service, and the threads that use it.

DuckDB calls block, and a blocked event loop misses Kafka heartbeats, so nothing here runs on
the loop. One writer thread owns the read-write connection and runs every write as one
transaction, in submission order (DuckDB allows one writing process, and a single writer thread
also makes compare-and-set updates race-free). Reads run on a small pool of threads, each with
its own cursor — a cursor is a separate DuckDB connection to the same database, so a long
operator query runs beside the writer instead of behind it. Operators' own statements (`/sql`)
run on a lane of their own (`operator_threads`, default 2), so slow ones never take the
service's readers (metrics, the retry queue); the health probe has one thread and cursor of its
own for the same reason.

One more writing lane, `write_apart`, has a thread and cursor of its own for small transactions
on tables no other write touches (the delivery marks, written as the pipeline sends): they must
not wait behind the writer's batches. DuckDB runs transactions of one database side by side and
only conflicts on rows both changed, which separate tables never do.

The database is opened with:
- `enable_external_access=false`: no file reads or writes through SQL (read_csv, COPY, ATTACH
  of files, INSTALL/LOAD of extension files, secrets storage), no replacement scans of files
  (`FROM 'x.csv'`) or Python objects. The store's own file, its WAL and temp spill files are not
  affected, and bulk inserts still work because Arrow tables are registered explicitly.
  It can only be set at open (re-enabling at run time is refused by DuckDB) and is global to
  the database instance — there is no per-cursor variant, so the whole control runs without
  external access.
- extension auto-install/auto-load off (nothing is fetched or loaded behind the guard's back).
- `TimeZone` pinned globally to UTC so every cursor reads TIMESTAMPTZ as UTC.
- a fixed `memory_limit` (`DEFAULT_MEMORY_LIMIT`, 1 GB, instead of DuckDB's 80 % of RAM) and
  `max_temp_directory_size` (`DEFAULT_TEMP_LIMIT`, 2 GB, instead of 90 % of the free disk): one
  operator statement (a sort of 400 million random numbers) took 6.7 GB of RAM. DuckDB sets both
  per database, so they bound the ledger's own work too, which needs a small part of them; a
  statement past them fails with DuckDB's "Out of Memory" error.
- `arrow_lossless_conversion`, so an operator's answer read through Arrow
  (`stream.store.readonly_sql`) keeps HUGEINT, UUID, BIT and TIME WITH TIME ZONE as they are.
- then `lock_configuration=true`, so no statement (SET, RESET, PRAGMA x=y) can change a setting
  for the rest of the process's life — including turning external access back on.
- `checkpoint_threshold` (DuckDB's automatic checkpoint) far above `CheckpointPolicy.wal_bytes`:
  DuckDB runs its automatic checkpoint inside the commit that crosses the threshold (16 MB by
  default), so an outcome batch's commit stalled behind a checkpoint (up to 460 ms). The writer
  checkpoints on its own terms instead (see `CheckpointPolicy`); DuckDB's own stays as a
  backstop for a single transaction larger than the policy's bound.
A second `duckdb.connect()` to the same file in this process would have to repeat exactly this
configuration; nothing should do that — use `Database.read`/`write`.

`allowed_directories`/`allowed_paths` (exceptions to the external-access ban) are not used:
DuckDB already allows the database file, its WAL and its `.tmp` spill directory, and the store
needs nothing else. They cannot be passed at open ("before the database is started") and cannot
be changed once external access is off, so a future export directory would mean opening with
access on, setting them, then switching access off — deliberately not done here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

from stream.store.errors import (
    StoreClosedError,
    StoreError,
    StoreLockedError,
    StoreReadError,
    StoreWriteError,
)

T = TypeVar("T")
Con = duckdb.DuckDBPyConnection

log = logging.getLogger(__name__)

_CONFLICT_RETRIES = 3


DEFAULT_MEMORY_LIMIT = "1GB"
DEFAULT_TEMP_LIMIT = "2GB"


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """When the writer checkpoints: as a job of its own between writes, once the WAL has
    `wal_bytes` or more, or once `every_s` seconds passed since the last checkpoint and the
    WAL holds anything. Checked after each committed write (`os.stat` of the WAL file, a few
    microseconds), never inside a commit.

    `wal_bytes` bounds what a start after a crash replays. Measured after a SIGKILL on a
    loaded 2-core machine: a 64 MiB WAL of realistic outcome batches (150,000 rows) opened in
    0.75 s over an empty ledger, 62 MiB in 3.2 s (0.95 s of CPU) over a ledger of 725,000
    rows, 128 MiB in 1.3 s over an empty one. A checkpoint per 64 MiB runs while the record
    agent decodes its next batch. `every_s` keeps a quiet ledger's WAL from lingering. DuckDB's own
    automatic checkpoint (`duckdb_bytes`, DuckDB's `checkpoint_threshold`) stays far above
    `wal_bytes`: only a single transaction bigger than the difference reaches it."""

    wal_bytes: int = 64 * 2**20
    every_s: float = 60.0
    duckdb_bytes: int = 1024 * 2**20
    clock: Callable[[], float] = time.monotonic


DEFAULT_CHECKPOINTS = CheckpointPolicy()


def _connect(
    path: Path,
    threads: int | None,
    memory_limit: str | None,
    temp_limit: str | None,
    checkpoints: CheckpointPolicy = DEFAULT_CHECKPOINTS,
) -> Con:
    config: dict[str, str | bool | int | float | list[str]] = {
        "enable_external_access": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "arrow_lossless_conversion": True,
        "checkpoint_threshold": f"{checkpoints.duckdb_bytes} bytes",
    }
    if threads is not None:
        config["threads"] = threads
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if temp_limit is not None:
        config["max_temp_directory_size"] = temp_limit
    try:
        con = duckdb.connect(str(path), config=config)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise StoreLockedError(
                f"cannot open the Signal database {path}: it is in use by another process. "
                f"Only one control service may run per data directory. ({text})"
            ) from exc
        raise StoreError(f"cannot open the Signal database {path}: {text}") from exc
    except duckdb.Error as exc:
        raise StoreError(f"cannot open the Signal database {path}: {exc}") from exc
    try:
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


class Database:
    """Owner of the DuckDB connection: a writer thread plus reader cursors."""

    def __init__(
        self,
        path: Path,
        con: Con,
        writer: ThreadPoolExecutor,
        readers: ThreadPoolExecutor,
        cursors: queue.SimpleQueue[Con],
        reader_count: int,
        lanes: _Lanes,
        apart: ThreadPoolExecutor,
        apart_cursor: Con,
        checkpoints: CheckpointPolicy = DEFAULT_CHECKPOINTS,
    ) -> None:
        self.path = path
        self.wal_path = Path(f"{path}.wal")
        self.checkpoints = checkpoints
        self.checkpoint_count = 0
        """Checkpoints the writer ran by its policy (not those of close or `write_raw`)."""
        self.checkpoint_seconds = 0.0
        """Their time on the writer thread."""
        self._last_checkpoint = checkpoints.clock()
        self._checkpoint_queued = False
        self._con = con
        self._writer = writer
        self._readers = readers
        self._cursors = cursors
        self._reader_count = reader_count
        self._lanes = lanes
        self._apart = apart
        self._apart_cursor = apart_cursor
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        setup: Callable[[Con], object] | None = None,
        reader_threads: int = 4,
        operator_threads: int = 2,
        threads: int | None = None,
        memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
        temp_limit: str | None = DEFAULT_TEMP_LIMIT,
        checkpoints: CheckpointPolicy = DEFAULT_CHECKPOINTS,
    ) -> Database:
        """Open (creating) the file in the writer thread and run `setup` (migrations) there."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-writer")
        readers = ThreadPoolExecutor(max_workers=reader_threads, thread_name_prefix="duckdb-read")
        cursors: queue.SimpleQueue[Con] = queue.SimpleQueue()
        lanes = _Lanes(operator_threads)
        apart = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-apart")

        def start() -> tuple[Con, Con]:
            con = _connect(path, threads, memory_limit, temp_limit, checkpoints)
            try:
                if setup is not None:
                    setup(con)
                for _ in range(reader_threads):
                    cursors.put(con.cursor())
                lanes.fill(con)
                apart_cursor = con.cursor()
            except BaseException:
                con.close()
                raise
            return con, apart_cursor

        loop = asyncio.get_running_loop()
        try:
            con, apart_cursor = await loop.run_in_executor(writer, start)
        except BaseException:
            writer.shutdown(wait=False)
            readers.shutdown(wait=False)
            lanes.shutdown(wait=False)
            apart.shutdown(wait=False)
            raise
        return cls(
            path,
            con,
            writer,
            readers,
            cursors,
            reader_threads,
            lanes,
            apart,
            apart_cursor,
            checkpoints,
        )

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"the store for {self.path} is closed")

    async def write(self, work: Callable[[Con], T]) -> T:
        """Run `work` in one transaction on the writer thread; rolled back if it raises."""
        self._ensure_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._committed, work, None)

    async def write_apart(self, work: Callable[[Con], T]) -> T:
        """Run `work` in one transaction on the apart lane (see the module docstring)."""
        self._ensure_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._apart, self._committed, work, self._apart_cursor)

    async def write_raw(self, work: Callable[[Con], T]) -> T:
        """Run `work` on the writer thread outside a transaction (CHECKPOINT and the like)."""
        self._ensure_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, work, self._con)

    def _committed(self, work: Callable[[Con], T], con: Con | None) -> T:
        """`_in_transaction`, then the checkpoint policy's look at the WAL."""
        try:
            return self._in_transaction(work, con)
        finally:
            self._checkpoint_if_due()

    def _checkpoint_if_due(self) -> None:
        """Queue a checkpoint on the writer when the policy says so (see `CheckpointPolicy`).
        Called on the writer or the apart lane right after a transaction ends; the checkpoint
        runs as the writer's next free job, so it never lands inside a commit."""
        policy = self.checkpoints
        try:
            size = os.stat(self.wal_path).st_size
        except OSError:  # no WAL (just checkpointed): nothing to do
            return
        if size == 0:
            return
        overdue = policy.clock() - self._last_checkpoint >= policy.every_s
        if size < policy.wal_bytes and not overdue:
            return
        with self._lock:
            if self._closed or self._checkpoint_queued:
                return
            self._checkpoint_queued = True
            try:
                self._writer.submit(self._checkpoint)
            except RuntimeError:  # the writer is shutting down; close checkpoints
                self._checkpoint_queued = False

    def _checkpoint(self) -> None:
        """The policy's checkpoint, on the writer thread between two writes. A plain
        CHECKPOINT (not FORCE, which would wait for every transaction and hold new ones):
        readers go on beside it, and while a transaction of the apart lane that updates or
        deletes is open DuckDB refuses it. A refusal or failure is logged and left to the next
        write's look at the WAL."""
        with self._lock:
            self._checkpoint_queued = False
            if self._closed:
                return
        started = time.perf_counter()
        try:
            self._con.execute("CHECKPOINT")
            self.checkpoint_count += 1
        except duckdb.TransactionException as exc:
            # Another write transaction with updates or deletes is open (the apart lane's
            # marks): DuckDB refuses a plain CHECKPOINT until it ends. Routine, hence info.
            log.info("checkpoint put off, tried again after a later write: %s", exc)
        except duckdb.Error as exc:
            log.warning("checkpoint failed, tried again after a later write: %s", exc)
        finally:
            self._last_checkpoint = self.checkpoints.clock()
            self.checkpoint_seconds += time.perf_counter() - started

    def _in_transaction(self, work: Callable[[Con], T], con: Con | None = None) -> T:
        con = self._con if con is None else con
        for attempt in range(1, _CONFLICT_RETRIES + 1):
            con.execute("BEGIN TRANSACTION")
            try:
                result = work(con)
                con.execute("COMMIT")
                return result
            except duckdb.TransactionException as exc:
                self._rollback(con)
                if "conflict" not in str(exc).lower() or attempt == _CONFLICT_RETRIES:
                    raise StoreWriteError(f"write rolled back: {exc}") from exc
                log.warning("DuckDB transaction conflict, retrying (%d): %s", attempt, exc)
            except duckdb.Error as exc:
                self._rollback(con)
                raise StoreWriteError(f"write rolled back: {exc}") from exc
            except BaseException:
                self._rollback(con)
                raise
        raise AssertionError("unreachable")

    def _rollback(self, con: Con | None = None) -> None:
        with contextlib.suppress(duckdb.Error):
            (self._con if con is None else con).execute("ROLLBACK")

    async def read(self, work: Callable[[Con], T]) -> T:
        """Run `work` on a reader thread with a cursor of its own."""
        self._ensure_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._with_cursor, work)

    async def read_isolated(self, work: Callable[[Con], T]) -> T:
        """Like `read`, on a fresh cursor closed afterwards (for operator queries that may be
        interrupted, so no interrupt or transaction state can leak into later reads)."""

        def isolated(cursor: Con) -> T:
            child = cursor.cursor()
            try:
                return work(child)
            finally:
                child.close()

        return await self.read(isolated)

    async def read_operator(self, work: Callable[[Con], T]) -> T:
        """Run `work` on the operators' lane, on a fresh cursor closed afterwards (so no
        interrupt or transaction state can leak). The lane has `operator_threads` threads:
        callers bound how many wait for it."""
        self._ensure_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._lanes.operators, self._lanes.run_operator, work)

    async def probe(self, timeout_s: float) -> bool:
        """Does the database answer a trivial read within `timeout_s`? On the probe's own
        thread and cursor; concurrent probes share one read."""
        if self._closed:
            return False
        return await self._lanes.probe(timeout_s)

    def _with_cursor(self, work: Callable[[Con], T]) -> T:
        cursor = self._cursors.get()
        try:
            return work(cursor)
        except StoreError:
            raise
        except duckdb.Error as exc:
            raise StoreReadError(f"read failed: {exc}") from exc
        finally:
            self._cursors.put(cursor)

    async def close(self, *, checkpoint: bool = True) -> None:
        """Finish queued work, CHECKPOINT (so the next open replays no WAL), then close."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        loop = asyncio.get_running_loop()

        def shutdown() -> None:
            try:
                if checkpoint:
                    self._con.execute("FORCE CHECKPOINT")
            finally:
                while True:
                    try:
                        self._cursors.get_nowait().close()
                    except queue.Empty:
                        break
                self._con.close()

        try:
            await loop.run_in_executor(None, self._readers.shutdown, True)
            await loop.run_in_executor(None, self._lanes.close)
            await loop.run_in_executor(None, self._close_apart)
            await loop.run_in_executor(self._writer, shutdown)
        finally:
            self._writer.shutdown(wait=True)

    def _close_apart(self) -> None:
        """Finish the apart lane's queued writes, then close its cursor (blocking)."""
        self._apart.shutdown(wait=True)
        with contextlib.suppress(duckdb.Error):
            self._apart_cursor.close()


class _Lanes:
    """The operators' lane and the health probe: threads and cursors apart from the readers."""

    def __init__(self, operator_threads: int) -> None:
        self.operators = ThreadPoolExecutor(
            max_workers=operator_threads, thread_name_prefix="duckdb-operator"
        )
        self._operator_cursors: queue.SimpleQueue[Con] = queue.SimpleQueue()
        self._operator_count = operator_threads
        self._prober = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-probe")
        self._probe_cursor: Con | None = None
        self._probing: asyncio.Future[bool] | None = None
        self._running: set[Con] = set()
        self._running_lock = threading.Lock()

    def fill(self, con: Con) -> None:
        """Take cursors of `con` (on the thread that owns it, at open)."""
        for _ in range(self._operator_count):
            self._operator_cursors.put(con.cursor())
        self._probe_cursor = con.cursor()

    def run_operator(self, work: Callable[[Con], T]) -> T:
        base = self._operator_cursors.get()
        try:
            child = base.cursor()
            with self._running_lock:
                self._running.add(child)
            try:
                return work(child)
            finally:
                with self._running_lock:
                    self._running.discard(child)
                child.close()
        except StoreError:
            raise
        except duckdb.Error as exc:
            raise StoreReadError(f"read failed: {exc}") from exc
        finally:
            self._operator_cursors.put(base)

    def _probe_once(self) -> bool:
        cursor = self._probe_cursor
        if cursor is None:
            return False
        try:
            return cursor.execute("SELECT 1").fetchall() == [(1,)]
        except duckdb.Error:
            return False

    async def probe(self, timeout_s: float) -> bool:
        try:
            if self._probing is None or self._probing.done():
                loop = asyncio.get_running_loop()
                self._probing = asyncio.ensure_future(
                    loop.run_in_executor(self._prober, self._probe_once)
                )
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(self._probing)
        except (TimeoutError, RuntimeError):
            return False

    def shutdown(self, *, wait: bool) -> None:
        self.operators.shutdown(wait=wait, cancel_futures=True)
        self._prober.shutdown(wait=wait)

    def close(self) -> None:
        """Interrupt operators' statements still running, wait for them, then close the lanes'
        cursors (blocking)."""
        with self._running_lock:
            for cursor in self._running:
                with contextlib.suppress(duckdb.Error):
                    cursor.interrupt()
        self.shutdown(wait=True)
        while True:
            try:
                self._operator_cursors.get_nowait().close()
            except queue.Empty:
                break
        if self._probe_cursor is not None:
            self._probe_cursor.close()
            self._probe_cursor = None
