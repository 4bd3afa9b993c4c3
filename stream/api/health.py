"""`GET /healthz` (no token): is control able to take changes and record outcomes?

200 when the store answers and the broker is reachable, 503 otherwise; the body says which, the
version, the newest configuration snapshot published, and when the last change was seen.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from stream.api.deps import deps_of

CHECK_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    deps = deps_of(request)
    store_ok = False
    with contextlib.suppress(Exception):
        await asyncio.wait_for(deps.store.schema_version(), CHECK_TIMEOUT_S)
        store_ok = True
    broker_ok: bool | None = None
    if deps.broker_ok is not None:
        broker_ok = False
        with contextlib.suppress(Exception):
            broker_ok = await asyncio.wait_for(deps.broker_ok(), CHECK_TIMEOUT_S)
    seen = deps.last_change_seen() if deps.last_change_seen is not None else None
    published = deps.config.published
    ok = store_ok and broker_ok is not False
    body = {
        "ok": ok,
        "version": deps.version,
        "store": store_ok,
        "broker": broker_ok,
        "last_change_seen": seen.isoformat() if seen else None,
        "config_version": published.version if published else None,
    }
    return web.json_response(body, status=200 if ok else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
