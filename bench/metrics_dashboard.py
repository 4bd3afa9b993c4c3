"""Dashboard query times over a large ledger: Summary, Troubleshooting, the activity feed and the
Prometheus scrape, on outcomes spread over 30 days.

    python -m bench.metrics_dashboard [--outcomes 10000000] [--runs 5]

The ledger is the generated one of `bench._big_ledger` (built inside DuckDB once and cached),
opened through `Store` with the control service's own settings, and folded into the live
rollups as control's timer would (`stream.store.rollup_fold`; kept in the cached file, so only
the first run pays for it). Timings go through the same coroutines the API calls (thread hop
included); the dashboards are timed twice in the same run, from the ledger's rows alone (the
baseline, `stream.metrics.live.ENABLED` off) and with the rollups, and the figures of both must
be equal (the scrape's but the ledger file's sizes). Times are wall medians and process CPU
(DuckDB's threads included). In smoke mode (`bench/__init__.py`) the ledger holds 10,000
outcomes and each query runs once.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench import arguments, sized
from bench._big_ledger import NOW, ledger
from stream.control.rollup_folding import RollupFolding
from stream.metrics import activity, live, parse_window, prometheus, queries
from stream.store import Store, rollup_fold

GOALS_MS = {
    "summary 30d live": 250.0,
    "troubleshooting 24h live": 150.0,
    "prometheus scrape": 100.0,
}
"""Issue 13's goals on a 10M-outcome ledger, printed beside the figures."""


async def timed(label: str, runs: int, work: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    timings, cpu = [], []
    result = None
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        result = await work()
        timings.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    median = statistics.median(timings)
    print(
        f"query     {label:34s} median {median:8.1f} ms, max {max(timings):8.1f} ms, "
        f"cpu {statistics.median(cpu):8.1f} ms ({runs} runs)"
    )
    return result, median


async def both(label: str, runs: int, work: Callable[[], Awaitable[Any]]) -> Any:
    """`work` from the rows alone, then with the rollups: same figures, and the time ratio."""
    live.ENABLED = False
    try:
        baseline, before = await timed(f"{label} (rows)", runs, work)
    finally:
        live.ENABLED = True
    result, after = await timed(f"{label} (rollups)", runs, work)
    assert _figures(result) == _figures(baseline), (
        f"{label}: the rollups give other figures than the rows"
    )
    goal = GOALS_MS.get(label)
    print(
        f"          {label}: {before:,.1f} -> {after:,.1f} ms ({after / before:.2f} of the rows)"
        + (
            f", goal on 10M outcomes <= {goal:,.0f} ms: {'met' if after <= goal else 'NOT met'}"
            if goal
            else ""
        )
    )
    return result


def _figures(result: Any) -> Any:
    """A dashboard's figures; of the scrape's text, every line but the ledger file's (its sizes
    and free blocks change as the fold writes)."""
    if isinstance(result, str):
        return [line for line in result.splitlines() if "signal_ledger_" not in line]
    return result


async def fold(store: Store) -> None:
    """Fold every complete hour before `NOW`, as control's timer does, in its bounded steps."""
    t, c = time.perf_counter(), time.process_time()
    budget = sized(RollupFolding(store).budget, 240)  # control's own step; smoke: fewer steps
    steps, hours, longest = 0, 0, 0.0
    while True:
        step = time.perf_counter()
        report = await store.write(functools.partial(rollup_fold.fold_step, now=NOW, budget=budget))
        longest = max(longest, time.perf_counter() - step)
        steps, hours = steps + 1, hours + report.folded
        if report.left == 0:
            break
    print(
        f"fold      {hours} hours in {steps} steps, {time.perf_counter() - t:.1f} s "
        f"(cpu {time.process_time() - c:.1f} s), longest step {longest * 1000:.0f} ms"
    )


async def measure(store: Store, runs: int) -> None:
    day = parse_window("24h", now=NOW)
    month = parse_window("30d", now=NOW)
    s = await both(
        "summary 24h live", runs, lambda: queries.summary(store, "live", day, active_flows=9)
    )
    print(
        f"          24 h live: {s['changes_processed']:,} changes, "
        f"{s['actions_triggered']:,} triggered, "
        f"{s['actions_not_triggered']['total']:,} not triggered"
    )
    await both("summary 24h test", runs, lambda: queries.summary(store, "test", day))
    await both("summary 30d live", runs, lambda: queries.summary(store, "live", month))
    await both(
        "troubleshooting 24h live", runs, lambda: queries.troubleshooting(store, "live", day)
    )
    await both(
        "troubleshooting 30d live", runs, lambda: queries.troubleshooting(store, "live", month)
    )
    first, _ = await timed(
        "activity 24h first page (50)", runs, lambda: activity.page(store, "live", day)
    )
    assert first["next_before"]
    # A deep page: the cursor of an outcome 20 days back in a 30-day feed.
    deep_page = await activity.page(
        store,
        "live",
        parse_window(start=month.start, end=NOW - timedelta(days=20)),
        limit=1,
    )
    deep = activity.decode_cursor(activity.encode_cursor(_cursor_of(deep_page["items"][0])))
    await timed(
        "activity 30d page 20 days deep",
        runs,
        lambda: activity.page(store, "live", month, before=deep),
    )
    mid = activity.decode_cursor(activity.encode_cursor(_cursor_of(first["items"][-1])))
    await timed(
        "activity 24h second page", runs, lambda: activity.page(store, "live", day, before=mid)
    )
    await both("prometheus scrape", runs, lambda: prometheus.exposition(store, now=NOW))


def _cursor_of(item: dict[str, Any]) -> activity.Cursor:
    return datetime.fromisoformat(item["time"]), item["change_id"], item["flow_id"]


async def main() -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--outcomes", type=int, default=sized(10_000_000, 10_000))
    parser.add_argument("--runs", type=int, default=sized(5, 1))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        path = await ledger(args.outcomes, Path(tmp))
        store = await Store.open(path, threads=2)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size / 1e6
            print(f"file      {size:,.0f} MB")
            await fold(store)
            await measure(store, args.runs)
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
