"""Caring for a large ledger: backup time and size and its restore, Parquet export time, and
the erasure of one person, each with what it does to recording going on at the same time and
the process's peak memory (run one part alone for its own peak).

    python -m bench.ledger_care [--outcomes 10000000] [--parts backup,export,erase,resume]

The ledger is the generated one of `bench._big_ledger` (10M outcome pairs over 30 days, built
once and cached), copied so the erasure changes a private file. Everything then goes through the
public `Store` with control's own settings and the functions control's routes call
(`stream.store.backup`, `stream.store.export`, `stream.store.person`). Recording alongside is
`Store.record_outcomes` in batches of 500, as the recorder writes. Smoke mode
(`bench/__init__.py`): 10,000 outcomes, nothing cached.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]

from bench import arguments, sized
from bench._big_ledger import copy_of, ledger
from bench.store_outcomes import outcome_rows
from stream.store import Store, file_blocks
from stream.store.backup import BACKUP_FILE, BackupReport, restore_backup, take_backup
from stream.store.errors import StoreError
from stream.store.export import ExportRequest, export_table, save_watermark
from stream.store.person import (
    ErasureReport,
    Selector,
    erase_person,
    finish_erasures,
    scrub_free_blocks,
)
from stream.store.writer import DEFAULT_MEMORY_LIMIT, Con

RECORD_BATCH = 500


@dataclass(frozen=True, slots=True)
class Recording:
    rows_per_s: float
    batch_p50_ms: float
    batch_max_ms: float

    def describe(self) -> str:
        return (
            f"{self.rows_per_s:,.0f} rows/s (batch p50 {self.batch_p50_ms:,.0f} ms, "
            f"longest {self.batch_max_ms:,.0f} ms)"
        )


async def recording(
    store: Store, seconds: float, offset: int, until: asyncio.Future[object] | None = None
) -> Recording:
    """Outcome rows recorded in batches of 500 for `seconds`, or until `until` is done when
    given: the rate, and how long a batch waited (the longest is the recorder's stall)."""
    done, latencies, started = 0, [], time.perf_counter()
    while not until.done() if until is not None else time.perf_counter() - started < seconds:
        t = time.perf_counter()
        await store.record_outcomes(outcome_rows(offset + done, RECORD_BATCH, timedelta(hours=1)))
        latencies.append((time.perf_counter() - t) * 1000)
        done += RECORD_BATCH
    elapsed = time.perf_counter() - started
    return Recording(done / elapsed, statistics.median(latencies), max(latencies))


async def recording_rate(
    store: Store, seconds: float, offset: int, until: asyncio.Future[object] | None = None
) -> float:
    return (await recording(store, seconds, offset, until)).rows_per_s


async def file_mb(path: Path) -> float:
    return (await asyncio.to_thread(path.stat)).st_size / 1e6


async def someone(store: Store) -> str:
    """The email of a person the generated ledger holds (the registration of change 42)."""

    def find(con: Con) -> str:
        rows = con.execute(
            "SELECT registration_code FROM change_log WHERE change_id = 'chg-42'"
        ).fetchall()
        return f"person{str(rows[0][0]).removeprefix('R')}@example.com"

    return await store.read(find)


async def backup(store: Store, root: Path, window: float) -> None:
    quiet = await recording(store, window, 10**9)
    started = time.perf_counter()
    copying: asyncio.Future[object] = asyncio.ensure_future(
        store.read(lambda con: take_backup(con, root / "backup"))
    )
    during = await recording(store, window, 2 * 10**9, until=copying)
    report = await copying
    assert isinstance(report, BackupReport)
    print(
        f"backup    {report.elapsed_s:.1f} s, {report.bytes / 1e6:,.1f} MB "
        f"({sum(report.tables.values()):,} rows) while recording went on "
        f"({time.perf_counter() - started:.1f} s with it)"
    )
    print(f"          process peak {peak_mb():,.0f} MB")
    print(f"recording alone:          {quiet.describe()}")
    print(f"recording during backup:  {during.describe()}")
    print(f"          ratio during/alone {during.rows_per_s / quiet.rows_per_s:.2f}")
    await restore(root)


def peak_mb() -> float:
    """The process's peak resident memory so far (run one part alone for that part's peak)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


async def restore(root: Path) -> None:
    """The backup just taken restored into a stopped installation's empty data dir, and the
    restored ledger opened as control opens it (migrations checked, WAL replayed)."""
    t = time.perf_counter()
    report = await asyncio.to_thread(restore_backup, root / "backup", root / "restored")
    restore_s = time.perf_counter() - t
    t = time.perf_counter()
    restored = await Store.open(Path(report.data_dir) / BACKUP_FILE)
    rows = await restored.read(
        lambda con: con.execute("SELECT count(*) FROM outcome_log").fetchall()[0][0]
    )
    await restored.close()
    print(
        f"restore   {restore_s:.1f} s, {report.bytes / 1e6:,.1f} MB "
        f"({sum(report.tables.values()):,} rows); opened as control opens it and "
        f"{rows:,} outcomes counted in {time.perf_counter() - t:.1f} s; process peak "
        f"{peak_mb():,.0f} MB"
    )


async def export(store: Store, root: Path) -> None:
    request = ExportRequest("outcomes", root / "parquet")
    t = time.perf_counter()
    try:
        exported = await store.read(lambda con: export_table(con, request, None))
    except StoreError as error:  # a figure too: where the export gives out
        first = str(error).splitlines()[0]
        print(f"export    outcomes FAILED after {time.perf_counter() - t:.1f} s: {first}")
        return
    await store.write(lambda con: save_watermark(con, exported))
    print(
        f"export    outcomes: {exported.rows:,} rows, {len(exported.files)} files, "
        f"{exported.bytes / 1e6:,.1f} MB in {time.perf_counter() - t:.1f} s, Arrow memory at "
        f"most {pa.default_memory_pool().max_memory() / 1e6:,.0f} MB, process peak "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:,.0f} MB"
    )


async def erase(store: Store, window: float) -> None:
    email = await someone(store)
    selector = Selector(email=email)
    free_before = (await store.read(file_blocks.free_blocks))[0]
    print(f"erasure   the file has {free_before:,} free blocks before")
    started = time.perf_counter()
    erasing: asyncio.Future[object] = asyncio.ensure_future(
        store.write(lambda con: erase_person(con, selector))
    )
    during = await recording(store, window, 3 * 10**9, until=erasing)
    try:
        erased = await erasing
    except StoreError as error:  # a figure too: where erasure gives out
        first = str(error).splitlines()[0]
        print(f"erasure   FAILED after {time.perf_counter() - started:.1f} s: {first}")
        print(f"recording during erasure: {during.describe()}")
        return
    assert isinstance(erased, ErasureReport)
    erase_s = time.perf_counter() - started

    def scrub(con: Con) -> tuple[float, float, file_blocks.Sealing, int]:
        # What control's route runs after an erasure (checkpoint, then `scrub_free_blocks`),
        # step by step so each is timed.
        t = time.perf_counter()
        con.execute("FORCE CHECKPOINT")
        checkpoint_s = time.perf_counter() - t
        held = file_blocks.noted_blocks(con) or set()
        t = time.perf_counter()
        sealing = file_blocks.seal_blocks(con, held)
        seal_s = time.perf_counter() - t
        # The rest of the route's own step, the scrub and the search, without moving again.
        return checkpoint_s, seal_s, sealing, scrub_free_blocks(con, seal=False)

    sealing_blocks = len(await store.write_raw(lambda con: file_blocks.noted_blocks(con) or set()))
    t = time.perf_counter()
    checkpoint_s, seal_s, sealing, free = await store.write_raw(scrub)
    scrub_s = time.perf_counter() - t - checkpoint_s - seal_s
    touched = {
        table: ", ".join(f"{k} {v:,}" for k, v in counts.items())
        for table, counts in erased.touched.items()
    }
    print(
        f"erasure   one person by email ({erased.registrations} registrations, "
        f"{erased.changes} changes, {len(erased.marketo_lead_ids)} Marketo leads): "
        f"{erase_s:.1f} s in one write transaction, then {checkpoint_s:.1f} s checkpoint, "
        f"{seal_s:.1f} s moving other data out of the {sealing_blocks:,} blocks that held the "
        f"person ({sealing.columns} columns changed and restored, {sealing.row_groups} row "
        f"groups inserted again, {sealing.rounds} rounds, {sealing.left} blocks left shared) and "
        f"{scrub_s:.1f} s scrub of {free:,} free blocks and search of the file; process peak "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:,.0f} MB"
    )
    for table, counts in touched.items():
        print(f"          {table:18s} {counts}")
    print(f"recording during erasure: {during.describe()}")


async def resume(store: Store, path: Path) -> Store:
    """An erasure whose control stopped after its commit, before its scrub: the ledger closed
    there, then opened again and the scrub finished as control's start does (`finish_erasures`:
    moving out of the noted blocks and scrubbing every free block, without the search, whose
    texts were in the stopped process's memory). Returns the store opened again."""
    email = await someone(store)
    t = time.perf_counter()
    await store.write(lambda con: erase_person(con, Selector(email=email)))
    erase_s = time.perf_counter() - t
    await store.close()
    t = time.perf_counter()
    store = await Store.open(path)
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    finished = await store.write_raw(finish_erasures)
    print(
        f"resume    erasure {erase_s:.1f} s, closed before its scrub; opened again in "
        f"{open_s:.1f} s, {finished} unfinished scrub finished in "
        f"{time.perf_counter() - t:.1f} s (checkpoint, moving, scrub); process peak "
        f"{peak_mb():,.0f} MB"
    )
    return store


async def main() -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--outcomes", type=int, default=sized(10_000_000, 10_000))
    parser.add_argument(
        "--parts",
        default="backup,export,erase",
        help=(
            "which of backup (then its restore), export, erase, resume (an erasure's scrub "
            "finished after a stop) to run (comma-separated; erase and resume change the copy)"
        ),
    )
    parser.add_argument(
        "--memory-limit",
        default=DEFAULT_MEMORY_LIMIT,
        help="the ledger's DuckDB memory limit (control's own by default)",
    )
    args = parser.parse_args()
    window = sized(5.0, 0.3)
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        root = Path(tmp)
        path = await copy_of(await ledger(args.outcomes, root), root)
        store = await Store.open(path, memory_limit=args.memory_limit)
        try:
            print(
                f"ledger    {args.outcomes:,} outcome pairs, file {await file_mb(path):,.0f} MB, "
                f"memory limit {args.memory_limit}"
            )
            parts = set(args.parts.split(","))
            if "backup" in parts:
                await backup(store, root, window)
            if "export" in parts:
                await export(store, root)
            if "erase" in parts:
                before = await file_mb(path)
                await erase(store, window)
                after = await file_mb(path)
                print(f"file      {before:,.0f} MB before the erasure, {after:,.0f} MB after")
            if "resume" in parts:
                store = await resume(store, path)
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
