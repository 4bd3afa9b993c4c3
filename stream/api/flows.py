"""Flows: list, read, create, replace, and the two toggles the console binds to `a` and `t`.

Every flow in an answer carries `complete` and `incomplete_reasons` (an incomplete flow is
saved but never runs) and `version` (bumped by every stored change). `PUT` honours
`If-Match: <version>`: an editor that read version 3 cannot overwrite someone else's version 4
(409, path `version`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from config.models import Flow, Mode
from config.validation import Problem
from stream.api.bodies import json_object
from stream.api.deps import deps_of
from stream.api.errors import (
    if_match_version,
    problems_response,
    validation_response,
)
from stream.api.middleware import actor_of
from stream.control.config_service import FlowView


def flow_json(view: FlowView) -> dict[str, Any]:
    return {
        **view.flow.model_dump(mode="json"),
        "complete": view.complete,
        "incomplete_reasons": view.reasons,
        "version": view.version,
    }


async def list_flows(request: web.Request) -> web.Response:
    views = deps_of(request).config.flow_views()
    return web.json_response({"flows": [flow_json(v) for v in views]})


async def get_flow(request: web.Request) -> web.Response:
    view = deps_of(request).config.flow_view(request.match_info["flow_id"])
    return web.json_response(flow_json(view))


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    """Answers carry read-only keys; accept them back unchanged from a client that edits one."""
    return {k: v for k, v in body.items() if k not in ("complete", "incomplete_reasons", "version")}


async def create_flow(request: web.Request) -> web.Response:
    deps = deps_of(request)
    body = _clean(await json_object(request))
    try:
        flow = Flow.model_validate(body)
    except ValidationError as error:
        return validation_response(error)
    view = await deps.config.create_flow(flow, actor_of(request))
    return web.json_response(flow_json(view), status=201)


async def put_flow(request: web.Request) -> web.Response:
    deps = deps_of(request)
    flow_id = request.match_info["flow_id"]
    deps.config.flow_view(flow_id)
    body = _clean(await json_object(request))
    body.setdefault("id", flow_id)
    try:
        flow = Flow.model_validate(body)
    except ValidationError as error:
        return validation_response(error)
    view = await deps.config.update_flow(
        flow_id, flow, actor_of(request), expected_version=if_match_version(request)
    )
    return web.json_response(flow_json(view))


async def set_active(request: web.Request) -> web.Response:
    deps = deps_of(request)
    flow_id = request.match_info["flow_id"]
    deps.config.flow_view(flow_id)
    body = await json_object(request)
    active = body.get("active")
    if not isinstance(active, bool):
        return problems_response(
            422, [Problem("active", f"expected true or false, got {active!r}")]
        )
    view = await deps.config.set_flow_active(flow_id, active, actor_of(request))
    return web.json_response(flow_json(view))


async def set_mode(request: web.Request) -> web.Response:
    deps = deps_of(request)
    flow_id = request.match_info["flow_id"]
    deps.config.flow_view(flow_id)
    body = await json_object(request)
    mode = body.get("mode")
    if mode not in ("live", "test"):
        return problems_response(422, [Problem("mode", f"expected 'live' or 'test', got {mode!r}")])
    view = await deps.config.set_flow_mode(flow_id, Mode(mode), actor_of(request))
    return web.json_response(flow_json(view))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/flows", list_flows)
    app.router.add_post("/api/v1/flows", create_flow)
    app.router.add_get("/api/v1/flows/{flow_id}", get_flow)
    app.router.add_put("/api/v1/flows/{flow_id}", put_flow)
    app.router.add_post("/api/v1/flows/{flow_id}/active", set_active)
    app.router.add_post("/api/v1/flows/{flow_id}/mode", set_mode)
