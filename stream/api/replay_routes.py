"""Replays over HTTP: start one (or a dry run), follow its progress, cancel it.

`only_undelivered` (true/false) leaves out the changes the flow already delivered. Cancelling a
replay that has nothing left to publish answers 409 with the reason; an unknown id 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from stream.api.bodies import json_object
from stream.api.errors import json_error
from stream.api.middleware import actor_of
from stream.api.retry_routes import bind, ops_of
from stream.control.operations import Operations
from stream.control.replay_dry_run import dry_run
from stream.control.replay_scope import ReplayError, ReplayScope


def _when(body: dict[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReplayError(f"{key}: expected an ISO 8601 timestamp", 400)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(f"{key}: not an ISO 8601 timestamp: {value!r}", 400) from None


def scope_from(body: dict[str, Any]) -> ReplayScope:
    flow_id = body.get("flow_id")
    if not isinstance(flow_id, str) or not flow_id:
        raise ReplayError("flow_id: required", 400)
    event_code = body.get("event_code")
    if event_code is not None and (not isinstance(event_code, str) or not event_code):
        raise ReplayError("event_code: expected a non-empty string", 400)
    return ReplayScope(
        flow_id=flow_id,
        occurred_from=_when(body, "from"),
        occurred_to=_when(body, "to"),
        event_code=event_code,
    )


async def start(request: web.Request) -> web.Response:
    ops = ops_of(request)
    body = await json_object(request)
    dry = body.get("dry_run", False)
    if not isinstance(dry, bool):
        return json_error(400, f"expected true or false, got {dry!r}", "dry_run")
    only = body.get("only_undelivered", False)
    if not isinstance(only, bool):
        return json_error(400, f"expected true or false, got {only!r}", "only_undelivered")
    try:
        scope = scope_from(body)
        if dry:
            report = await dry_run(ops.store, ops.config, scope, only_undelivered=only)
            return web.json_response(report.to_dict())
        replay = await ops.replays.start(scope, actor_of(request), only_undelivered=only)
    except ReplayError as error:
        return json_error(error.status, error.message)
    progress = await ops.replays.progress(replay.id)
    return web.json_response(progress, status=202)


async def list_replays(request: web.Request) -> web.Response:
    ops = ops_of(request)
    replays = [await ops.replays.progress(r.id) for r in ops.replays.all()]
    return web.json_response({"replays": [r for r in replays if r is not None]})


async def get_replay(request: web.Request) -> web.Response:
    progress = await ops_of(request).replays.progress(request.match_info["replay_id"])
    if progress is None:
        return json_error(404, f"no replay {request.match_info['replay_id']!r}")
    return web.json_response(progress)


async def cancel_replay(request: web.Request) -> web.Response:
    ops = ops_of(request)
    replay_id = request.match_info["replay_id"]
    try:
        replay = await ops.replays.cancel(replay_id, actor_of(request))
    except ReplayError as error:
        return json_error(error.status, error.message)
    if replay is None:
        return json_error(404, f"no replay {replay_id!r}")
    return web.json_response(await ops.replays.progress(replay_id))


def add_replay_routes(app: web.Application, ops: Operations) -> None:
    bind(app, ops)
    app.router.add_post("/api/v1/replays", start)
    app.router.add_get("/api/v1/replays", list_replays)
    app.router.add_get("/api/v1/replays/{replay_id}", get_replay)
    app.router.add_delete("/api/v1/replays/{replay_id}", cancel_replay)
