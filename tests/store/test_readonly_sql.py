from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from stream.store import SqlFailedError, SqlRefusedError, Store, StoreReadError, readonly_sql
from stream.store.readonly_sql import check_read_only, json_value, run_read_only
from tests.store.conftest import T0, change, outcome

REFUSED: list[tuple[str, str]] = [
    ("INSERT INTO change_log VALUES ('x')", "INSERT"),
    ("UPDATE retry_items SET status = 'resolved'", "UPDATE"),
    ("DELETE FROM outcome_log", "DELETE"),
    ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "MERGE"),
    ("DROP TABLE change_log", "DROP"),
    ("CREATE TABLE t (x INTEGER)", "CREATE"),
    ("CREATE VIEW v AS SELECT 1", "CREATE"),
    ("CREATE MACRO m() AS 1", "CREATE"),
    ("CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", "CREATE"),
    ("ALTER TABLE change_log ADD COLUMN x INTEGER", "ALTER"),
    ("ATTACH '/tmp/other.duckdb' AS other", "ATTACH"),
    ("ATTACH ':memory:' AS scratch", "ATTACH"),
    ("DETACH other", "DETACH"),
    ("INSTALL httpfs", "INSTALL/LOAD"),
    ("FORCE INSTALL httpfs FROM 'http://example.invalid'", "INSTALL/LOAD"),
    ("LOAD httpfs", "INSTALL/LOAD"),
    ("LOAD '/tmp/evil.duckdb_extension'", "INSTALL/LOAD"),
    ("UPDATE EXTENSIONS", "does not know"),
    ("COPY change_log TO '/tmp/out.csv'", "COPY"),
    ("COPY change_log FROM '/etc/passwd'", "COPY"),
    ("COPY FROM DATABASE a TO b", "COPY FROM DATABASE"),
    ("EXPORT DATABASE '/tmp/dump'", "EXPORT"),
    ("IMPORT DATABASE '/tmp/dump'", "IMPORT DATABASE"),
    ("SET enable_external_access = true", "SET"),
    ("SET VARIABLE x = 1", "SET"),
    ("RESET memory_limit", "SET"),
    ("USE memory", "SET"),
    ("PRAGMA threads = 1", "SET"),
    ("PRAGMA enable_profiling", "PRAGMA enable_profiling"),
    ("PRAGMA force_checkpoint", "PRAGMA force_checkpoint"),
    ("CALL pragma_version()", "CALL"),
    ("CHECKPOINT", "CALL"),
    ("BEGIN TRANSACTION", "transaction"),
    ("VACUUM", "VACUUM"),
    ("ANALYZE", "VACUUM"),
    ("PREPARE p AS SELECT 1", "PREPARE"),
    ("PIVOT changes ON type", "several statements"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv()"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto()"),
    ("SELECT * FROM read_parquet('x.parquet')", "read_parquet()"),
    ("SELECT * FROM parquet_scan('x.parquet')", "parquet_scan()"),
    ("SELECT * FROM read_json('x.json')", "read_json()"),
    ("SELECT * FROM read_json_auto('x.json')", "read_json_auto()"),
    ("SELECT * FROM read_ndjson_objects('x.json')", "read_ndjson_objects()"),
    ("SELECT * FROM read_text('/etc/hostname')", "read_text()"),
    ("SELECT * FROM read_blob('/etc/hostname')", "read_blob()"),
    ("SELECT * FROM sniff_csv('/etc/passwd')", "sniff_csv()"),
    ("SELECT * FROM glob('/etc/*')", "glob()"),
    ("SELECT * FROM query('SELECT 1')", "query()"),
    ("SELECT * FROM query_table('change_log')", "query_table()"),
    ("FROM '/etc/passwd'", "file path"),
    ("SELECT * FROM 'data.parquet'", "file path"),
    ('SELECT * FROM "/etc/passwd"', "file path"),
    ("DESCRIBE '/etc/passwd'", "file path"),
    ("SUMMARIZE '/etc/passwd'", "file path"),
    ("SELECT count(*) FROM (SELECT * FROM read_csv('/etc/passwd'))", "read_csv()"),
    ("SELECT (SELECT count(*) FROM glob('*'))", "glob()"),
    ("WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x", "read_csv()"),
    ("SELECT * FROM changes WHERE change_id IN (FROM 'ids.csv')", "file path"),
    ("SELECT 1 UNION ALL SELECT * FROM read_text('/etc/shadow')", "read_text()"),
    ("WITH d AS (DELETE FROM outcome_log RETURNING *) SELECT * FROM d", "DELETE inside"),
    ("WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM i", "INSERT inside"),
    ("SELECT nextval('config_audit_seq')", "nextval()"),
    ("SELECT 1; DROP TABLE change_log", "exactly one statement"),
    ("SELECT 1 /* ; */ ; DELETE FROM outcome_log", "exactly one statement"),
    ("SELECT 1;\n-- harmless\nDROP TABLE change_log", "exactly one statement"),
    ("SELECT 1; SELECT 2", "exactly one statement"),
    ("EXPLAIN DELETE FROM outcome_log", "EXPLAIN is allowed only"),
    ("EXPLAIN ANALYZE COPY change_log TO '/tmp/x.csv'", "EXPLAIN is allowed only"),
    ("EXPLAIN SELECT * FROM read_csv('/etc/passwd')", "read_csv()"),
    ("", "no statement"),
    ("  -- only a comment", "no statement"),
]

ACCEPTED: list[str] = [
    "SELECT 1",
    "select count(*) from outcomes",
    "SELECT 1;",
    "-- leading comment\nSELECT 1",
    "SELECT 1 /* ; DROP TABLE change_log */",
    "SELECT 'a;b; DROP TABLE change_log'",
    "WITH recent AS (SELECT * FROM outcomes) SELECT status, count(*) FROM recent GROUP BY 1",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT * FROM n",
    "VALUES (1, 'a'), (2, 'b')",
    "FROM changes",
    "FROM main.outcomes",
    "DESCRIBE outcomes",
    "DESCRIBE SELECT 1",
    "SHOW TABLES",
    "SHOW ALL TABLES",
    "SHOW outcomes",
    "SUMMARIZE outcomes",
    "SUMMARIZE SELECT 1 AS x",
    "EXPLAIN SELECT * FROM outcomes",
    "EXPLAIN ANALYZE SELECT count(*) FROM changes",
    "PRAGMA table_info('outcomes')",
    "PRAGMA show_tables",
    "PRAGMA database_size",
    "SELECT * FROM pragma_table_info('changes')",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM range(3)",
    "SELECT * FROM information_schema.columns WHERE table_name = 'outcomes'",
    'SELECT "at", actor FROM config_audit',
    "SELECT unnest([1, 2, 3])",
    "SELECT * FROM outcomes o JOIN changes c USING (change_id) WHERE o.processed_at > now()",
]


@pytest.fixture(scope="module")
def parser() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


def test_enough_refusals_are_covered() -> None:
    assert len(REFUSED) >= 25


@pytest.mark.parametrize(("sql", "why"), REFUSED, ids=[r[0][:40] or "empty" for r in REFUSED])
def test_guard_refuses(parser: duckdb.DuckDBPyConnection, sql: str, why: str) -> None:
    with pytest.raises(SqlRefusedError) as info:
        check_read_only(sql, parser)
    assert why in info.value.reason
    assert str(info.value).startswith("refused: ")


@pytest.mark.parametrize("sql", ACCEPTED)
def test_guard_accepts(parser: duckdb.DuckDBPyConnection, sql: str) -> None:
    statement = check_read_only(sql, parser)
    assert statement.strip()


async def test_accepted_statements_run_against_the_store(store: Store) -> None:
    await store.archive_changes([change("c1")])
    await store.record_outcomes([outcome("c1")])
    for sql in ACCEPTED:
        result = await store.query(sql, max_rows=5)
        assert result.columns, sql


@pytest.mark.parametrize(("sql", "why"), REFUSED[:30])
async def test_store_refuses_before_running(store: Store, sql: str, why: str) -> None:
    with pytest.raises(SqlRefusedError, match="refused"):
        await store.query(sql)
    tables = await store.query("SELECT count(*) FROM duckdb_tables() WHERE NOT internal")
    assert tables.rows[0][0] >= 8


def test_syntax_errors_are_sql_errors_not_refusals(parser: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(SqlFailedError, match="syntax error"):
        check_read_only("SELEC 1", parser)


async def test_sql_errors_carry_duckdb_message(store: Store) -> None:
    with pytest.raises(SqlFailedError, match="nosuch"):
        await store.query("SELECT nosuch FROM changes")
    with pytest.raises(SqlFailedError, match="does not exist"):
        await store.query("SELECT * FROM no_such_table")


async def test_row_cap_and_column_metadata(store: Store) -> None:
    capped = await store.query("SELECT i, 'x' AS s FROM range(10) t(i) ORDER BY i", max_rows=3)
    assert capped.rows == ((0, "x"), (1, "x"), (2, "x"))
    assert capped.truncated
    assert [(c.name, c.type) for c in capped.columns] == [("i", "BIGINT"), ("s", "VARCHAR")]
    exact = await store.query("SELECT * FROM range(3)", max_rows=3)
    assert not exact.truncated and len(exact.rows) == 3
    huge = await store.query("SELECT * FROM range(10000000000)", max_rows=2)
    assert huge.rows == ((0,), (1,)) and huge.truncated
    with pytest.raises(ValueError, match="max_rows"):
        await store.query("SELECT 1", max_rows=0)


async def test_result_json_form(store: Store) -> None:
    await store.record_outcomes([outcome("c1")])
    result = await store.query(
        "SELECT processed_at, 1.5::DECIMAL(4,2) AS d, [1] AS l, INTERVAL 2 SECOND AS iv "
        "FROM outcomes"
    )
    body = result.to_json()
    assert body["rows"] == [["2026-11-28T12:00:02+00:00", "1.50", [1], 2.0]]
    assert body["columns"][0] == {"name": "processed_at", "type": "TIMESTAMP WITH TIME ZONE"}
    assert body["truncated"] is False
    assert json_value(b"\x00") == "AA=="


async def test_long_query_runs_off_the_event_loop_and_times_out(store: Store) -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    slow = asyncio.create_task(
        store.query("SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3", timeout_s=0.6)
    )
    await asyncio.sleep(0.1)
    # Writes go on beside the long read: the writer thread is not behind it.
    assert await store.archive_changes([change("during")]) == 1
    assert not slow.done()
    with pytest.raises(SqlFailedError, match="time limit"):
        await slow
    stop.set()
    await ticking
    # A query run on the loop would have frozen the ticker for the whole 0.6 s; a handful of
    # ticks is proof enough on a machine slowed by other work.
    assert ticks >= 5
    # The interrupted cursor left nothing behind: the next query works.
    follow = await store.query("SELECT count(*) FROM changes")
    assert follow.rows == ((1,),)


async def test_outer_layers_hold_even_without_the_guard(
    store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the statement checks switched off, the read-only transaction and the database's
    own settings still stop writes, file access and setting changes."""
    monkeypatch.setattr(readonly_sql, "check_read_only", lambda sql, parser: sql)
    target = tmp_path / "leak.csv"
    attempts = {
        "INSERT INTO change_log (change_id) VALUES ('x')": "read-only",
        "SELECT * FROM read_csv('/etc/passwd')": "disabled by configuration",
        f"COPY (SELECT 1) TO '{target}'": "disabled by configuration",
        "SELECT * FROM glob('/etc/*')": "disabled by configuration",
    }
    for sql, why in attempts.items():
        with pytest.raises(SqlFailedError, match=why):
            await store.query(sql)
    assert not target.exists()

    def set_option(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("SET enable_external_access = true")

    with pytest.raises(StoreReadError, match="locked"):
        await store._db.read(set_option)


def test_run_read_only_on_a_plain_connection_rolls_back(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "plain.duckdb"))
    con.execute("CREATE TABLE t AS SELECT range AS x FROM range(5000)")
    cursor = con.cursor()
    result = run_read_only(cursor, "SELECT x FROM t ORDER BY x", max_rows=2)
    assert result.rows == ((0,), (1,)) and result.truncated
    # Same cursor: the read-only transaction and the partly read result are gone.
    cursor.execute("INSERT INTO t VALUES (-1)")
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(5001,)]
    con.close()


async def test_timestamps_read_back_in_utc(store: Store) -> None:
    await store.record_outcomes([outcome("c1", processed_at=T0)])
    result = await store.query("SELECT processed_at, current_setting('TimeZone') FROM outcomes")
    assert result.rows[0][0] == T0
    assert result.rows[0][1] == "UTC"
