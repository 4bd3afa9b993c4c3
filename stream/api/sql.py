"""`POST /api/v1/sql`: one read-only statement over the analytics views.

Body `{"sql": "...", "max_rows": N}` (default 1000, at most 100000). Answer: `columns`
(name, type), `rows` (JSON values; timestamps ISO 8601), `row_count`, `truncated`,
`truncated_by` (`rows`, `bytes` or null), `elapsed_ms`.
A refused statement (a write, a file read, several statements …) is a 400 whose message says why;
a statement DuckDB rejects (syntax, unknown column, time limit) is a 400 with DuckDB's message.

Bounded work: a body over `MAX_BODY_BYTES` is a 413 and a statement over `MAX_SQL_CHARS` a 413,
neither parsed; at most `MAX_RUNNING` statements run at once on the store's operators' lane
(apart from the service's own readers), another is a 429 at once; each has `TIME_LIMIT_S`
(checking and reading the answer included); an answer stops at `MAX_ANSWER_BYTES`
(`truncated_by: "bytes"`), read as Arrow and converted a slice at a time so the cap stops the
work early; DuckDB's memory and temporary disk are capped (`SIGNAL_DB_MEMORY_LIMIT`,
`SIGNAL_DB_TEMP_LIMIT`). The statement runs, and its answer is encoded, off the event loop.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from config.validation import Problem
from stream.api.deps import deps_of
from stream.api.errors import json_error, problems_response
from stream.api.limits import busy, read_limited
from stream.store import SqlFailedError, SqlRefusedError
from stream.store.readonly_sql import MAX_ANSWER_BYTES, MAX_ROWS_LIMIT, MAX_SQL_CHARS

DEFAULT_MAX_ROWS = 1000
MAX_RUNNING = 2
TIME_LIMIT_S = 30.0
MAX_BODY_BYTES = 4 * MAX_SQL_CHARS + 4096
"""Room for a statement at the length cap with every character escaped in JSON."""

SQL_SLOTS: web.AppKey[asyncio.Semaphore] = web.AppKey("signal_sql_slots", asyncio.Semaphore)


async def post_sql(request: web.Request) -> web.Response:
    slots = request.app[SQL_SLOTS]
    if slots.locked():
        return _busy()
    raw = await read_limited(request, MAX_BODY_BYTES, what="a /sql request")
    body = _json_object(raw)
    if isinstance(body, web.Response):
        return body
    sql = body.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        return problems_response(422, [Problem("sql", "expected a SQL statement")])
    if len(sql) > MAX_SQL_CHARS:
        return problems_response(
            413,
            [
                Problem(
                    "sql",
                    f"the statement is {len(sql)} characters long; "
                    f"at most {MAX_SQL_CHARS} are allowed",
                )
            ],
        )
    max_rows = body.get("max_rows", DEFAULT_MAX_ROWS)
    if isinstance(max_rows, bool) or not isinstance(max_rows, int):
        return problems_response(422, [Problem("max_rows", "expected a whole number")])
    if not 1 <= max_rows <= MAX_ROWS_LIMIT:
        return problems_response(
            422, [Problem("max_rows", f"expected 1 to {MAX_ROWS_LIMIT}, got {max_rows}")]
        )
    if slots.locked():
        return _busy()
    async with slots:
        try:
            _, answer = await deps_of(request).store.operator_query(
                sql, max_rows=max_rows, timeout_s=TIME_LIMIT_S, max_bytes=MAX_ANSWER_BYTES
            )
        except SqlRefusedError as error:
            return problems_response(
                400, [Problem("sql", f"refused: {error.reason}")], refused=True
            )
        except SqlFailedError as error:
            return problems_response(400, [Problem("sql", str(error))], refused=False)
    return web.Response(body=answer, content_type="application/json", charset="utf-8")


def _busy() -> web.Response:
    return busy(
        f"{MAX_RUNNING} statements are running already; send this one again when one has finished",
        path="sql",
    )


def _json_object(raw: bytes) -> dict[str, object] | web.Response:
    if not raw.strip():
        return json_error(400, "expected a JSON body")
    try:
        body = json.loads(raw)
    except RecursionError:
        return json_error(400, "not JSON: nested too deeply")
    except (ValueError, UnicodeDecodeError) as error:
        return json_error(400, f"not JSON: {error}")
    if not isinstance(body, dict):
        return json_error(400, "expected a JSON object")
    return body


def add_routes(app: web.Application) -> None:
    app[SQL_SLOTS] = asyncio.Semaphore(MAX_RUNNING)
    app.router.add_post("/api/v1/sql", post_sql)
