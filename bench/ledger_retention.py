"""Retention on a large ledger: how long control's pruner takes to drop the oldest day of
outcomes, attempts, Marketo calls, marks and resolved retry items and to redact that day's change
payloads, and the recording rate while it runs against the rate without it, same run, same file.

    python -m bench.ledger_retention [--outcomes 10000000] [--due-days 1] [--batch 5000]

The ledger is the generated one of `bench._big_ledger` (30 days before its `NOW`), copied so the
pass changes a private file. The pruner is control's own (`stream.control.retention.Retention`)
over the public `Store` with control's settings; its clock reads `NOW` and every age of the
policy is 30 days less `--due-days`, so that many of the oldest days are due while the rows
recorded alongside (an hour before `NOW`) are not. Smoke mode (`bench/__init__.py`): 10,000
outcomes, nothing cached.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

from bench import arguments, sized
from bench._big_ledger import NOW, SPAN, copy_of, ledger
from bench.ledger_care import file_mb, peak_mb, recording
from stream.control.retention import PassReport, Retention
from stream.store import Store
from stream.store.retention import RetentionPolicy


async def main() -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--outcomes", type=int, default=sized(10_000_000, 10_000))
    parser.add_argument("--due-days", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    window = sized(5.0, 0.3)
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        root = Path(tmp)
        path = await copy_of(await ledger(args.outcomes, root), root)
        store = await Store.open(path)
        try:
            print(f"ledger    {args.outcomes:,} outcome pairs, file {await file_mb(path):,.0f} MB")
            age = SPAN - timedelta(days=args.due_days)
            policy = RetentionPolicy(payload=age, outcomes=age, retry=age, batch=args.batch)
            retention = Retention(store, policy, clock=lambda: NOW)
            quiet = await recording(store, window, 10**9)
            pruning: asyncio.Future[object] = asyncio.ensure_future(retention.prune())
            during = await recording(store, window, 2 * 10**9, until=pruning)
            report = await pruning
            assert isinstance(report, PassReport)
            after = await recording(store, window, 3 * 10**9)
            rows = {k: v for k, v in report.rows.items() if v}
            total = sum(rows.values())
            print(
                f"retention {report.seconds:.1f} s for the oldest {args.due_days:g} day(s): "
                f"{total:,} rows in {report.batches} steps of at most {args.batch:,} "
                f"({total / report.seconds:,.0f} rows/s, resting "
                f"{(1 - retention.share) / retention.share:g} s per s of work)"
            )
            for name, count in rows.items():
                print(f"          {name:26s} {count:>10,}")
            print(
                f"          longest step {report.longest_step_s:.2f} s ({report.longest_step}): "
                "what a recorder batch queued behind it waited"
            )
            print(f"recording before the pass: {quiet.describe()}")
            print(f"recording during the pass: {during.describe()}")
            print(f"recording after the pass:  {after.describe()}")
            print(f"          ratio during/before {during.rows_per_s / quiet.rows_per_s:.2f}")
            print(f"          process peak {peak_mb():,.0f} MB")
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
