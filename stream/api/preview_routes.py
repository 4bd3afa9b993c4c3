"""Preview Mapping over HTTP: a flow's mapped payload for its most recent archived changes, or
for a change pasted into the request. Nothing is sent."""

from __future__ import annotations

from aiohttp import web

from stream.api.errors import json_error, json_object
from stream.api.retry_routes import bind, ops_of
from stream.certain.events import ChangeEvent
from stream.certain.parsing import parse_change
from stream.control.operations import Operations
from stream.control.preview import MAX_LIMIT, preview_change, preview_recent

DEFAULT_LIMIT = 5


async def preview(request: web.Request) -> web.Response:
    ops = ops_of(request)
    flow_id = request.match_info["flow_id"]
    account, catalog = ops.config.account, ops.config.catalog
    flow = account.flow(flow_id)
    if flow is None:
        return json_error(404, f"no flow {flow_id!r}")
    body = await json_object(request)
    if "change" in body:
        parsed = parse_change(body["change"])
        if not isinstance(parsed, ChangeEvent):
            path = f"change.{parsed.path}" if parsed.path else "change"
            return json_error(422, parsed.reason, path)
        one = preview_change(parsed, flow, account, catalog)
        return web.json_response({"flow_id": flow_id, "previews": [one.to_dict()], "problems": []})
    limit = body.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        return json_error(400, f"expected a whole number from 1 to {MAX_LIMIT}", "limit")
    previews, problems = await preview_recent(ops.store, flow, account, catalog, limit)
    return web.json_response(
        {"flow_id": flow_id, "previews": [p.to_dict() for p in previews], "problems": problems}
    )


def add_preview_routes(app: web.Application, ops: Operations) -> None:
    bind(app, ops)
    app.router.add_post("/api/v1/mappings/{flow_id}/preview", preview)
