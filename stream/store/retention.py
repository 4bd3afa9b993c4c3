"""Retention: what the ledger drops or redacts once it is old enough, one bounded step at a time.

The ledger holds attendees' personal data (change payloads) and grows with every outcome, so
past their age (`RetentionPolicy`) change payloads and rejected records' texts are redacted (the
rows and their figures stay), and outcomes, outcome attempts, Marketo calls, delivery marks and
resolved retry items are dropped. A pair still open (in flight, or with a retry item) keeps its
rows whatever their age: the retry queue and recovery still need them.

What the dashboards count of a dropped row moves, in the transaction that drops it, into the
hourly rollups of schema version 9 (`rollup_*`), so the Summary and the Troubleshooting figures
of a period are the same before and after (`stream.metrics.queries` adds them in); the live
rollups of those hours (`stream.store.rollup_fold`) are taken out in the same transaction, so the
hours are read from what is kept until the fold folds them again. Each step
takes at most `batch` rows, so one transaction is short and the recorder's writes, queued on the
same writer thread, wait for at most one step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stream.metrics.definitions import call_error_code_sql, call_is_error_sql, reason_code_sql
from stream.store.base import first
from stream.store.person import ERASED_PAYLOAD, ERASED_TEXT
from stream.store.writer import Con

REDACTED_PAYLOAD = '{"redacted":"retention"}'
REDACTED_TEXT = "[redacted: retention]"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    payload: timedelta = timedelta(days=90)
    outcomes: timedelta = timedelta(days=400)
    retry: timedelta = timedelta(days=30)
    """A resolved retry item is kept this long after it was resolved."""
    batch: int = 5000

    def describe(self) -> dict[str, Any]:
        return {
            "payload_days": self.payload / timedelta(days=1),
            "outcomes_days": self.outcomes / timedelta(days=1),
            "retry_resolved_days": self.retry / timedelta(days=1),
            "batch": self.batch,
        }


@dataclass(frozen=True, slots=True)
class Step:
    """One kind of work: `table` and `action` name it in reports and metrics."""

    table: str
    action: str  # redact | drop
    age: str  # which age of the policy applies: payload | outcomes | retry
    run: Callable[[Con, datetime, int], int]
    """(connection, cutoff, batch) -> rows done; fewer than `batch` means nothing is left."""


def _watermark(con: Con, name: str) -> datetime:
    rows = con.execute("SELECT watermark FROM retention_state WHERE name = ?", [name]).fetchall()
    return rows[0][0] if rows else EPOCH


def _set_watermark(con: Con, name: str, at: datetime) -> None:
    con.execute(
        "INSERT INTO retention_state VALUES (?, ?, now()) "
        "ON CONFLICT (name) DO UPDATE SET watermark = excluded.watermark, updated_at = now()",
        [name, at],
    )


def _redact_change_payloads(con: Con, before: datetime, batch: int) -> int:
    """Oldest first from a watermark, so a pass never scans the payloads it redacted before."""
    after = _watermark(con, "change_payloads")
    if after >= before:
        return 0
    done = con.execute(
        """
        UPDATE change_log SET payload = ?
        WHERE change_id IN (
            SELECT change_id FROM change_log
            WHERE received_at >= ? AND received_at < ?
              AND payload::VARCHAR NOT IN (?, ?)
            ORDER BY received_at LIMIT ?)
        RETURNING received_at
        """,
        [REDACTED_PAYLOAD, after, before, REDACTED_PAYLOAD, ERASED_PAYLOAD, batch],
    ).fetchall()
    if len(done) < batch:
        _set_watermark(con, "change_payloads", before)
    else:
        _set_watermark(con, "change_payloads", max(r[0] for r in done))
    return len(done)


def _redact_text(table: str) -> Callable[[Con, datetime, int], int]:
    def run(con: Con, before: datetime, batch: int) -> int:
        rows = con.execute(
            f"""
            UPDATE {table} SET payload = ?
            WHERE rowid IN (
                SELECT rowid FROM {table}
                WHERE received_at < ? AND payload NOT IN (?, ?) LIMIT ?)
            RETURNING 1
            """,
            [REDACTED_TEXT, before, REDACTED_TEXT, ERASED_TEXT, batch],
        ).fetchall()
        return len(rows)

    return run


_HOUR = "date_trunc('hour', {})"

_HELD = "ANTI JOIN retry_items r ON r.change_id = {t}.change_id AND r.flow_id = {t}.flow_id"
"""A pair with a retry item (open, or resolved and not yet due) keeps its outcome rows. An anti
join of the due rows rather than NOT EXISTS per row: DuckDB then hashes the retry items once per
step (about a third less time per step on a 10M-outcome ledger with a million items)."""


@dataclass(frozen=True, slots=True)
class Drop:
    """One table's drop step as data: which rows are due, what the dashboards keep of them, and
    how a due row is found again to delete it.

    `due` selects the batch (at most `batch` rows, oldest first) into the temp table
    `prune_batch`, with the cutoff and the batch size as its two parameters; `rollups` read
    `prune_batch` and add its counts into the hourly rollups; `key` joins the table's rows (`t`)
    to the batch's (`p`) for the delete. All in the writer's transaction, so a batch's rows
    leave the table exactly when their counts enter the rollups."""

    table: str
    key: str
    due: str
    rollups: tuple[str, ...] = ()


def _drop(step: Drop) -> Callable[[Con, datetime, int], int]:
    def run(con: Con, before: datetime, batch: int) -> int:
        con.execute(f"CREATE OR REPLACE TEMP TABLE prune_batch AS {step.due}", [before, batch])
        try:
            for rollup in step.rollups:
                con.execute(rollup)
            (n,) = first(con.execute("SELECT count(*) FROM prune_batch").fetchall()) or (0,)
            if n:
                con.execute(f"DELETE FROM {step.table} t USING prune_batch p WHERE {step.key}")
            return int(n)
        finally:
            con.execute("DROP TABLE IF EXISTS prune_batch")

    return run


def _dropping(age: str, step: Drop) -> Step:
    return Step(step.table, "drop", age, _drop(step))


_PAIR_KEY = "t.change_id = p.change_id AND t.flow_id = p.flow_id"

_UNFOLD = (
    *(
        f"DELETE FROM {table} WHERE hour IN "
        "(SELECT DISTINCT date_trunc('hour', processed_at) FROM prune_batch)"
        for table in ("live_outcomes", "live_attempts", "live_in_flight", "live_hours")
    ),
    "DELETE FROM live_keys WHERE hour IN "
    "(SELECT DISTINCT epoch_us(processed_at) // 3600000000 FROM prune_batch)",
)
"""The live rollups (`stream.store.rollup_fold`) of the hours a batch drops rows from are taken
out: those hours' figures are the ledger's again (their kept rows plus these rollups) until the
fold folds what is left of them."""

DROP_OUTCOMES = Drop(
    "delivery_state",
    _PAIR_KEY,
    f"""
    SELECT change_id, flow_id, mode, status, action, lead_result, reason, category,
           registration_code, processed_at
    FROM (SELECT * FROM delivery_state WHERE processed_at < ? AND status <> 'queued') d
    {_HELD.format(t="d")}
    ORDER BY processed_at LIMIT ?
    """,
    (
        f"""
        INSERT INTO rollup_outcomes
        SELECT {_HOUR.format("processed_at")}, mode, status, coalesce(action, ''),
               coalesce(lead_result, ''), {reason_code_sql()}, coalesce(category, ''), count(*)
        FROM prune_batch GROUP BY ALL
        ON CONFLICT DO UPDATE SET pairs = pairs + excluded.pairs
        """,
        f"""
        INSERT OR IGNORE INTO rollup_keys
        SELECT DISTINCT {_HOUR.format("processed_at")}, mode, 'change', hash(change_id)
        FROM prune_batch
        UNION
        SELECT DISTINCT {_HOUR.format("processed_at")}, mode, 'registration',
               hash(registration_code)
        FROM prune_batch WHERE registration_code IS NOT NULL
        """,
        *_UNFOLD,
    ),
)

DROP_ATTEMPTS = Drop(
    "outcome_log",
    "t.outcome_id = p.outcome_id",
    f"""
    SELECT outcome_id, change_id, flow_id, mode, status, processed_at,
           attempt > 1 AND NOT replayed AS retry, possible_repeat
    FROM (SELECT * FROM outcome_log WHERE processed_at < ?) o
    {_HELD.format(t="o")}
    ANTI JOIN (SELECT change_id, flow_id FROM delivery_state WHERE status = 'queued') q
      ON q.change_id = o.change_id AND q.flow_id = o.flow_id
    ORDER BY processed_at LIMIT ?
    """,
    (
        f"""
        INSERT INTO rollup_attempts
        SELECT {_HOUR.format("processed_at")}, mode, status, retry, possible_repeat, count(*)
        FROM prune_batch GROUP BY ALL
        ON CONFLICT DO UPDATE SET attempts = attempts + excluded.attempts
        """,
        f"""
        INSERT OR IGNORE INTO rollup_keys
        SELECT DISTINCT {_HOUR.format("processed_at")}, mode, 'retried_pair',
               hash(change_id, flow_id)
        FROM prune_batch WHERE retry AND status <> 'queued'
        """,
        *_UNFOLD,
    ),
)

DROP_API_CALLS = Drop(
    "api_call_log",
    "t.rowid = p.rid",
    f"""
    SELECT rowid AS rid, connection_id, started_at, duration_ms,
           CASE WHEN {call_is_error_sql()} THEN {call_error_code_sql()} ELSE '' END AS code
    FROM api_call_log WHERE started_at < ? ORDER BY started_at LIMIT ?
    """,
    (
        f"""
        INSERT INTO rollup_api_calls
        SELECT {_HOUR.format("started_at")}, connection_id, code, count(*), sum(duration_ms)
        FROM prune_batch GROUP BY ALL
        ON CONFLICT DO UPDATE SET calls = calls + excluded.calls,
                                  duration_ms = duration_ms + excluded.duration_ms
        """,
    ),
)

DROP_RESOLVED_RETRIES = Drop(
    "retry_items",
    _PAIR_KEY,
    """
    SELECT r.change_id, r.flow_id, r.status, r.category, r.updated_at, d.mode
    FROM (SELECT * FROM retry_items WHERE status = 'resolved' AND updated_at < ?
          ORDER BY updated_at LIMIT ?) r
    LEFT JOIN delivery_state d ON d.change_id = r.change_id AND d.flow_id = r.flow_id
    """,
    # Without its outcome the item has no mode and the dashboards never counted it.
    (
        f"""
        INSERT INTO rollup_retry_items
        SELECT {_HOUR.format("updated_at")}, mode, status, category, count(*)
        FROM prune_batch WHERE mode IS NOT NULL GROUP BY ALL
        ON CONFLICT DO UPDATE SET items = items + excluded.items
        """,
    ),
)

DROP_MARKS = Drop(
    "delivery_marks",
    "t.key = p.key",
    "SELECT key FROM delivery_marks WHERE updated_at < ? LIMIT ?",
)


STEPS: tuple[Step, ...] = (
    Step("change_log", "redact", "payload", _redact_change_payloads),
    Step("rejected_changes", "redact", "payload", _redact_text("rejected_changes")),
    Step("rejected_records", "redact", "payload", _redact_text("rejected_records")),
    # Retry items first: a pair whose resolved item goes may then lose its outcome rows.
    _dropping("retry", DROP_RESOLVED_RETRIES),
    _dropping("outcomes", DROP_OUTCOMES),
    _dropping("outcomes", DROP_ATTEMPTS),
    _dropping("outcomes", DROP_API_CALLS),
    _dropping("outcomes", DROP_MARKS),
)


def cutoff(policy: RetentionPolicy, step: Step, now: datetime) -> datetime:
    age = {"payload": policy.payload, "outcomes": policy.outcomes, "retry": policy.retry}
    return now - age[step.age]


# -- what is kept -----------------------------------------------------------------------------

OLDEST: dict[str, str] = {
    "change_log": "SELECT min(received_at) FROM change_log",
    "change_log_payload": "SELECT min(received_at) FROM change_log WHERE received_at >= ?",
    "delivery_state": "SELECT min(processed_at) FROM delivery_state",
    "outcome_log": "SELECT min(processed_at) FROM outcome_log",
    "api_call_log": "SELECT min(started_at) FROM api_call_log",
    "retry_items": "SELECT min(updated_at) FROM retry_items",
    "delivery_marks": "SELECT min(updated_at) FROM delivery_marks",
    "rejected_changes": "SELECT min(received_at) FROM rejected_changes",
    "rejected_records": "SELECT min(received_at) FROM rejected_records",
    "config_audit_log": 'SELECT min("at") FROM config_audit_log',
    "rollups": "SELECT min(hour) FROM rollup_outcomes",
}
"""The oldest row each table keeps (`change_log_payload`: the oldest change whose payload may
still be whole, from the redaction watermark)."""


_PAYLOAD_WATERMARK = """
    SELECT coalesce((SELECT watermark FROM retention_state WHERE name = 'change_payloads'),
                    TIMESTAMPTZ '1970-01-01 00:00:00+00')
"""
"""The redaction watermark, read first: as a parameter, DuckDB skips the row groups of changes
before it by their min/max (a subquery in the filter scanned all 3.3M changes, 20 ms a scrape)."""


def oldest_rows(con: Con) -> dict[str, datetime | None]:
    found: dict[str, datetime | None] = {}
    watermark = (first(con.execute(_PAYLOAD_WATERMARK).fetchall()) or (None,))[0]
    for table, sql in OLDEST.items():
        params = [watermark] if table == "change_log_payload" else []
        row = first(con.execute(sql, params).fetchall())
        found[table] = row[0] if row else None
    return found


def file_bytes(path: Path) -> dict[str, int]:
    """The database file and its WAL on disk."""
    sizes = {}
    for name, file in (("database", path), ("wal", Path(f"{path}.wal"))):
        try:
            sizes[name] = os.stat(file).st_size
        except FileNotFoundError:
            sizes[name] = 0
    return sizes
