"""`GET /api/v1/sources`: how each configured Certain source is doing (read-only).

One item per source of the account, in its order: `id`, `name`, `account_code`, `state`
(`polling`, `backing off`, `stopped: unauthorized`, `stopped: no password`, `starting`,
`inactive`; `stream.metrics.certain_sources`), `last_poll_at`, `last_poll` (records, changes,
requests of the last completed poll), `newest_modified` and `lag_s` (now minus the newest
`dateModified` seen), `totals` since control started (polls, records, changes, rejected,
requests, errors), `last_error` with `last_error_at`, and `retry_at` while backing off.
Credentials never appear.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from stream.api.deps import deps_of


async def list_sources(request: web.Request) -> web.Response:
    provider = deps_of(request).certain_sources
    statuses = provider() if provider is not None else ()
    now = datetime.now(UTC)
    return web.json_response({"sources": [s.to_json(now) for s in statuses]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/sources", list_sources)
