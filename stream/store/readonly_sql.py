"""The operator `/sql` guard: one read statement; nothing that writes, reads files or sets options.

Layers, outermost first:
1. DuckDB's own parser splits the text (`extract_statements`), so a second statement hidden
   behind a comment or a string is seen exactly as DuckDB would run it. Exactly one statement.
2. Its statement type must be a read: SELECT (which also covers WITH, VALUES, FROM-first,
   DESCRIBE, SHOW and SUMMARIZE), EXPLAIN of such a read, or a PRAGMA from a short list of
   catalogue reads. Everything else (INSERT, COPY, ATTACH, INSTALL/LOAD, SET, CALL, EXPORT,
   CREATE SECRET …) is refused by type.
3. SELECTs are serialised to DuckDB's JSON syntax tree (`json_serialize_sql`) and walked:
   table functions must be on an allow-list (so `read_csv`, `glob`, `read_text`, `query` …
   are refused), table names that look like file paths (`FROM '/etc/passwd'`) are refused, and
   data-modifying CTEs are refused.
4. The accepted statement runs in `BEGIN TRANSACTION READ ONLY` on a database opened with
   `enable_external_access=false` and a locked configuration (see `writer.py`), so even a gap in
   the checks above can neither write nor touch the file system.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any
from uuid import UUID

import duckdb

from stream.store.errors import SqlFailedError, SqlRefusedError

ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "json_each",
        "json_tree",
        "duckdb_tables",
        "duckdb_views",
        "duckdb_columns",
        "duckdb_schemas",
        "duckdb_databases",
        "duckdb_constraints",
        "duckdb_indexes",
        "duckdb_types",
        "duckdb_functions",
        "duckdb_keywords",
        "duckdb_settings",
        "duckdb_sequences",
        "duckdb_dependencies",
        "duckdb_memory",
        "pragma_table_info",
        "pragma_show",
        "pragma_version",
        "pragma_database_size",
        "pragma_storage_info",
        "pragma_platform",
        "pragma_database_list",
    }
)
"""Table functions that only read the catalogue or generate values; everything else is refused."""

ALLOWED_PRAGMAS = frozenset(
    {
        "table_info",
        "show",
        "show_tables",
        "show_tables_expanded",
        "show_databases",
        "database_list",
        "database_size",
        "storage_info",
        "version",
        "platform",
        "functions",
        "collations",
    }
)

DENIED_SCALAR_FUNCTIONS = frozenset({"nextval"})

_TYPE_REASONS: dict[str, str] = {
    "INSERT": "INSERT writes data",
    "UPDATE": "UPDATE writes data",
    "DELETE": "DELETE writes data",
    "MERGE_INTO": "MERGE writes data",
    "CREATE": "CREATE changes the schema (or creates secrets)",
    "DROP": "DROP changes the schema",
    "ALTER": "ALTER changes the schema",
    "COPY": "COPY reads or writes files",
    "COPY_DATABASE": "COPY DATABASE reads or writes files",
    "EXPORT": "EXPORT DATABASE writes files",
    "ATTACH": "ATTACH opens another database",
    "DETACH": "DETACH changes attached databases",
    "LOAD": "INSTALL/LOAD adds extensions",
    "SET": "SET/RESET/USE (or a PRAGMA assignment) changes settings",
    "VARIABLE_SET": "SET VARIABLE changes session state",
    "CALL": "CALL runs a procedure (CHECKPOINT included)",
    "TRANSACTION": "transaction control is managed by the server",
    "PREPARE": "PREPARE is not supported here",
    "EXECUTE": "EXECUTE is not supported here",
    "VACUUM": "VACUUM/ANALYZE maintains storage",
    "MULTI": "this statement expands into several statements (e.g. PIVOT without IN list)",
    "UPDATE_EXTENSIONS": "UPDATE EXTENSIONS installs code",
    "LOGICAL_PLAN": "logical plans are not supported",
    "RELATION": "relations are not supported",
    "EXTENSION": "extension statements are not supported",
    "UNKNOWN": "a statement of a kind the guard does not know (e.g. UPDATE EXTENSIONS)",
}

_PATH_CHARS = frozenset("/\\.:*?~")
_LEADING_NOISE = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.DOTALL)
_EXPLAIN = re.compile(r"\AEXPLAIN\b(\s+ANALYZE\b)?", re.IGNORECASE)
_PRAGMA_NAME = re.compile(r"\APRAGMA\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)
_DATA_NODE = re.compile(r"_QUERY_NODE\Z")

MAX_ROWS_LIMIT = 100_000


def _strip_leading_noise(text: str) -> str:
    return _LEADING_NOISE.sub("", text, count=1)


def _preview(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _parse(parser: duckdb.DuckDBPyConnection, sql: str) -> list[duckdb.Statement]:
    try:
        return list(parser.extract_statements(sql))
    except duckdb.Error as exc:
        raise SqlFailedError(str(exc)) from exc


def _kind(statement: duckdb.Statement) -> str:
    try:
        return statement.type.name
    except ValueError:
        # The Python binding raises ValueError for statement types it has no enum member
        # for (UPDATE EXTENSIONS in 2.0.1); a kind the guard cannot name is never a read.
        return "UNKNOWN"


def check_read_only(sql: str, parser: duckdb.DuckDBPyConnection) -> str:
    """Return the single statement to run, or raise `SqlRefusedError` saying what and why.

    `parser` is any DuckDB connection; it is used only to parse, never to run the statement.
    """
    statements = _parse(parser, sql)
    if not statements:
        raise SqlRefusedError("no statement given", sql)
    if len(statements) > 1:
        kinds = ", ".join(_kind(s) for s in statements)
        raise SqlRefusedError(
            f"exactly one statement is allowed, found {len(statements)} ({kinds})", sql
        )
    statement = statements[0]
    _check_statement(statement, parser)
    return statement.query


def _check_statement(statement: duckdb.Statement, parser: duckdb.DuckDBPyConnection) -> None:
    kind = _kind(statement)
    text = statement.query
    if kind == "SELECT":
        _check_select(text, parser)
    elif kind == "EXPLAIN":
        _check_explain(text, parser)
    elif kind == "PRAGMA":
        _check_pragma(text)
    else:
        why = _TYPE_REASONS.get(kind, f"{kind} statements are not reads")
        raise SqlRefusedError(
            f"{kind} statement: {why}; only SELECT, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, "
            "EXPLAIN and catalogue PRAGMAs are allowed",
            text,
        )


def _check_explain(text: str, parser: duckdb.DuckDBPyConnection) -> None:
    body = _strip_leading_noise(text)
    match = _EXPLAIN.match(body)
    if match is None:
        raise SqlRefusedError("EXPLAIN could not be analysed", text)
    inner = body[match.end() :]
    if _strip_leading_noise(inner).startswith("("):
        raise SqlRefusedError("EXPLAIN options in parentheses are not supported", text)
    statements = _parse(parser, inner)
    if len(statements) != 1 or _kind(statements[0]) != "SELECT":
        raise SqlRefusedError("EXPLAIN is allowed only for a single read (SELECT) statement", text)
    _check_select(statements[0].query, parser)


def _check_pragma(text: str) -> None:
    body = _strip_leading_noise(text)
    match = _PRAGMA_NAME.match(body)
    if match is None:
        # IMPORT DATABASE and COPY FROM DATABASE parse as pragmas; name them as written.
        words = " ".join(body.split()[:3]).upper()
        raise SqlRefusedError(f"{words} is not a read (it runs as a PRAGMA that writes)", text)
    name = match.group(1).lower()
    if name not in ALLOWED_PRAGMAS:
        raise SqlRefusedError(
            f"PRAGMA {name} is not a catalogue read; allowed: {', '.join(sorted(ALLOWED_PRAGMAS))}",
            text,
        )


def _check_select(text: str, parser: duckdb.DuckDBPyConnection) -> None:
    rows = parser.execute("SELECT json_serialize_sql(?::VARCHAR)", [text]).fetchall()
    tree = json.loads(rows[0][0]) if rows else {"error": True}
    if tree.get("error"):
        message = tree.get("error_message", "unknown reason")
        if tree.get("error_type") == "parser":
            raise SqlFailedError(f"Parser Error: {message}")
        raise SqlRefusedError(f"the statement could not be analysed ({message})", text)
    problems: list[str] = []
    _walk(tree.get("statements", []), problems)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise SqlRefusedError("; ".join(unique), text)


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        return name[1:-1]
    return name


def _walk(node: Any, problems: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, problems)
        return
    if not isinstance(node, dict):
        return
    node_type = node.get("type")
    if node_type == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower()
        if name not in ALLOWED_TABLE_FUNCTIONS:
            problems.append(
                f"table function {name}() is not allowed (it may read files or run other SQL)"
            )
    elif node_type in ("BASE_TABLE", "SHOW_REF"):
        name = _unquote(str(node.get("table_name", "")))
        if any(ch in _PATH_CHARS for ch in name):
            problems.append(f"'{name}' looks like a file path; reading files is not allowed")
    elif isinstance(node_type, str) and _DATA_NODE.search(node_type):
        verb = node_type.removesuffix("_QUERY_NODE")
        problems.append(f"{verb} inside a query writes data")
    if node.get("class") == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if name in DENIED_SCALAR_FUNCTIONS:
            problems.append(f"function {name}() changes database state")
    for value in node.values():
        if isinstance(value, dict | list):
            _walk(value, problems)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of an operator query, capped; `truncated` says more rows were available."""

    statement: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool
    elapsed_ms: float

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for the operator API and `csignal sql --format json`."""
        return {
            "columns": [{"name": c.name, "type": c.type} for c in self.columns],
            "rows": [[json_value(v) for v in row] for row in self.rows],
            "row_count": len(self.rows),
            "truncated": self.truncated,
            "elapsed_ms": round(self.elapsed_ms, 3),
        }


def json_value(value: Any) -> Any:
    """Map DuckDB result values onto JSON types (timestamps as ISO 8601 with offset)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def _rollback(cursor: duckdb.DuckDBPyConnection) -> None:
    # A capped result is left partly read; drop it before ending the transaction. The cursor
    # is discarded after one query, so a failed rollback leaks nothing either.
    with contextlib.suppress(duckdb.Error):
        cursor.abort()
    with contextlib.suppress(duckdb.Error):
        cursor.execute("ROLLBACK")


def run_read_only(
    cursor: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    max_rows: int,
    timeout_s: float | None = None,
) -> QueryResult:
    """Check `sql`, then run it in a read-only transaction on `cursor` (blocking).

    A timeout interrupts the cursor rather than abandoning the thread, so a runaway query
    frees its DuckDB worker threads too.
    """
    if not 1 <= max_rows <= MAX_ROWS_LIMIT:
        raise ValueError(f"max_rows must be between 1 and {MAX_ROWS_LIMIT}, got {max_rows}")
    statement = check_read_only(sql, cursor)
    timer: threading.Timer | None = None
    timed_out = threading.Event()
    if timeout_s is not None:

        def interrupt() -> None:
            timed_out.set()
            cursor.interrupt()

        timer = threading.Timer(timeout_s, interrupt)
        timer.daemon = True
    started = time.perf_counter()
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    try:
        if timer is not None:
            timer.start()
        cursor.execute(statement)
        description = cursor.description or []
        fetched = cursor.fetchmany(max_rows + 1)
    except duckdb.Error as exc:
        if timed_out.is_set():
            raise SqlFailedError(f"query stopped after the {timeout_s:g} s time limit") from exc
        raise SqlFailedError(str(exc)) from exc
    finally:
        if timer is not None:
            timer.cancel()
        _rollback(cursor)
    elapsed_ms = (time.perf_counter() - started) * 1000
    columns = tuple(Column(str(d[0]), str(d[1])) for d in description)
    return QueryResult(
        statement=_preview(statement, 200),
        columns=columns,
        rows=tuple(tuple(r) for r in fetched[:max_rows]),
        truncated=len(fetched) > max_rows,
        elapsed_ms=elapsed_ms,
    )
