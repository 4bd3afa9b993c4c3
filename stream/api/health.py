"""`GET /healthz` (no token): is control able to take changes and record outcomes?

200 when the store answers and the broker is reachable, 503 otherwise; the body says which, the
version, the newest configuration snapshot published, and when the last change was seen.

`connections` shows each Marketo connection's circuit breaker as the pipeline workers' heartbeats
report it (`stream.heartbeats`): `{"<id>": {"state": "closed"|"open"|"half_open", "since",
"retry_at", "failures"}}`, only for connections whose breaker a live worker holds (a connection a
worker has not called yet is not listed), null while control does not read the heartbeats. An
open breaker does not make control unhealthy: changes are still taken and recorded, the
connection's deliveries park. No reasons are shown here (no token is asked, and a failure's
words may name the instance's host).

Cheap and independent of everything else control does: the store is probed on a thread and
cursor of its own (not the readers `/sql`, metrics or the retry queue use), the broker check is
shared by requests that arrive while one runs, and each check gives up after `CHECK_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from stream.api.deps import deps_of

CHECK_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    deps = deps_of(request)
    store_ok = False
    with contextlib.suppress(Exception):
        store_ok = await deps.store.probe(CHECK_TIMEOUT_S)
    broker_ok: bool | None = None
    if deps.broker_ok is not None:
        broker_ok = await request.app[BROKER_CHECK].run(deps.broker_ok)
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
        "connections": _breakers(deps.connection_breakers),
    }
    return web.json_response(body, status=200 if ok else 503)


def _breakers(
    source: Callable[[], Mapping[str, Mapping[str, Any]] | None] | None,
) -> dict[str, dict[str, Any]] | None:
    """The connections' breakers, or None when nothing reports them."""
    if source is None:
        return None
    try:
        found = source()
    except Exception:
        return None
    if found is None:
        return None
    return {cid: dict(entry) for cid, entry in found.items()}


class SharedCheck:
    """One broker check at a time: a request arriving while one runs waits for its answer."""

    def __init__(self) -> None:
        self._running: asyncio.Future[bool] | None = None

    async def run(self, check: Callable[[], Awaitable[bool]]) -> bool:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(_bounded(check))
        return await asyncio.shield(self._running)


async def _bounded(check: Callable[[], Awaitable[bool]]) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return bool(await check())
    except Exception:
        return False


BROKER_CHECK: web.AppKey[SharedCheck] = web.AppKey("signal_health_broker_check", SharedCheck)


def add_routes(app: web.Application) -> None:
    app[BROKER_CHECK] = SharedCheck()
    app.router.add_get("/healthz", healthz)
