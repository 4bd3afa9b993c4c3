"""Dashboard query times over a large ledger: Summary, Troubleshooting, the activity feed and the
Prometheus scrape, on outcomes spread over 30 days.

    python -m bench.metrics_dashboard [--outcomes 10000000] [--runs 5]

The ledger is the generated one of `bench._big_ledger` (built inside DuckDB once and cached),
opened through `Store` with the control service's own settings. Timings go through the same
coroutines the API calls (thread hop included). In smoke mode (`bench/__init__.py`) the ledger
holds 10,000 outcomes and each query runs once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench import sized
from bench._big_ledger import NOW, ledger
from stream.metrics import activity, parse_window, prometheus, queries
from stream.store import Store


async def timed(label: str, runs: int, work: Callable[[], Awaitable[Any]]) -> Any:
    timings = []
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = await work()
        timings.append((time.perf_counter() - t) * 1000)
    print(
        f"query     {label:34s} median {statistics.median(timings):8.1f} ms, "
        f"max {max(timings):8.1f} ms ({runs} runs)"
    )
    return result


async def measure(store: Store, runs: int) -> None:
    day = parse_window("24h", now=NOW)
    month = parse_window("30d", now=NOW)
    s = await timed(
        "summary 24h live", runs, lambda: queries.summary(store, "live", day, active_flows=9)
    )
    print(
        f"          24 h live: {s['changes_processed']:,} changes, "
        f"{s['actions_triggered']:,} triggered, "
        f"{s['actions_not_triggered']['total']:,} not triggered"
    )
    await timed("summary 24h test", runs, lambda: queries.summary(store, "test", day))
    await timed("summary 30d live", runs, lambda: queries.summary(store, "live", month))
    await timed(
        "troubleshooting 24h live", runs, lambda: queries.troubleshooting(store, "live", day)
    )
    await timed(
        "troubleshooting 30d live", runs, lambda: queries.troubleshooting(store, "live", month)
    )
    first = await timed(
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
    await timed("prometheus scrape", runs, lambda: prometheus.exposition(store, now=NOW))


def _cursor_of(item: dict[str, Any]) -> activity.Cursor:
    return datetime.fromisoformat(item["time"]), item["change_id"], item["flow_id"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=sized(10_000_000, 10_000))
    parser.add_argument("--runs", type=int, default=sized(5, 1))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        path = await ledger(args.outcomes, Path(tmp))
        store = await Store.open(path, threads=2)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size / 1e6
            print(f"file      {size:,.0f} MB")
            await measure(store, args.runs)
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
