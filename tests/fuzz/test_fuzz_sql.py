"""Fuzzing `POST /api/v1/sql` on a real control process: statements put together from SQL's
sharp edges (writes, DDL, COPY, ATTACH, INSTALL/LOAD, file readers, PRAGMA/SET/CALL, several
statements, comments and quotes), the analytics views, random text and non-UTF-8 bodies. The
endpoint never writes (the ledger's counts and the data dir's files stay as they were), never
answers 500, and its answers stay within their byte cap."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.store.readonly_sql import MAX_ANSWER_BYTES
from tests.fuzz.fuzz_support import call, fuzz, sql_scalar
from tests.support.changes import registration_json
from tests.support.processes import ControlProcess

pytestmark = pytest.mark.integration

VIEWS = [
    "changes", "outcomes", "retry_queue", "api_calls", "config_audit", "rejected_changes",
    "change_log", "duckdb_tables()", "information_schema.tables", "range(50)", "sqlite_master",
]  # fmt: skip
WORDS = [
    "SELECT", "*", "FROM", "WHERE", "1=1", "LIMIT 5", "ORDER BY 1", "GROUP BY 1", "count(*)",
    "UNION ALL", "JOIN", "ON", "AS", "WITH", "x", "(", ")", ",", ";", "--", "/*", "*/", "'", '"',
    "$$", "INSERT INTO", "VALUES (1)", "DELETE FROM", "UPDATE", "SET a = 1", "DROP TABLE",
    "DROP VIEW", "CREATE TABLE t AS", "CREATE MACRO m() AS 1", "ALTER TABLE", "TRUNCATE",
    "COPY", "TO 'out.csv'", "EXPORT DATABASE 'dump'", "IMPORT DATABASE 'dump'",
    "ATTACH 'other.db' AS o", "DETACH", "INSTALL httpfs", "LOAD httpfs", "PRAGMA",
    "database_list", "CALL", "checkpoint", "SET memory_limit='1GB'", "RESET", "BEGIN",
    "COMMIT", "ROLLBACK", "VACUUM", "read_csv('/etc/passwd')", "read_text('api-token')",
    "glob('*')", "getenv('HOME')", "current_setting('threads')", "repeat('x', 1000)",
    "string_agg(payload::VARCHAR, '')", "nextval('s')", "setseed(0.5)", "random()",
    "now()", "'\\u0000'", "chr(0)", "\\x00", "\\ud800", "☃", "\u202e",
]  # fmt: skip

fragments = st.sampled_from(WORDS) | st.sampled_from(VIEWS) | st.text(max_size=8)
statements = st.one_of(
    st.lists(fragments, min_size=1, max_size=14).map(" ".join),
    st.tuples(st.sampled_from(WORDS), st.sampled_from(VIEWS), st.integers(0, 1000)).map(
        lambda t: f"SELECT {t[0]} FROM {t[1]} LIMIT {t[2]}"
    ),
    st.text(max_size=60),
)


def _counts(control: ControlProcess) -> tuple[int, int, int]:
    return (
        int(sql_scalar(control, "SELECT count(*) FROM changes")),
        int(sql_scalar(control, "SELECT count(*) FROM rejected_changes")),
        int(sql_scalar(control, "SELECT count(*) FROM config_audit")),
    )


def _files(data_dir: Path) -> set[str]:
    """The data dir's files, but for the ledger's own WAL coming and going."""
    return {
        str(Path(root, name).relative_to(data_dir))
        for root, _, names in os.walk(data_dir)
        for name in names
        if not name.endswith(".wal")
    }


@pytest.fixture(scope="module")
def seeded(fuzz_control: ControlProcess) -> tuple[int, int, int]:
    items = [registration_json(f"sql-{i}", code=f"S{i}") for i in range(5)] + [{"bad": 1}]
    answer = call(fuzz_control, "POST", "/api/v1/changes", json.dumps(items).encode())
    assert answer.status == 207, answer.body[:300]
    return _counts(fuzz_control)


def _check(control: ControlProcess, body: bytes, baseline: tuple[int, int, int]) -> None:
    files = _files(control.data_dir)
    answer = call(control, "POST", "/api/v1/sql", body)
    assert answer.status in (200, 400, 413, 422), answer.body[:500]
    assert len(answer.body) <= MAX_ANSWER_BYTES + 64 * 1024
    if answer.status == 200:
        reply = answer.json()
        assert {"columns", "rows", "truncated"} <= set(reply)
    else:
        assert answer.json()["errors"]
    assert _counts(control) == baseline, answer.body[:500]
    assert _files(control.data_dir) == files


@fuzz
@given(sql=statements)
def test_random_statements_never_write_or_crash(
    fuzz_control: ControlProcess, seeded: tuple[int, int, int], sql: str
) -> None:
    body = json.dumps({"sql": sql, "max_rows": 100}).encode()
    _check(fuzz_control, body, seeded)


@fuzz
@given(
    raw=st.binary(max_size=200)
    | st.builds(lambda s: b'{"sql": "' + s + b'"}', st.binary(max_size=60))
    | st.recursive(st.just(b"1"), lambda inner: inner.map(lambda b: b"[" + b + b"]"), max_leaves=3)
)
def test_unreadable_bodies_are_400s(
    fuzz_control: ControlProcess, seeded: tuple[int, int, int], raw: bytes
) -> None:
    _check(fuzz_control, raw, seeded)
