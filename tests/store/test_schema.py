from __future__ import annotations

import logging
import re
from pathlib import Path

import duckdb
import pytest

from stream.store import VIEW_COLUMNS, SchemaVersionError, Store
from stream.store.schema import MIGRATIONS, Migration, current_version, latest_version, migrate
from tests.store.conftest import change


async def test_views_have_the_promised_names_and_columns(store: Store) -> None:
    for view, promised in VIEW_COLUMNS.items():
        result = await store.query(f"SELECT * FROM {view} LIMIT 0")
        missing = set(promised) - set(result.column_names)
        assert not missing, f"{view} lacks {missing}"
    tables = await store.query(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW'"
    )
    assert set(VIEW_COLUMNS) <= {row[0] for row in tables.rows}


async def test_design_column_lists_are_what_the_design_names() -> None:
    assert VIEW_COLUMNS["outcomes"] == (
        "change_id", "flow_id", "flow_name", "mode", "registration_code", "event_code",
        "action", "status", "category", "reason", "marketo_lead_id", "lead_result",
        "attempts", "occurred_at", "processed_at", "latency_ms",
    )  # fmt: skip
    assert VIEW_COLUMNS["config_audit"] == ("at", "actor", "object", "object_id", "change")


async def test_timestamps_are_timestamptz(store: Store) -> None:
    result = await store.query("DESCRIBE outcomes")
    types = {row[0]: row[1] for row in result.rows}
    assert types["processed_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["occurred_at"] == "TIMESTAMP WITH TIME ZONE"


async def test_reopening_keeps_data_and_does_not_migrate_again(db_path: Path) -> None:
    first = await Store.open(db_path)
    assert await first.archive_changes([change("c1")]) == 1
    await first.close()

    second = await Store.open(db_path)
    try:
        assert await second.schema_version() == MIGRATIONS[-1].version
        result = await second.query("SELECT change_id FROM changes")
        assert result.rows == (("c1",),)
        versions = await second.query("SELECT count(*) FROM schema_version")
        assert versions.rows == ((len(MIGRATIONS),),)
    finally:
        await second.close()


async def test_file_from_a_newer_build_is_refused(db_path: Path) -> None:
    s = await Store.open(db_path)
    await s.close()
    con = duckdb.connect(str(db_path))
    con.execute("INSERT INTO schema_version VALUES (999, 'future', now())")
    con.close()
    with pytest.raises(SchemaVersionError, match="999"):
        await Store.open(db_path)
    # The refused open released the file: a plain connection can take it again.
    duckdb.connect(str(db_path)).close()


def test_migration_hook_applies_pending_versions_in_order(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    seen: list[int] = []

    def backfill(c: duckdb.DuckDBPyConnection) -> None:
        seen.append(current_version(c))
        c.execute("INSERT INTO extra VALUES (42)")

    newest = latest_version()
    extra = Migration(newest + 1, "extra table", ("CREATE TABLE extra (x INTEGER)",), backfill)
    assert migrate(con, MIGRATIONS) == [m.version for m in MIGRATIONS]
    assert migrate(con, (*MIGRATIONS, extra)) == [newest + 1]
    assert migrate(con, (*MIGRATIONS, extra)) == []
    assert seen == [newest]
    assert con.execute("SELECT x FROM extra").fetchall() == [(42,)]
    con.close()


def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    migrate(con)
    newest = latest_version()
    broken = Migration(
        newest + 1, "broken", ("CREATE TABLE half (x INTEGER)", "SELECT * FROM nowhere")
    )
    with pytest.raises(duckdb.CatalogException):
        migrate(con, (*MIGRATIONS, broken))
    assert current_version(con) == newest
    tables = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'half'")
    assert tables.fetchall() == [(0,)]
    con.close()


def test_a_new_file_is_made_whole_or_not_at_all(tmp_path: Path) -> None:
    """A new file gets every version in one transaction: a failing last step leaves no table
    and version 0, and the next start makes the file from the beginning."""
    path = tmp_path / "m.duckdb"
    con = duckdb.connect(str(path))
    broken = Migration(latest_version() + 1, "broken", ("SELECT * FROM nowhere",))
    with pytest.raises(duckdb.CatalogException):
        migrate(con, (*MIGRATIONS, broken))
    assert current_version(con) == 0
    tables = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    assert tables == [("schema_version",)]
    assert migrate(con) == [m.version for m in MIGRATIONS]
    assert current_version(con) == latest_version()
    con.close()


def test_migrations_must_be_increasing(tmp_path: Path) -> None:
    con = duckdb.connect()
    with pytest.raises(ValueError, match="increasing"):
        migrate(con, (Migration(2, "b"), Migration(1, "a")))


def test_outcome_log_loses_its_key_and_keeps_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Migration 14 copies outcome_log into a table without the primary key: every row and
    value stays, the NOT NULL columns and possible_repeat's default stay, the views read it.
    The upgrade of an existing ledger is logged (a copy can take a while); a new file's is not."""
    caplog.set_level(logging.INFO, logger="stream.store.schema")
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    before_14 = [m for m in MIGRATIONS if m.version < 14]
    migrate(con, before_14)
    assert not caplog.messages
    con.execute(
        "INSERT INTO outcome_log (outcome_id, change_id, flow_id, flow_name, mode, status, "
        "attempt, replayed, occurred_at, processed_at, recorded_at, possible_repeat, reason) "
        "SELECT 'id-' || i, 'c' || i, 'f1', 'Flow', 'live', 'delivered', 1, false, "
        "TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i), "
        "TIMESTAMPTZ '2026-01-01 00:00:01+00' + to_seconds(i), now(), i % 2 = 0, "
        "CASE WHEN i % 3 = 0 THEN 'why ' || i END FROM range(1000) t(i)"
    )
    keyed = (
        "SELECT count(*) FROM duckdb_constraints() "
        "WHERE table_name = 'outcome_log' AND constraint_type = 'PRIMARY KEY'"
    )
    assert con.execute(keyed).fetchall() == [(1,)]
    rows = con.execute("SELECT * FROM outcome_log ORDER BY outcome_id").fetchall()
    columns = con.execute("DESCRIBE outcome_log").fetchall()
    attempts = con.execute("SELECT * FROM outcome_attempts ORDER BY 1, 2, 3").fetchall()
    # Another database's table of the same name is not the one copied.
    con.execute("ATTACH ':memory:' AS other")
    con.execute("CREATE TABLE other.outcome_log (x INTEGER NOT NULL DEFAULT 1)")

    assert migrate(con) == [14]
    assert caplog.messages[0] == (
        "upgrading the ledger to schema version 14: outcome_log without a primary key "
        "(redelivered outcomes found by processed_at and id)"
    )
    assert re.fullmatch(r"ledger at schema version 14 \(\d+\.\d s\)", caplog.messages[1])
    assert con.execute(keyed).fetchall() == [(0,)]
    assert con.execute("SELECT * FROM outcome_log ORDER BY outcome_id").fetchall() == rows
    unkeyed = [(*c[:3], None, *c[4:]) if c[0] == "outcome_id" else c for c in columns]
    assert con.execute("DESCRIBE outcome_log").fetchall() == unkeyed
    assert con.execute("SELECT * FROM outcome_attempts ORDER BY 1, 2, 3").fetchall() == attempts
    with pytest.raises(duckdb.ConstraintException, match="NOT NULL"):
        con.execute("INSERT INTO outcome_log (outcome_id) VALUES ('x')")
    con.execute(
        "INSERT INTO outcome_log (outcome_id, change_id, flow_id, flow_name, mode, status, "
        "attempt, replayed, occurred_at, processed_at, recorded_at) "
        "VALUES ('new', 'c', 'f', 'F', 'live', 'delivered', 1, false, now(), now(), now())"
    )
    assert con.execute(
        "SELECT possible_repeat FROM outcome_log WHERE outcome_id = 'new'"
    ).fetchall() == [(False,)]
    con.close()
