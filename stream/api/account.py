"""`GET/PUT /api/v1/config`: the whole account as YAML (default) or JSON, secrets write-only.

Export has the shape of `examples/account.yaml` (`${VAR}` for secrets taken from the
environment, literal secrets left out). Import replaces the account as a whole after validating
it; problems come back by path (422) and nothing changes. A connection imported without a secret
keeps the one control already holds, so an export can be edited and imported back.

Bounded work: a body over `config.input_limits.MAX_CONFIG_CHARS` bytes is a 413, a body that is
not UTF-8 a 400, YAML anchors and aliases, oversized or overdeep documents a 422 (see
`config.input_limits`); the text is parsed and validated on a thread, one import at a time
(another meanwhile is a 429).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from aiohttp import web

from config.input_limits import MAX_CONFIG_CHARS
from config.yamlio import dump_account, export_data
from stream.api.deps import deps_of
from stream.api.errors import json_error
from stream.api.limits import busy, read_limited
from stream.api.middleware import actor_of

IMPORT_SLOTS: web.AppKey[asyncio.Semaphore] = web.AppKey("signal_import_slots", asyncio.Semaphore)

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def _wants_json(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt is not None:
        return fmt.lower() == "json"
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and not any(t in accept for t in YAML_TYPES)


async def get_config(request: web.Request) -> web.Response:
    account = deps_of(request).config.account
    if _wants_json(request):
        return web.json_response(export_data(account))
    return web.Response(text=dump_account(account), content_type="application/yaml")


async def put_config(request: web.Request) -> web.Response:
    deps = deps_of(request)
    slots = request.app[IMPORT_SLOTS]
    if slots.locked():
        return busy("another configuration import is running; send this one again shortly")
    raw = await read_limited(request, MAX_CONFIG_CHARS, what="a configuration")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return json_error(
            400, f"the configuration is not UTF-8 text (byte {error.start}: {error.reason})"
        )
    is_json = request.content_type == "application/json" or request.query.get("format") == "json"
    if slots.locked():
        return busy("another configuration import is running; send this one again shortly")
    async with slots:
        result = await deps.config.import_text(text, actor_of(request), json_body=is_json)
    return web.json_response(asdict(result))


def add_routes(app: web.Application) -> None:
    app[IMPORT_SLOTS] = asyncio.Semaphore(1)
    app.router.add_get("/api/v1/config", get_config)
    app.router.add_put("/api/v1/config", put_config)
