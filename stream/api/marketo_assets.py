"""What a connection's Marketo instance offers a flow's destination, for the console's pickers:
trigger campaigns, forms, programs, and a program's channel statuses (its status names).

    GET /api/v1/connections/{connection_id}/marketo/campaigns
    GET /api/v1/connections/{connection_id}/marketo/forms
    GET /api/v1/connections/{connection_id}/marketo/programs
    GET /api/v1/connections/{connection_id}/marketo/programs/{program_id}/statuses

Each answer is `{"connection_id", "kind", "items": [{"id"?, "name", "detail"}], "truncated",
"age_s"}`. A hostile or careless caller cannot make one request cost much: a list reads at
most `MAX_PAGES` pages (`truncated` says when more were left), answers are cached per
connection and kind for `CACHE_S` seconds (and a request arriving while the same list is being
read waits for that read instead of starting another), and the read ends after `TIMEOUT_S`.
Marketo's refusal or absence is a 502 naming what went wrong (`explain`), so the console can
keep the field typeable and say why the list is missing. Every call is recorded as a
connection test's are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from stream.api.connections import _call_recorder
from stream.api.deps import deps_of
from stream.api.errors import json_error
from stream.marketo.client import MarketoClient
from stream.marketo.connection_test import explain
from stream.marketo.errors import MarketoError

MAX_PAGES = 6
"""Pages read per list: 6 × 200 assets, or 6 × the batch size of campaigns."""
MAX_ITEMS = 1000
"""Items answered; `truncated` says when Marketo had more."""
CACHE_S = 30.0
TIMEOUT_S = 30.0
MAX_LOCKS = 256

Items = list[dict[str, Any]]
Reader = Callable[[MarketoClient], Awaitable[Items]]


@dataclass
class Cached:
    at: float
    items: Items
    truncated: bool


CACHE: web.AppKey[dict[tuple[str, ...], Cached]] = web.AppKey("marketo_asset_cache", dict)
LOCKS: web.AppKey[dict[tuple[str, ...], asyncio.Lock]] = web.AppKey("marketo_asset_locks", dict)


async def _campaigns(client: MarketoClient) -> Items:
    found = await client.list_campaigns(triggerable_only=True, max_pages=MAX_PAGES)
    return [
        {"id": c.id, "name": c.name, "detail": c.program_name or "", "active": c.active}
        for c in found
    ]


async def _forms(client: MarketoClient) -> Items:
    found = await client.list_forms(max_pages=MAX_PAGES)
    return [{"id": f.id, "name": f.name, "detail": f.status or ""} for f in found]


async def _programs(client: MarketoClient) -> Items:
    found = await client.list_programs(max_pages=MAX_PAGES)
    return [
        {"id": p.id, "name": p.name, "detail": p.channel or "", "channel": p.channel} for p in found
    ]


def _statuses(program_id: int) -> Reader:
    async def read(client: MarketoClient) -> Items:
        found = await client.program_statuses(program_id, max_pages=MAX_PAGES)
        return [
            {
                "name": s.name,
                "step": s.step,
                "success": s.success,
                "detail": f"step {s.step}" + (" · success" if s.success else ""),
            }
            for s in found
        ]

    return read


async def _answer(request: web.Request, kind: str, key: tuple[str, ...], read: Reader) -> Any:
    deps = deps_of(request)
    connection_id = request.match_info["connection_id"]
    settings = deps.config.marketo_settings(connection_id, **deps.connection_test_settings)
    cache_key = (connection_id, settings.base_url, settings.client_id, *key)
    cache = request.app[CACHE]
    locks = request.app[LOCKS]
    if len(locks) > MAX_LOCKS:  # many program ids asked for: forget the idle ones
        for idle in [k for k, v in locks.items() if not v.locked()]:
            del locks[idle]
    lock = locks.setdefault(cache_key, asyncio.Lock())
    async with lock:
        hit = cache.get(cache_key)
        now = time.monotonic()
        if hit is None or now - hit.at > CACHE_S:
            async with MarketoClient(settings, on_call=_call_recorder(deps)) as client:
                try:
                    async with asyncio.timeout(TIMEOUT_S):
                        items = await read(client)
                except MarketoError as error:
                    message = explain(error.failure, settings.base_url, f"list {kind}")
                    return json_error(502, message, code=error.failure.code)
                except TimeoutError:
                    return json_error(
                        504, f"Marketo did not list the {kind} within {TIMEOUT_S:.0f} s"
                    )
            for stale in [k for k, v in cache.items() if now - v.at > CACHE_S]:
                del cache[stale]
            hit = Cached(now, items[:MAX_ITEMS], len(items) > MAX_ITEMS)
            cache[cache_key] = hit
    return web.json_response(
        {
            "connection_id": connection_id,
            "kind": kind,
            "items": hit.items,
            "truncated": hit.truncated,
            "age_s": round(time.monotonic() - hit.at, 1),
        }
    )


async def campaigns(request: web.Request) -> Any:
    return await _answer(request, "campaigns", ("campaigns",), _campaigns)


async def forms(request: web.Request) -> Any:
    return await _answer(request, "forms", ("forms",), _forms)


async def programs(request: web.Request) -> Any:
    return await _answer(request, "programs", ("programs",), _programs)


async def program_statuses(request: web.Request) -> Any:
    text = request.match_info["program_id"]
    if not text.isdigit() or int(text) <= 0 or len(text) > 12:
        return json_error(
            400, f"expected a program id (a positive whole number), got {text!r}", "program_id"
        )
    program_id = int(text)
    key = ("statuses", str(program_id))
    return await _answer(request, "program statuses", key, _statuses(program_id))


def add_routes(app: web.Application) -> None:
    app[CACHE] = {}
    app[LOCKS] = {}
    base = "/api/v1/connections/{connection_id}/marketo"
    app.router.add_get(f"{base}/campaigns", campaigns)
    app.router.add_get(f"{base}/forms", forms)
    app.router.add_get(f"{base}/programs", programs)
    app.router.add_get(f"{base}/programs/{{program_id}}/statuses", program_statuses)
