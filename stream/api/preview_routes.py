"""Preview Mapping over HTTP: a flow's mapped payload for its most recent archived changes, or
for a change pasted into the request. Nothing is sent.

`POST /api/v1/mappings/{id}/preview` takes a flow id or a mapping id (DESIGN 4.3 names the
mapping; the console sends the mapping id and the flow in the body as `flow_id`)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from config.models import Account, Flow
from stream.api.bodies import json_object
from stream.api.errors import json_error
from stream.api.retry_routes import bind, ops_of
from stream.certain.events import ChangeEvent
from stream.certain.parsing import Rejection, parse_change
from stream.control.operations import Operations
from stream.control.preview import MAX_LIMIT, preview_change, preview_recent
from stream.core.catalog import EventCatalog

DEFAULT_LIMIT = 5


def _flow_for(account: Account, target: str, flow_id: object) -> Flow | str:
    """The flow to preview: `flow_id` from the body, else the path's id as a flow id, else the
    path's id as a mapping id (its first flow). A mapping named in the path replaces the flow's
    own, so an operator can preview a mapping on the flow it is meant for."""
    if flow_id is not None and not isinstance(flow_id, str):
        return "flow_id: expected a string"
    flow = account.flow(flow_id) if flow_id else account.flow(target)
    if flow_id and flow is None:
        return f"no flow {flow_id!r}"
    mapping = account.mapping(target)
    if flow is None:
        if mapping is None:
            return f"no flow or mapping {target!r}"
        flow = next((f for f in account.flows if f.destination.mapping == target), None)
        if flow is None:
            return f"mapping {target!r} is used by no flow; name one with flow_id"
    if mapping is not None and flow.destination.mapping != target:
        destination = flow.destination.model_copy(update={"mapping": target})
        flow = flow.model_copy(update={"destination": destination})
    return flow


async def preview(request: web.Request) -> web.Response:
    ops = ops_of(request)
    target = request.match_info["flow_id"]
    account, catalog = ops.config.account, ops.config.catalog
    body = await json_object(request)
    flow = _flow_for(account, target, body.get("flow_id"))
    if isinstance(flow, str):
        return json_error(404 if flow.startswith(("no ", "mapping")) else 400, flow)
    if "change" in body:
        # On a thread: validating and mapping a change of ingest's largest is the caller's to
        # ask for, and it must not hold the loop (a read-only token may preview).
        one = await asyncio.to_thread(_preview_one, body["change"], flow, account, catalog)
        if isinstance(one, Rejection):
            path = f"change.{one.path}" if one.path else "change"
            return json_error(422, one.reason, path)
        return web.json_response(_answer(flow, [one], []))
    limit = body.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        return json_error(400, f"expected a whole number from 1 to {MAX_LIMIT}", "limit")
    previews, problems = await preview_recent(ops.store, flow, account, catalog, limit)
    return web.json_response(_answer(flow, [p.to_dict() for p in previews], problems))


def _preview_one(
    change: Any, flow: Flow, account: Account, catalog: EventCatalog
) -> dict[str, Any] | Rejection:
    parsed = parse_change(change)
    if not isinstance(parsed, ChangeEvent):
        return parsed
    return preview_change(parsed, flow, account, catalog).to_dict()


def _answer(flow: Flow, previews: list[dict[str, Any]], problems: list[str]) -> dict[str, Any]:
    return {
        "flow_id": flow.id,
        "mapping_id": flow.destination.mapping,
        "previews": previews,
        "problems": problems,
    }


def add_preview_routes(app: web.Application, ops: Operations) -> None:
    bind(app, ops)
    app.router.add_post("/api/v1/mappings/{flow_id}/preview", preview)
