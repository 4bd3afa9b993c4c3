"""`POST /api/v1/sql`: one read-only statement over the analytics views.

Body `{"sql": "...", "max_rows": N}` (default 1000, at most 100000). Answer: `columns`
(name, type), `rows` (JSON values; timestamps ISO 8601), `row_count`, `truncated`, `elapsed_ms`.
A refused statement (a write, a file read, several statements …) is a 400 whose message says why;
a statement DuckDB rejects (syntax, unknown column, time limit) is a 400 with DuckDB's message.
"""

from __future__ import annotations

from aiohttp import web

from config.validation import Problem
from stream.api.deps import deps_of
from stream.api.errors import json_object, problems_response
from stream.store import SqlFailedError, SqlRefusedError
from stream.store.readonly_sql import MAX_ROWS_LIMIT

DEFAULT_MAX_ROWS = 1000


async def post_sql(request: web.Request) -> web.Response:
    body = await json_object(request)
    sql = body.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        return problems_response(422, [Problem("sql", "expected a SQL statement")])
    max_rows = body.get("max_rows", DEFAULT_MAX_ROWS)
    if isinstance(max_rows, bool) or not isinstance(max_rows, int):
        return problems_response(422, [Problem("max_rows", "expected a whole number")])
    if not 1 <= max_rows <= MAX_ROWS_LIMIT:
        return problems_response(
            422, [Problem("max_rows", f"expected 1 to {MAX_ROWS_LIMIT}, got {max_rows}")]
        )
    try:
        result = await deps_of(request).store.query(sql, max_rows=max_rows)
    except SqlRefusedError as error:
        return problems_response(400, [Problem("sql", f"refused: {error.reason}")], refused=True)
    except SqlFailedError as error:
        return problems_response(400, [Problem("sql", str(error))], refused=False)
    return web.json_response(result.to_json())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/sql", post_sql)
