"""Dashboard query times over a large ledger: Summary, Troubleshooting, the activity feed and the
Prometheus scrape, on outcomes spread over 30 days.

    python -m bench.metrics_dashboard [--outcomes 10000000] [--runs 5] [--keep PATH]

The ledger is generated inside DuckDB (`INSERT … SELECT` over `range()` with derived columns)
into a scratch database opened through `Store`, so the schema and the connection settings are the
control service's own. Rows are written in the order the control service writes them — by first
processing time — and retried pairs carry a later `processed_at`, as an in-place update would.
Timings go through the same coroutines the API calls (thread hop included). In smoke mode
(`bench/__init__.py`) the ledger holds 10,000 outcomes and each query runs once.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import sized
from stream.metrics import activity, parse_window, prometheus, queries
from stream.store import Store
from stream.store.writer import Con

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=30)

# Per 100 pairs: 45 delivered, 25 not activated, 10 filtered out, 10 failed, 5 parked,
# 5 skipped as duplicates. One pair in ten was retried (2 or 3 attempts).
_STATE = """
INSERT INTO delivery_state
SELECT change_id, flow_id, 'Flow ' || flow_id, mode, registration_code, 'EV' || (c % 40),
       CASE WHEN flow_n % 3 = 0 THEN 'form_post' WHEN flow_n % 3 = 1 THEN 'create_update_lead'
            ELSE 'trigger_campaign' END,
       status,
       CASE WHEN status = 'failed' THEN CASE WHEN h % 3 = 0 THEN 'data' ELSE 'technical' END
            WHEN status = 'parked' THEN 'technical' END,
       CASE status
         WHEN 'not_activated' THEN CASE h % 4
              WHEN 0 THEN 'no activate-for tag matched (found status Attended: VIP)'
              WHEN 1 THEN 'flow watches registration.status_change; '
                          || 'this is a event.create_update change'
              WHEN 2 THEN 'live data; a test flow takes only test registrations and test events'
              ELSE 'registration R' || c || ' is inactive (deleted)' END
         WHEN 'filtered_out' THEN 'filter ' || (1 + h % 3)
              || ' does not hold: event.eventType equals ''Conference'' (found ''Webinar'')'
         WHEN 'failed' THEN
              CASE WHEN h % 3 = 0 THEN 'required field ''email'' is empty' ELSE 'HTTP 503' END
         WHEN 'parked' THEN 'daily quota reached (607)'
         WHEN 'skipped_duplicate' THEN 'already delivered' END,
       CASE WHEN status = 'delivered' THEN i END,
       CASE WHEN status <> 'delivered' THEN NULL WHEN flow_n % 3 = 0 THEN 'form_posted'
            WHEN h % 2 = 0 THEN 'created' ELSE 'updated' END,
       attempts, false,
       first_at - INTERVAL 2 SECOND, processed_at,
       2000.0 + h % 900, 'req-' || i, 'conn-' || (flow_n % 3), NULL, NULL,
       'o-' || i || '-' || attempts, attempts, first_at,
       CASE WHEN status = 'delivered' THEN processed_at END, processed_at,
       false
FROM (
    SELECT *, first_at + CASE WHEN attempts > 1
                              THEN to_microseconds(((h % 14400) * 1000000)::BIGINT)
                              ELSE INTERVAL 0 SECOND END AS processed_at
    FROM (
        SELECT i, c, flow_n, h,
               'chg-' || c AS change_id, 'flow-' || flow_n AS flow_id,
               CASE WHEN flow_n >= 9 THEN 'test' ELSE 'live' END AS mode,
               'R' || (hash(c) % 500000) AS registration_code,
               CASE WHEN h % 100 < 45 THEN 'delivered' WHEN h % 100 < 70 THEN 'not_activated'
                    WHEN h % 100 < 80 THEN 'filtered_out' WHEN h % 100 < 90 THEN 'failed'
                    WHEN h % 100 < 95 THEN 'parked' ELSE 'skipped_duplicate' END AS status,
               CASE WHEN h % 100 < 45 AND h % 20 = 0 THEN 2
                    WHEN h % 100 >= 80 AND h % 100 < 90 AND h % 3 <> 0 THEN 2 + h % 2
                    ELSE 1 END AS attempts,
               TIMESTAMPTZ '{start}' + to_microseconds(i * {step_us}) AS first_at
        FROM (SELECT i, i // 3 AS c, i % 3 + 3 * ((i // 3) % 4) AS flow_n, hash(i * 7919) AS h
              FROM range({n}) t(i))))
"""

_ATTEMPTS = """
INSERT INTO outcome_log
SELECT 'o-' || replace(d.request_id, 'req-', '') || '-' || a.k, d.change_id, d.flow_id,
       d.flow_name, d.mode, d.registration_code, d.event_code, d.action,
       CASE WHEN a.k = d.attempts THEN d.status ELSE 'failed' END,
       CASE WHEN a.k = d.attempts THEN d.category ELSE 'technical' END,
       CASE WHEN a.k = d.attempts THEN d.reason ELSE 'HTTP 503' END,
       CASE WHEN a.k = d.attempts THEN d.marketo_lead_id END,
       CASE WHEN a.k = d.attempts THEN d.lead_result END,
       a.k, false, d.occurred_at,
       CASE WHEN a.k = d.attempts THEN d.processed_at
            ELSE d.first_processed_at + to_microseconds(
                (epoch_us(d.processed_at) - epoch_us(d.first_processed_at))
                * (a.k - 1) // d.attempts)
       END,
       d.latency_ms, d.request_id, d.connection_id, NULL, NULL, d.updated_at, false
FROM delivery_state d, range(1, 4) a(k)
WHERE a.k <= d.attempts
"""

_RETRIES = """
INSERT INTO retry_items
SELECT change_id, flow_id, flow_name, connection_id,
       CASE WHEN status = 'delivered' THEN 'resolved'
            WHEN category = 'data' THEN 'pending'
            WHEN attempts = 3 THEN 'abandoned' ELSE 'retrying' END,
       CASE WHEN status = 'delivered' THEN 'technical' ELSE category END,
       reason, attempts,
       CASE WHEN status = 'failed' AND category = 'technical' AND attempts < 3
            THEN processed_at + INTERVAL 5 MINUTE END,
       reason, first_processed_at, processed_at, NULL, NULL, NULL, NULL
FROM delivery_state
WHERE status = 'failed' OR (status = 'delivered' AND attempts > 1)
"""

_CHANGES = """
INSERT INTO change_log (change_id, type, account_code, event_code, registration_code, is_test,
                        occurred_at, received_at, source, kafka_partition, kafka_offset, payload,
                        published_at)
SELECT 'chg-' || c, 'registration.status_change', 'ACME', 'EV' || (c % 40),
       'R' || (hash(c) % 500000), c % 4 = 3,
       TIMESTAMPTZ '{start}' + to_microseconds(c * 3 * {step_us}) - INTERVAL 3 SECOND,
       TIMESTAMPTZ '{start}' + to_microseconds(c * 3 * {step_us}) - INTERVAL 2 SECOND,
       'topic', 0, c, '{{}}',
       TIMESTAMPTZ '{start}' + to_microseconds(c * 3 * {step_us}) - INTERVAL 2 SECOND
FROM range({changes}) t(c)
"""

_CALLS = """
INSERT INTO api_call_log
SELECT 'conn-' || (i % 3), '/rest/v1/leads.json', 'POST',
       TIMESTAMPTZ '{start}' + to_microseconds(i * {call_step_us}),
       20.0 + hash(i) % 800,
       CASE WHEN hash(i) % 50 = 0 THEN 503 WHEN hash(i) % 97 = 0 THEN NULL ELSE 200 END,
       CASE WHEN hash(i) % 61 = 0 THEN '606' END, 1 + hash(i) % 300, 'req-' || i,
       CASE WHEN hash(i) % 97 = 0 AND hash(i) % 50 <> 0 THEN 'timeout' END,
       TIMESTAMPTZ '{start}' + to_microseconds(i * {call_step_us})
FROM range({calls}) t(i)
"""

_REJECTED = """
INSERT INTO rejected_changes
SELECT TIMESTAMPTZ '{start}' + to_microseconds(i * {rej_step_us}), 'api', NULL,
       ['changeId: field required'], '{{not json', NULL, NULL
FROM range({rejected}) t(i)
"""


async def build(store: Store, n: int) -> None:
    start = NOW - SPAN
    step_us = int(SPAN.total_seconds() * 1e6) // n
    calls = max(n // 20, 1)
    rejected = max(n // 1000, 1)
    values: dict[str, Any] = {
        "start": start.isoformat(),
        "step_us": step_us,
        "n": n,
        "changes": (n + 2) // 3,
        "calls": calls,
        "call_step_us": int(SPAN.total_seconds() * 1e6) // calls,
        "rejected": rejected,
        "rej_step_us": int(SPAN.total_seconds() * 1e6) // rejected,
    }
    for label, sql in (
        ("outcomes (state per pair)", _STATE),
        ("attempt rows", _ATTEMPTS),
        ("retry items", _RETRIES),
        ("changes", _CHANGES),
        ("Marketo calls", _CALLS),
        ("rejected input", _REJECTED),
    ):
        text = sql.format(**values)
        t = time.perf_counter()
        count = await store.write(functools.partial(_rows_added, sql=text))
        print(f"load      {label:26s} {count:>11,} rows in {time.perf_counter() - t:6.1f} s")
    await store.checkpoint()


def _rows_added(con: Con, sql: str) -> int:
    rows = con.execute(sql).fetchall()
    return int(rows[0][0]) if rows else 0


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
    parser.add_argument("--keep", type=Path, help="build (or reuse) the ledger at this path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        path = args.keep or Path(tmp) / "metrics.duckdb"
        fresh = not path.exists()
        store = await Store.open(path, threads=2)
        try:
            if fresh:
                t = time.perf_counter()
                await build(store, args.outcomes)
                print(f"load      total {time.perf_counter() - t:.1f} s")
            size = (await asyncio.to_thread(path.stat)).st_size / 1e6
            print(f"file      {size:,.0f} MB")
            await measure(store, args.runs)
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
