"""A large ledger for the ledger-care and dashboard benchmarks, generated inside DuckDB and built
once per machine run.

The rows are made by `INSERT … SELECT` over `range()` with derived columns into a file opened
through `Store`, so the schema and the connection settings are the control service's own; 10M
outcomes take minutes this way where row-by-row Python would take an hour. Rows are written in
the order control writes them (by first processing time), retried pairs carry a later
`processed_at`, as an in-place update would, and change payloads carry a person (email, names,
phone) so erasure and payload redaction have real text to find and remove.

Building 10M outcomes costs minutes of both cores, so `ledger()` keeps the built file in a cache
directory (`SIGNAL_BENCH_LEDGER_CACHE`, default `<tmp>/signal-bench-ledger`) keyed by size,
schema version and `GENERATION`; the benchmarks that change the ledger (retention, erasure) work
on a copy of it. Delete the directory when done (`python -m bench._big_ledger --drop`). In smoke
mode nothing is cached: the caller's scratch directory holds the tiny ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import smoke
from stream.store import Store
from stream.store.schema import latest_version
from stream.store.writer import Con

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
"""The end of the generated period; benchmarks pass it to the queries as their `now`."""
SPAN = timedelta(days=30)
GENERATION = 2
"""Bumped when the generated rows change, so a cached ledger of an older shape is not reused."""
CACHE_ENV = "SIGNAL_BENCH_LEDGER_CACHE"
REGISTRATIONS = 500_000

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
               'R' || (hash(c) % {registrations}) AS registration_code,
               CASE WHEN h % 100 < 45 THEN 'delivered' WHEN h % 100 < 70 THEN 'not_activated'
                    WHEN h % 100 < 80 THEN 'filtered_out' WHEN h % 100 < 90 THEN 'failed'
                    WHEN h % 100 < 95 THEN 'parked' ELSE 'skipped_duplicate' END AS status,
               CASE WHEN h % 100 < 45 AND h % 20 = 0 THEN 2
                    WHEN h % 100 >= 80 AND h % 100 < 90 AND h % 3 <> 0 THEN 2 + h % 2
                    ELSE 1 END AS attempts,
               TIMESTAMPTZ '{start}' + to_microseconds(i * {step_us}) AS first_at
        FROM (SELECT i, i // 3 AS c, i % 3 + 3 * ((i // 3) % 4) AS flow_n, hash(i * 7919) AS h
              FROM range({lo}, {hi}) t(i))))
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
WHERE a.k <= d.attempts AND {in_chunk}
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
       reason, first_processed_at, processed_at, NULL, NULL, NULL, NULL,
       NULL  -- mode: not read yet, as the recorder leaves it for the fold
FROM delivery_state
WHERE (status = 'failed' OR (status = 'delivered' AND attempts > 1)) AND {in_chunk}
"""

_MARKS = """
INSERT INTO delivery_marks
SELECT change_id || chr(31) || flow_id, change_id, flow_id, NULL, 'delivered',
       processed_at, processed_at
FROM delivery_state WHERE status = 'delivered' AND {in_chunk}
"""

# A registration's person: the same email, names and phone in every change of it.
_CHANGES = """
INSERT INTO change_log (change_id, type, account_code, event_code, registration_code, is_test,
                        occurred_at, received_at, source, kafka_partition, kafka_offset, payload,
                        published_at)
SELECT 'chg-' || c, 'registration.status_change', 'ACME', 'EV' || (c % 40),
       'R' || r, c % 4 = 3,
       TIMESTAMPTZ '{start}' + to_microseconds(c * 3 * {step_us}) - INTERVAL 3 SECOND,
       TIMESTAMPTZ '{start}' + to_microseconds(c * 3 * {step_us}) - INTERVAL 2 SECOND,
       'topic', 0, c,
       '{{"registration":{{"registrationCode":"R' || r || '","registrationStatusLabel":'
       || '"Attended","profile":{{"email":"person' || r || '@example.com","firstName":"Ann'
       || r || '","lastName":"Lee' || r || '","phone":"+1 555 ' || lpad(r::VARCHAR, 7, '0')
       || '","company":"Company ' || (r % 9973) || '"}}}},"event":{{"eventCode":"EV'
       || (c % 40) || '"}}}}',
       TIMESTAMPTZ '{start}' + to_microseconds(c * 3 * {step_us}) - INTERVAL 2 SECOND
FROM (SELECT c, hash(c) % {registrations} AS r FROM range({lo}, {hi}) t(c))
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
FROM range({lo}, {hi}) t(i)
"""

_REJECTED = """
INSERT INTO rejected_changes
SELECT TIMESTAMPTZ '{start}' + to_microseconds(i * {rej_step_us}), 'api', NULL,
       ['changeId: field required'], '{{not json', NULL, NULL
FROM range({lo}, {hi}) t(i)
"""

PARTS: tuple[tuple[str, str, str], ...] = (
    ("outcomes (state per pair)", _STATE, "n"),
    ("attempt rows", _ATTEMPTS, "n"),
    ("retry items", _RETRIES, "n"),
    ("delivery marks", _MARKS, "n"),
    ("changes", _CHANGES, "changes"),
    ("Marketo calls", _CALLS, "calls"),
    ("rejected input", _REJECTED, "rejected"),
)
"""(label, SQL, what its rows count): each part is loaded in chunks of `CHUNK` of that count,
so one transaction (and its primary-key index work) stays within the ledger's memory limit."""
CHUNK = 1_000_000
BUILD_MEMORY_LIMIT = "3GB"
"""For building only; the benchmarks open the ledger with control's own settings."""


def registration_of(change: int) -> str:
    """A registration code the generator gave some change (for erasure by registration)."""
    return f"R{change}"


def _values(n: int) -> dict[str, Any]:
    span_us = int(SPAN.total_seconds() * 1e6)
    calls = max(n // 20, 1)
    rejected = max(n // 1000, 1)
    return {
        "start": (NOW - SPAN).isoformat(),
        "step_us": span_us // n,
        "n": n,
        "changes": (n + 2) // 3,
        "registrations": REGISTRATIONS,
        "calls": calls,
        "call_step_us": span_us // calls,
        "rejected": rejected,
        "rej_step_us": span_us // rejected,
    }


def _rows_added(con: Con, sql: str) -> int:
    rows = con.execute(sql).fetchall()
    return int(rows[0][0]) if rows else 0


async def build(store: Store, n: int) -> None:
    """`n` outcome pairs over the 30 days before `NOW`, with their attempts, retry items, marks,
    changes (a third of `n`), Marketo calls (`n`/20) and rejected input (`n`/1000)."""
    values = _values(n)
    start = NOW - SPAN
    for label, sql, size in PARTS:
        t = time.perf_counter()
        count = 0
        for lo in range(0, values[size], CHUNK):
            hi = min(lo + CHUNK, values[size])
            # Rows derived from the state of pairs lo..hi: those first processed in their span.
            low = start + timedelta(microseconds=lo * values["step_us"])
            high = start + timedelta(microseconds=hi * values["step_us"])
            in_chunk = (
                f"first_processed_at >= TIMESTAMPTZ '{low.isoformat()}' "
                f"AND first_processed_at < TIMESTAMPTZ '{high.isoformat()}'"
            )
            if hi == values[size]:
                in_chunk = f"first_processed_at >= TIMESTAMPTZ '{low.isoformat()}'"
            text = sql.format(**values, lo=lo, hi=hi, in_chunk=in_chunk)
            count += await store.write(functools.partial(_rows_added, sql=text))
        print(f"load      {label:26s} {count:>11,} rows in {time.perf_counter() - t:6.1f} s")
    await store.checkpoint()


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "signal-bench-ledger")


async def ledger(n: int, scratch: Path) -> Path:
    """The path of a closed ledger of `n` outcomes: the cached one (built now if missing), or
    in smoke mode a fresh one in `scratch`. Open it read-mostly, or `copy_of` it to change it."""
    if smoke():
        path = scratch / f"ledger-{n}.duckdb"
        if not path.exists():
            await _build_file(path, n)
        return path
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ledger-{n}-s{latest_version()}-g{GENERATION}.duckdb"
    if path.exists():
        print(f"ledger    reusing {path} ({path.stat().st_size / 1e6:,.0f} MB)")
        return path
    building = path.with_suffix(f".building-{os.getpid()}")
    await _build_file(building, n)
    building.rename(path)
    print(f"ledger    cached at {path}; `python -m bench._big_ledger --drop` deletes it")
    return path


async def _build_file(path: Path, n: int) -> None:
    started = time.perf_counter()
    store = await Store.open(path, memory_limit=BUILD_MEMORY_LIMIT)
    try:
        await build(store, n)
    finally:
        await store.close()
    size = (await asyncio.to_thread(path.stat)).st_size
    print(f"load      total {time.perf_counter() - started:.1f} s, file {size / 1e6:,.0f} MB")


async def copy_of(source: Path, into: Path) -> Path:
    """A private copy of a closed ledger file, for a benchmark that changes it."""
    target = into / "signal.duckdb"
    started = time.perf_counter()
    await asyncio.to_thread(shutil.copyfile, source, target)
    print(f"ledger    copied in {time.perf_counter() - started:.1f} s")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description="Build or drop the cached bench ledger.")
    parser.add_argument("--outcomes", type=int, default=10_000_000)
    parser.add_argument("--drop", action="store_true", help="delete the cache directory")
    args = parser.parse_args()
    if args.drop:
        shutil.rmtree(cache_dir(), ignore_errors=True)
        print(f"deleted {cache_dir()}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(asyncio.run(ledger(args.outcomes, Path(tmp))))


if __name__ == "__main__":
    main()
