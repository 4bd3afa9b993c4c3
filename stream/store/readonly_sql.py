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

Every statement's work is bounded: its length (`MAX_SQL_CHARS`, refused before parsing), its
time (the limit covers the checks above as well as the run; DuckDB work is interrupted), its
rows (`max_rows`) and, for the operator API, the bytes of its JSON answer (`max_bytes`: rows
past it are left out and the answer says `truncated`, `truncated_by: "bytes"`).
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
import pyarrow as pa  # type: ignore[import-untyped]

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
MAX_SQL_CHARS = 100_000
"""Longer statements are refused before parsing (a 23 MB `IN (…)` list took minutes to check)."""
MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""The operator API's cap on the rows of one JSON answer; more is a mistake or an attack."""
_FETCH_CHUNK = 256
_ARROW_BATCH_ROWS = 2048
_CONVERT_ROWS = 256
_ARROW_PER_JSON = 4
"""A value's Arrow form is at most this many times its JSON text (a BIGINT is 8 bytes in Arrow,
at least 2 in JSON): a slice bigger than that many times the bytes left cannot fit the answer."""


def _strip_leading_noise(text: str) -> str:
    return _LEADING_NOISE.sub("", text, count=1)


def _preview(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _check_text(sql: str) -> None:
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError as error:
        raise SqlRefusedError(
            f"the statement is not valid Unicode text (character {error.start} is a lone "
            "surrogate)",
            _preview(sql.encode("utf-8", "backslashreplace").decode("ascii", "replace"), 200),
        ) from None


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
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRefusedError(
            f"the statement is {len(sql)} characters long; at most {MAX_SQL_CHARS} are allowed",
            _preview(sql, 200),
        )
    _check_text(sql)
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
    try:
        tree = json.loads(rows[0][0]) if rows else {"error": True}
    except RecursionError:
        raise SqlRefusedError("the statement is nested too deeply to be checked", text) from None
    if tree.get("error"):
        message = tree.get("error_message", "unknown reason")
        if tree.get("error_type") == "parser":
            raise SqlFailedError(f"Parser Error: {message}")
        raise SqlRefusedError(f"the statement could not be analysed ({message})", text)
    problems: list[str] = []
    try:
        _walk(tree.get("statements", []), problems)
    except RecursionError:
        raise SqlRefusedError("the statement is nested too deeply to be checked", text) from None
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
    """Rows of an operator query, capped; `truncated` says more rows were available.

    `truncated_by` names the cap that cut the answer: `rows` (`max_rows`) or `bytes` (the
    answer-size cap of the operator API); None when nothing was left out.
    """

    statement: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool
    elapsed_ms: float
    truncated_by: str | None = None

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
            "truncated_by": self.truncated_by,
            "elapsed_ms": round(self.elapsed_ms, 3),
        }

    def to_json_bytes(self) -> bytes:
        """The JSON answer, encoded (blocking: run it off the event loop)."""
        return json.dumps(self.to_json(), ensure_ascii=False).encode("utf-8", "backslashreplace")


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


def _json_size(row: tuple[Any, ...]) -> int:
    """About how many bytes `row` takes in the JSON answer (exact for ASCII text)."""
    return len(json.dumps([json_value(v) for v in row], ensure_ascii=False)) + 1


def _rollback(cursor: duckdb.DuckDBPyConnection) -> None:
    # A capped result is left partly read; drop it before ending the transaction. The cursor
    # is discarded after one query, so a failed rollback leaks nothing either.
    with contextlib.suppress(duckdb.Error):
        cursor.abort()
    with contextlib.suppress(duckdb.Error):
        cursor.execute("ROLLBACK")


class _TimeLimit:
    """Interrupts `cursor` once `timeout_s` has passed; `expired` says whether it did."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self._expired = threading.Event()
        self._timer: threading.Timer | None = None
        if timeout_s is not None:

            def interrupt() -> None:
                self._expired.set()
                cursor.interrupt()

            self._timer = threading.Timer(timeout_s, interrupt)
            self._timer.daemon = True

    @property
    def expired(self) -> bool:
        return self._expired.is_set()

    def error(self) -> SqlFailedError:
        return SqlFailedError(f"query stopped after the {self.timeout_s:g} s time limit")

    def check(self) -> None:
        """Raise the time-limit error when the limit passed while no DuckDB call ran (an
        interrupt outside a running statement is lost)."""
        if self.expired:
            raise self.error()

    def __enter__(self) -> _TimeLimit:
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()


def run_read_only(
    cursor: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    max_rows: int,
    timeout_s: float | None = None,
    max_bytes: int | None = None,
) -> QueryResult:
    """Check `sql`, then run it in a read-only transaction on `cursor` (blocking).

    The time limit covers the check too. A timeout interrupts the cursor rather than
    abandoning the thread, so a runaway query frees its DuckDB worker threads too. With
    `max_bytes`, rows are taken only while their JSON stays within it.
    """
    if not 1 <= max_rows <= MAX_ROWS_LIMIT:
        raise ValueError(f"max_rows must be between 1 and {MAX_ROWS_LIMIT}, got {max_rows}")
    started = time.perf_counter()
    limit = _TimeLimit(cursor, timeout_s)
    with limit:
        try:
            statement = check_read_only(sql, cursor)
            limit.check()
            cursor.execute("BEGIN TRANSACTION READ ONLY")
        except duckdb.Error as exc:
            if limit.expired:
                raise limit.error() from exc
            raise SqlFailedError(str(exc)) from exc
        try:
            limit.check()
            if max_bytes is None:
                cursor.execute(statement)
                description = [(str(d[0]), str(d[1])) for d in cursor.description or []]
                rows, truncated_by = _fetch(cursor, max_rows, None, limit)
            else:
                description, rows, truncated_by = _fetch_bounded(
                    cursor, statement, max_rows, max_bytes, limit
                )
        except duckdb.Error as exc:
            if limit.expired:
                raise limit.error() from exc
            raise SqlFailedError(_failure(exc)) from exc
        finally:
            _rollback(cursor)
    elapsed_ms = (time.perf_counter() - started) * 1000
    columns = tuple(Column(name, kind) for name, kind in description)
    return QueryResult(
        statement=_preview(statement, 200),
        columns=columns,
        rows=rows,
        truncated=truncated_by is not None,
        elapsed_ms=elapsed_ms,
        truncated_by=truncated_by,
    )


def _failure(error: duckdb.Error) -> str:
    """DuckDB's message; for a statement past the memory or temporary-disk limit, its first line
    and which settings set those limits (DuckDB's own advice, SET memory_limit, is refused)."""
    text = str(error)
    if isinstance(error, duckdb.OutOfMemoryException) or "max_temp_directory_size" in text:
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        return (
            f"{first} — the statement needs more than control's database may use "
            "(SIGNAL_DB_MEMORY_LIMIT of memory, SIGNAL_DB_TEMP_LIMIT of temporary disk); "
            "narrow it (a WHERE, fewer columns, a LIMIT)"
        )
    return text


def _fetch_bounded(
    cursor: duckdb.DuckDBPyConnection,
    statement: str,
    max_rows: int,
    max_bytes: int,
    limit: _TimeLimit,
) -> tuple[list[tuple[str, str]], tuple[tuple[Any, ...], ...], str | None]:
    """The answer's columns and rows within `max_rows` and `max_bytes`, read without ever
    holding the GIL for long: DuckDB streams the result as Arrow batches (built without the
    GIL, and interrupted by the time limit), and rows become Python values only a slice of
    `_CONVERT_ROWS` at a time, each slice's Arrow size checked first. A value far too big for
    the answer (one list of a million strings) is never turned into Python objects at all;
    the time limit is checked between slices."""
    relation = cursor.sql(statement)
    if relation is None:
        return [], (), None
    description = [(str(n), str(t)) for n, t in zip(relation.columns, relation.types, strict=True)]
    reader = relation.to_arrow_reader(_ARROW_BATCH_ROWS)
    converter = cursor.cursor()
    taken: list[tuple[Any, ...]] = []
    size = 0
    try:
        while True:
            limit.check()
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return description, tuple(taken), None
            start = 0
            while start < batch.num_rows:
                limit.check()
                if len(taken) == max_rows:
                    return description, tuple(taken), "rows"
                piece = batch.slice(start, min(_CONVERT_ROWS, max_rows - len(taken)))
                while piece.num_rows > 1 and piece.nbytes > _ARROW_PER_JSON * (max_bytes - size):
                    piece = piece.slice(0, piece.num_rows // 2)
                if piece.nbytes > _ARROW_PER_JSON * (max_bytes - size):
                    return description, tuple(taken), "bytes"
                start += piece.num_rows
                for row in converter.from_arrow(pa.Table.from_batches([piece])).fetchall():
                    size += _json_size(tuple(row))
                    if size > max_bytes:
                        return description, tuple(taken), "bytes"
                    taken.append(tuple(row))
    finally:
        with contextlib.suppress(duckdb.Error):
            converter.close()
        reader.close()


def _fetch(
    cursor: duckdb.DuckDBPyConnection, max_rows: int, max_bytes: int | None, limit: _TimeLimit
) -> tuple[tuple[tuple[Any, ...], ...], str | None]:
    if max_bytes is None:
        fetched = cursor.fetchmany(max_rows + 1)
        rows = tuple(tuple(r) for r in fetched[:max_rows])
        return rows, "rows" if len(fetched) > max_rows else None
    taken: list[tuple[Any, ...]] = []
    size = 0
    while True:
        limit.check()
        chunk = cursor.fetchmany(min(_FETCH_CHUNK, max_rows + 1 - len(taken)))
        if not chunk:
            return tuple(taken), None
        for row in chunk:
            if len(taken) == max_rows:
                return tuple(taken), "rows"
            size += _json_size(tuple(row))
            if size > max_bytes:
                return tuple(taken), "bytes"
            taken.append(tuple(row))
