"""Retention on a large ledger: how long a pass takes to drop a week of outcomes and redact
their changes' payloads, and the recording rate while it runs against the rate without it, in
the same run on the same file.

    python -m bench.ledger_retention [--outcomes 1000000] [--changes 500000] [--batch 5000]

The pruner is control's own (`stream.control.retention.Retention`) over the public `Store`;
its clock is set 400 days ahead, so everything loaded is due while the rows recorded alongside
are not. Smoke mode (`bench/__init__.py`): 3,000 outcomes.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

from bench import sized
from bench.ledger_care import load, recording_rate
from bench.store_outcomes import NOW
from stream.control.retention import PassReport, Retention
from stream.store import Store
from stream.store.retention import RetentionPolicy


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=sized(1_000_000, 3_000))
    parser.add_argument("--changes", type=int, default=sized(500_000, 1_500))
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    window = sized(5.0, 0.3)
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        path = Path(tmp) / "signal.duckdb"
        store = await Store.open(path)
        try:
            load_s = await load(store, args.outcomes, args.changes)
            await store.checkpoint()
            size = (await asyncio.to_thread(path.stat)).st_size
            print(
                f"ledger    {args.outcomes:,} outcomes, {args.changes:,} changes loaded in "
                f"{load_s:.1f} s; file {size / 1e6:,.1f} MB"
            )
            # Due: everything loaded (processed over the week before NOW) but the last 2 hours;
            # the rows recorded meanwhile are dated an hour before NOW.
            policy = RetentionPolicy(batch=args.batch)
            retention = Retention(
                store, policy, clock=lambda: NOW + policy.outcomes - timedelta(hours=2)
            )
            quiet = await recording_rate(store, window, 10**9)
            pruning: asyncio.Future[object] = asyncio.ensure_future(retention.prune())
            during = await recording_rate(store, window, 2 * 10**9, until=pruning)
            report = await pruning
            assert isinstance(report, PassReport)
            after = await recording_rate(store, window, 3 * 10**9)
            rows = {k: v for k, v in report.rows.items() if v}
            print(
                f"retention {report.seconds:.1f} s, {report.batches} steps of at most "
                f"{args.batch:,} rows: {rows}"
            )
            print(
                f"recording {quiet:,.0f} rows/s before, {during:,.0f} rows/s during the pass, "
                f"{after:,.0f} after (ratio during/before {during / quiet:.2f})"
            )
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
