"""Caring for the ledger: backup time and size, Parquet export time, and the erasure of one
person on a large ledger, with the recording rate while a backup runs.

    python -m bench.ledger_care [--outcomes 1000000] [--changes 500000]

Everything goes through the public `Store` API and the functions control's routes call
(`stream.store.backup`, `stream.store.export`, `stream.store.person`). The issue's figure is a
10M-outcome ledger (`--outcomes 10000000`, about 2.6 GB and an hour of loading on a 2-core
machine); the default is 1M. Smoke mode (`bench/__init__.py`): 3,000 outcomes.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench import sized
from bench.store_outcomes import change_rows, outcome_rows
from stream.store import Store
from stream.store.backup import BackupReport, take_backup
from stream.store.export import ExportRequest, export_table, save_watermark
from stream.store.person import Selector, erase_person, scrub_free_blocks
from stream.store.writer import Con

CHUNK = 20_000


async def load(store: Store, outcomes: int, changes: int) -> float:
    from datetime import timedelta

    started = time.perf_counter()
    for start in range(0, changes, CHUNK):
        await store.archive_changes(change_rows(start, min(CHUNK, changes - start)))
    for start in range(0, outcomes, CHUNK):
        await store.record_outcomes(
            outcome_rows(start, min(CHUNK, outcomes - start), timedelta(days=7))
        )
    return time.perf_counter() - started


async def recording_rate(
    store: Store, seconds: float, offset: int, until: asyncio.Future[object] | None = None
) -> float:
    """Outcome rows per second recorded in batches of 500 for `seconds`, or until `until` is
    done when given."""
    from datetime import timedelta

    done, started = 0, time.perf_counter()
    while not until.done() if until is not None else time.perf_counter() - started < seconds:
        await store.record_outcomes(outcome_rows(offset + done, 500, timedelta(hours=1)))
        done += 500
    return done / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=sized(1_000_000, 3_000))
    parser.add_argument("--changes", type=int, default=sized(500_000, 1_500))
    args = parser.parse_args()
    window = sized(5.0, 0.3)
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        root = Path(tmp)
        store = await Store.open(root / "signal.duckdb")
        try:
            load_s = await load(store, args.outcomes, args.changes)
            await store.checkpoint()
            size = (await asyncio.to_thread((root / "signal.duckdb").stat)).st_size
            print(
                f"ledger    {args.outcomes:,} outcomes, {args.changes:,} changes loaded in "
                f"{load_s:.1f} s; file {size / 1e6:,.1f} MB"
            )

            quiet = await recording_rate(store, window, 10**9)
            started = time.perf_counter()
            backup: asyncio.Future[object] = asyncio.ensure_future(
                store.read(lambda con: take_backup(con, root / "backup"))
            )
            during = await recording_rate(store, window, 2 * 10**9, until=backup)
            report = await backup
            assert isinstance(report, BackupReport)
            backup_s = time.perf_counter() - started
            print(
                f"backup    {report.elapsed_s:.1f} s, {report.bytes / 1e6:,.1f} MB "
                f"({sum(report.tables.values()):,} rows) while recording went on"
            )
            print(
                f"recording {quiet:,.0f} rows/s alone, {during:,.0f} rows/s during the backup "
                f"(ratio {during / quiet:.2f}; backup plus recording {backup_s:.1f} s)"
            )

            request = ExportRequest("outcomes", root / "parquet")
            t = time.perf_counter()
            exported = await store.read(lambda con: export_table(con, request, None))
            await store.write(lambda con: save_watermark(con, exported))
            print(
                f"export    outcomes: {exported.rows:,} rows, {len(exported.files)} files, "
                f"{exported.bytes / 1e6:,.1f} MB in {time.perf_counter() - t:.1f} s"
            )

            selector = Selector(registration="R000042")
            t = time.perf_counter()
            erased = await store.write(lambda con: erase_person(con, selector))
            erase_s = time.perf_counter() - t

            def scrub(con: Con) -> int:
                con.execute("FORCE CHECKPOINT")
                return scrub_free_blocks(con)

            t = time.perf_counter()
            free = await store.write_raw(scrub)
            scrub_s = time.perf_counter() - t
            rewritten = sum(c.get("rewritten", 0) for c in erased.touched.values())
            print(
                f"erasure   one registration ({erased.changes} changes, "
                f"{len(erased.marketo_lead_ids)} leads): {erase_s:.2f} s redacting and "
                f"rewriting {rewritten:,} rows, {scrub_s:.2f} s checkpoint and scrub of "
                f"{free} free blocks"
            )
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
