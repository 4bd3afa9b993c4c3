"""DuckDB schema: append-friendly base tables and the stable analytics views of DESIGN 4.6.

Operators write SQL against the views (`changes`, `outcomes`, `retry_queue`, `api_calls`,
`config_audit`), so base tables may change shape between versions as long as a migration keeps
the views' names and columns. Every schema change is a new `Migration` appended to `MIGRATIONS`
(`stream.store.migrations`, the statements of each version); applied versions are recorded in
`schema_version`. A new file gets every version in one transaction; an existing file's upgrade
runs each pending version in a transaction of its own, so a failed step leaves the one before.

Timestamps are TIMESTAMPTZ and the store pins the session time zone to UTC, so values read back
are UTC whatever the host's zone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

from stream.store.errors import SchemaVersionError
from stream.store.migrations import MIGRATIONS, Migration

log = logging.getLogger(__name__)

__all__ = [
    "MIGRATIONS",
    "VIEW_COLUMNS",
    "Migration",
    "current_version",
    "latest_version",
    "migrate",
]

VIEW_COLUMNS: dict[str, tuple[str, ...]] = {
    "changes": (
        "change_id",
        "type",
        "account_code",
        "event_code",
        "registration_code",
        "is_test",
        "occurred_at",
        "received_at",
        "payload",
    ),
    "outcomes": (
        "change_id",
        "flow_id",
        "flow_name",
        "mode",
        "registration_code",
        "event_code",
        "action",
        "status",
        "category",
        "reason",
        "marketo_lead_id",
        "lead_result",
        "attempts",
        "occurred_at",
        "processed_at",
        "latency_ms",
    ),
    "retry_queue": (
        "change_id",
        "flow_id",
        "integration",
        "status",
        "category",
        "reason",
        "attempts",
        "next_attempt_at",
        "last_error",
    ),
    "api_calls": (
        "connection_id",
        "endpoint",
        "started_at",
        "duration_ms",
        "http_status",
        "marketo_error",
        "batch_size",
        "request_id",
    ),
    "config_audit": ("at", "actor", "object", "object_id", "change"),
}
"""Columns each stable view is promised to have (it may have more)."""

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)
"""


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return max((m.version for m in migrations), default=0)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(_VERSION_TABLE)
    rows = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
    return int(rows[0][0]) if rows else 0


def migrate(
    con: duckdb.DuckDBPyConnection, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Bring the file up to the newest schema; returns the versions applied now.

    Refuses a file from a newer build instead of guessing: views and writers of an older build
    could silently misread newer tables.
    """
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError("migrations must have unique, increasing versions")
    have = current_version(con)
    newest = latest_version(migrations)
    if have > newest:
        raise SchemaVersionError(
            f"database schema version {have} is newer than this build supports ({newest}); "
            "upgrade Signal or restore a backup"
        )
    pending = [m for m in migrations if m.version > have]
    if have == 0:
        # A new file is made in one transaction: one commit instead of one per version (migrate
        # took 34 against 42-44 ms of CPU for the 14 versions), and a start cut short leaves an
        # empty file to make again rather than a part-made one.
        _in_transaction(con, pending)
        return [m.version for m in pending]
    applied: list[int] = []
    for migration in pending:
        # An upgrade can copy a table (migration 14 copies outcome_log): the log says why a
        # start takes longer than usual, and how long each step took.
        log.info(
            "upgrading the ledger to schema version %d: %s",
            migration.version,
            migration.description,
        )
        started = time.monotonic()
        _in_transaction(con, [migration])
        applied.append(migration.version)
        log.info(
            "ledger at schema version %d (%.1f s)", migration.version, time.monotonic() - started
        )
    return applied


def _in_transaction(con: duckdb.DuckDBPyConnection, migrations: Sequence[Migration]) -> None:
    """Apply `migrations` and record their versions, all or none."""
    con.execute("BEGIN TRANSACTION")
    try:
        for migration in migrations:
            for statement in migration.statements:
                con.execute(statement)
            if migration.apply is not None:
                migration.apply(con)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)",
                [migration.version, migration.description, datetime.now(UTC)],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
