"""Store throughput: outcome batches in, and the `outcomes` view over a day of a large ledger.

    python -m bench.store_outcomes [--inserts 100000] [--batch 500] [--ledger 1000000]

Everything goes through the public `Store` API (thread hop, Arrow conversion, one transaction
per batch), because that is the cost the control service pays. Smoke mode (`bench/__init__.py`):
1,000 inserts in batches of 100 and 500, a 2,000-row ledger.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import arguments, sized
from stream.store import ChangeRow, OutcomeRow, Store

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STATUSES = ("delivered", "delivered", "delivered", "not_activated", "filtered_out", "failed")


def outcome_rows(start: int, count: int, span: timedelta) -> list[OutcomeRow]:
    rows = []
    step = span / max(count, 1)
    for i in range(start, start + count):
        status = STATUSES[i % len(STATUSES)]
        processed = NOW - span + step * (i - start)
        rows.append(
            OutcomeRow(
                change_id=f"chg-{i // 2:09d}",
                flow_id=f"flow-{i % 12}",
                flow_name=f"Flow {i % 12}",
                mode="test" if i % 10 == 0 else "live",
                status=status,  # type: ignore[arg-type]
                category="technical" if status == "failed" else None,
                reason="HTTP 503" if status == "failed" else None,
                occurred_at=processed - timedelta(seconds=2),
                processed_at=processed,
                attempt=1 + (i % 3 == 0),
                registration_code=f"R{i % 50_000:06d}",
                event_code=f"EV{i % 40}",
                action="create_update_lead",
                marketo_lead_id=i if status == "delivered" else None,
                lead_result="created" if status == "delivered" else None,
                latency_ms=150.0 + i % 900,
                request_id=f"req-{i}",
            )
        )
    return rows


def change_rows(start: int, count: int) -> list[ChangeRow]:
    return [
        ChangeRow(
            change_id=f"chg-{i:09d}",
            type="registration.status_change",
            account_code="ACME",
            event_code=f"EV{i % 40}",
            registration_code=f"R{i % 50_000:06d}",
            is_test=False,
            occurred_at=NOW,
            received_at=NOW,
            payload='{"registration": {"registrationStatusLabel": "Attended"}}',
        )
        for i in range(start, start + count)
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_batches(
    label: str, batches: Sequence[Sequence[object]], write: Callable[[Any], Awaitable[object]]
) -> None:
    latencies: list[float] = []
    started = time.perf_counter()
    for rows in batches:
        t = time.perf_counter()
        await write(rows)
        latencies.append((time.perf_counter() - t) * 1000)
    elapsed = time.perf_counter() - started
    total = sum(len(b) for b in batches)
    print(
        f"{label:9s} {total:>9,} rows in batches of {len(batches[0])}: "
        f"{total / elapsed:>10,.0f} rows/s, {len(batches) / elapsed:,.0f} batches/s, "
        f"batch p50 {statistics.median(latencies):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms"
    )


async def insert_rate(path: Path, total: int, batch: int) -> None:
    store = await Store.open(path)
    try:
        span = timedelta(hours=1)
        outcomes = [outcome_rows(start, batch, span) for start in range(0, total, batch)]
        await timed_batches("outcomes", outcomes, store.record_outcomes)
        changes = [change_rows(start, batch) for start in range(0, total, batch)]
        await timed_batches("changes", changes, store.archive_changes)
    finally:
        await store.close()


QUERIES = {
    "24 h status counts": (
        "SELECT status, count(*) FROM outcomes "
        "WHERE processed_at >= TIMESTAMPTZ '{now}' - INTERVAL 24 HOUR GROUP BY status"
    ),
    "24 h per-flow metrics": (
        "SELECT flow_name, count(*) FILTER (status = 'delivered') AS delivered, "
        "count(*) FILTER (lead_result = 'created') AS created, "
        "quantile_cont(latency_ms, 0.95) AS p95 FROM outcomes "
        "WHERE mode = 'live' AND processed_at >= TIMESTAMPTZ '{now}' - INTERVAL 24 HOUR "
        "GROUP BY flow_name"
    ),
    "activity feed (50 newest)": (
        "SELECT processed_at, registration_code, event_code, flow_name, action, status, reason "
        "FROM outcomes ORDER BY processed_at DESC LIMIT 50"
    ),
    "raw attempts 24 h count": (
        "SELECT count(*) FROM outcome_attempts "
        "WHERE processed_at >= TIMESTAMPTZ '{now}' - INTERVAL 24 HOUR"
    ),
}


async def view_query_time(path: Path, ledger: int) -> None:
    store = await Store.open(path)
    try:
        loaded = time.perf_counter()
        chunk = 20_000
        for start in range(0, ledger, chunk):
            await store.record_outcomes(
                outcome_rows(start, min(chunk, ledger - start), timedelta(days=7))
            )
        load_s = time.perf_counter() - loaded
        print(
            f"ledger    {ledger:>9,} attempt rows over 7 days loaded in {load_s:.1f} s "
            f"({ledger / load_s:,.0f} rows/s in batches of {chunk:,})"
        )
        for label, sql in QUERIES.items():
            text = sql.format(now=NOW.isoformat())
            timings = []
            for _ in range(5):
                t = time.perf_counter()
                result = await store.query(text, max_rows=1000)
                timings.append((time.perf_counter() - t) * 1000)
            print(
                f"query     {label:28s} median {statistics.median(timings):7.1f} ms, "
                f"max {max(timings):7.1f} ms ({len(result.rows)} rows)"
            )
    finally:
        await store.close()
    size = (await asyncio.to_thread(path.stat)).st_size / 1e6
    print(f"file      {size:,.0f} MB after close ({ledger:,} outcome rows + indexes)")


async def main() -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--inserts", type=int, default=sized(100_000, 1_000))
    parser.add_argument("--batch", type=int, nargs="+", default=sized([500, 5000], [100, 500]))
    parser.add_argument("--ledger", type=int, default=sized(1_000_000, 2_000))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        for batch in args.batch:
            await insert_rate(Path(tmp) / f"inserts-{batch}.duckdb", args.inserts, batch)
        await view_query_time(Path(tmp) / "ledger.duckdb", args.ledger)


if __name__ == "__main__":
    asyncio.run(main())
