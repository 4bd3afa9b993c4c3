from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from stream.store import SqlFailedError, SqlRefusedError, Store, StoreReadError, readonly_sql
from stream.store.readonly_sql import check_read_only, json_value, run_read_only
from tests.store.conftest import T0, change, outcome
from tests.support.waiting import until

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


# -- bounded work (issue 11) ----------------------------------------------------------------


def test_an_over_long_statement_is_refused_before_it_is_parsed(
    parser: duckdb.DuckDBPyConnection,
) -> None:
    values = ",".join(str(i) for i in range(400_000))  # about 2.7 MB; the probe's was 23 MB
    sql = f"SELECT count(*) FROM range(10) t(i) WHERE i IN ({values})"
    started = time.perf_counter()
    with pytest.raises(SqlRefusedError, match="characters long; at most 100000") as refused:
        run_read_only(parser.cursor(), sql, max_rows=1, timeout_s=30)
    elapsed = time.perf_counter() - started
    print(f"{len(sql)} characters refused in {elapsed * 1000:.1f} ms")
    assert len(refused.value.statement) <= 200
    assert elapsed < 5.0  # the check alone took seconds per megabyte


def test_the_statement_check_counts_against_the_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An analysis that runs long (here: made to run a slow statement) is stopped by the
    statement's own time limit, instead of holding its thread before the limit starts."""
    real_check = readonly_sql._check_select

    def slow_check(text: str, parser: duckdb.DuckDBPyConnection) -> None:
        real_check(text, parser)
        parser.execute("SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3").fetchall()

    monkeypatch.setattr(readonly_sql, "_check_select", slow_check)
    con = duckdb.connect()
    cursor = con.cursor()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            run_read_only(cursor, "SELECT 1", max_rows=1, timeout_s=0.3)
            outcome.append(None)
        except BaseException as error:  # the test reads it below
            outcome.append(error)

    started = time.perf_counter()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    elapsed = time.perf_counter() - started
    if thread.is_alive():
        cursor.interrupt()
        thread.join(30)
        pytest.fail(f"the check ran on past the 0.3 s time limit ({elapsed:.1f} s)")
    print(f"stopped after {elapsed:.2f} s")
    assert isinstance(outcome[0], SqlFailedError), outcome
    assert "time limit" in str(outcome[0])
    con.close()


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT " + "[" * 700 + "1" + "]" * 700, "nested too deeply"),
        ("SELECT 1 FROM " + "(SELECT 1 FROM " * 700 + "range(1)" + ")" * 700, "nested too deeply"),
        ("SELECT '\udc80'", "not valid Unicode"),
    ],
    ids=["deep-list", "deep-subqueries", "lone-surrogate"],
)
def test_statements_the_checker_cannot_take_are_refused(
    parser: duckdb.DuckDBPyConnection, sql: str, why: str
) -> None:
    with pytest.raises(SqlRefusedError, match=why):
        run_read_only(parser.cursor(), sql, max_rows=1, timeout_s=30)


def test_the_answer_stops_at_its_byte_cap(parser: duckdb.DuckDBPyConnection) -> None:
    cap = 1_000_000
    started = time.perf_counter()
    result = run_read_only(
        parser.cursor(),
        "SELECT repeat(chr(34), 2000) AS quotes FROM range(100000)",
        max_rows=100_000,
        timeout_s=30,
        max_bytes=cap,
    )
    body = result.to_json_bytes()
    print(f"{len(result.rows)} rows, {len(body)} bytes in {time.perf_counter() - started:.2f} s")
    assert result.truncated and result.truncated_by == "bytes"
    assert 0 < len(result.rows) < 100_000
    assert len(body) <= cap + 1000
    answer = json.loads(body)
    assert (answer["truncated"], answer["truncated_by"]) == (True, "bytes")
    assert answer["rows"][0] == ['"' * 2000]


def test_the_row_cap_is_named_too(parser: duckdb.DuckDBPyConnection) -> None:
    result = run_read_only(
        parser.cursor(), "SELECT * FROM range(10)", max_rows=3, timeout_s=30, max_bytes=10_000
    )
    assert (len(result.rows), result.truncated_by) == (3, "rows")
    whole = run_read_only(
        parser.cursor(), "SELECT * FROM range(3)", max_rows=3, timeout_s=30, max_bytes=10_000
    )
    assert (len(whole.rows), whole.truncated, whole.truncated_by) == (3, False, None)


async def test_operator_statements_leave_the_readers_and_the_probe_free(store: Store) -> None:
    """Slow operator statements fill their own lane: the service's reads and the health probe
    still answer at once."""
    slow_sql = "SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3"
    slow = [
        asyncio.create_task(store.operator_query(slow_sql, max_rows=1, timeout_s=2.0))
        for _ in range(4)
    ]
    try:
        await until_started(store)
        started = time.perf_counter()
        assert await store.probe(timeout_s=2.0) is True
        probed = time.perf_counter() - started
        version = await asyncio.wait_for(store.schema_version(), 5.0)
        read = time.perf_counter() - started - probed
        print(f"probe {probed * 1000:.1f} ms, reader {read * 1000:.1f} ms beside 4 slow statements")
        assert version >= 1
        assert not all(task.done() for task in slow)
    finally:
        for task in slow:
            with contextlib.suppress(SqlFailedError):
                await task


async def until_started(store: Store) -> None:
    """Wait until the operators' lane is busy (both of its threads taken)."""

    async def busy() -> bool:
        running = store._db._lanes.operators._work_queue.qsize()
        return running >= 2

    await until(busy, within=10.0, what="the slow statements queued on the operators' lane")
