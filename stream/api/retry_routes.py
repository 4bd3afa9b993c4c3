"""The retry queue over HTTP: list with filters and server-side paging, one item in detail (its
change, its attempts and what it would send now), and resubmit by items or by filter."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from aiohttp import web

from stream.api.bodies import json_object
from stream.api.errors import json_error
from stream.api.middleware import actor_of
from stream.control.operations import Operations
from stream.control.preview import preview_change
from stream.control.redrive import parse_archived
from stream.control.resubmit import (
    MatchCountChanged,
    ResubmitResult,
    parse_filter,
    search_retry,
)
from stream.store import Page, RetryItem
from stream.store.writer import Con

OPS: web.AppKey[Operations] = web.AppKey("signal_operations", Operations)
MAX_PAGE = 500
MAX_ITEMS = 10_000

_ATTEMPTS_SQL = """
    SELECT attempt, status, category, reason, marketo_code, request_id, replay_id,
           processed_at, marketo_lead_id, lead_result
    FROM outcome_log WHERE change_id = ? AND flow_id = ?
    ORDER BY processed_at, attempt LIMIT 100
"""
_ATTEMPT_KEYS = (
    "attempt",
    "status",
    "category",
    "reason",
    "marketo_code",
    "request_id",
    "replay_id",
    "processed_at",
    "marketo_lead_id",
    "lead_result",
)


def ops_of(request: web.Request) -> Operations:
    return request.app[OPS]


def bind(app: web.Application, ops: Operations) -> None:
    if OPS not in app:
        app[OPS] = ops


def plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def item_json(item: RetryItem) -> dict[str, Any]:
    return {k: plain(v) for k, v in dataclasses.asdict(item).items()}


def result_json(result: ResubmitResult) -> dict[str, Any]:
    return {
        **result.counts(),
        "items": [{"change_id": c, "flow_id": f} for c, f in result.submitted_items[:1000]],
    }


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise _bad(name, f"expected a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise _bad(name, f"must be between {low} and {high}, got {value}")
    return value


def _bad(path: str, message: str) -> web.HTTPException:
    body = json.dumps({"errors": [{"path": path, "message": message}]})
    return web.HTTPBadRequest(text=body, content_type="application/json")


async def list_queue(request: web.Request) -> web.Response:
    ops = ops_of(request)
    raw = {k: request.query.get(k) for k in ("integration", "status", "category", "flow_id")}
    try:
        filters = parse_filter({k: v for k, v in raw.items() if v})
    except ValueError as error:
        return json_error(400, str(error))
    search = request.query.get("q") or None
    limit = _int_param(request, "limit", 50, 1, MAX_PAGE)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    page = await search_retry(ops.store, filters, search, Page(offset=offset, limit=limit))
    return web.json_response(
        {
            "items": [item_json(i) for i in page.items],
            "total": page.total,
            "offset": offset,
            "limit": limit,
            "filter": {k: v for k, v in dataclasses.asdict(filters).items() if v is not None},
            "q": search,
        }
    )


async def get_item(request: web.Request) -> web.Response:
    ops = ops_of(request)
    change_id, flow_id = request.match_info["change_id"], request.match_info["flow_id"]
    item = await ops.store.get_retry_item(change_id, flow_id)
    if item is None:
        return json_error(404, f"no retry item for change {change_id!r} and flow {flow_id!r}")
    rows = await ops.store.read(lambda con: _attempts(con, change_id, flow_id))
    body: dict[str, Any] = {"item": item_json(item), "attempts": rows, "change": None}
    change_row = (await ops.store.get_changes([change_id])).get(change_id)
    if change_row is None:
        body["preview"] = None
        body["problem"] = "the archived change is missing"
        return web.json_response(body)
    body["change"] = json.loads(change_row.payload)
    change = parse_archived(change_row)
    flow = ops.config.account.flow(flow_id)
    if isinstance(change, str):
        body["preview"], body["problem"] = None, change
    elif flow is None:
        body["preview"], body["problem"] = None, f"flow {flow_id!r} no longer exists"
    else:
        preview = preview_change(change, flow, ops.config.account, ops.config.catalog)
        body["preview"] = preview.to_dict()
        body["mapped_payload"] = preview.payload
    return web.json_response(body)


def _attempts(con: Con, change_id: str, flow_id: str) -> list[dict[str, Any]]:
    rows = con.execute(_ATTEMPTS_SQL, [change_id, flow_id]).fetchall()
    return [{k: plain(v) for k, v in zip(_ATTEMPT_KEYS, r, strict=True)} for r in rows]


async def submit(request: web.Request) -> web.Response:
    ops = ops_of(request)
    body = await json_object(request)
    actor = actor_of(request)
    if ("items" in body) == ("filter" in body):
        return json_error(400, 'give either "items" or "filter"')
    if "expected_count" in body and "filter" not in body:
        return json_error(400, "only a resubmit by filter takes a count", "expected_count")
    if "filter" in body:
        raw = body["filter"]
        if not isinstance(raw, dict):
            return json_error(400, "expected an object", "filter")
        raw = dict(raw)
        search = raw.pop("q", None)
        if search is not None and not isinstance(search, str):
            return json_error(400, "expected a string", "filter.q")
        try:
            filters = parse_filter(raw)
        except ValueError as error:
            return json_error(400, str(error), "filter")
        expected = body.get("expected_count")
        if expected is not None and (
            not isinstance(expected, int) or isinstance(expected, bool) or expected < 0
        ):
            return json_error(400, "expected a whole number of items, 0 or more", "expected_count")
        try:
            result = await ops.resubmitter.resubmit_matching(
                filters, actor, search=search, expected_count=expected
            )
        except MatchCountChanged as changed:
            return json_error(
                409,
                f"you confirmed {changed.expected} items, but now {changed.matching} items "
                "match the filter; nothing was resubmitted — review the queue and confirm again",
                "expected_count",
            )
        return web.json_response(result_json(result))
    items = body["items"]
    if not isinstance(items, list) or not items:
        return json_error(400, "expected a non-empty list of {change_id, flow_id}", "items")
    if len(items) > MAX_ITEMS:
        return json_error(400, f"at most {MAX_ITEMS} items at once; use a filter", "items")
    keys: list[tuple[str, str]] = []
    for index, entry in enumerate(items):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("change_id"), str)
            or not isinstance(entry.get("flow_id"), str)
            or not entry["change_id"]
            or not entry["flow_id"]
        ):
            return json_error(400, "expected {change_id, flow_id} strings", f"items[{index}]")
        keys.append((entry["change_id"], entry["flow_id"]))
    result = await ops.resubmitter.resubmit(keys, actor)
    return web.json_response(result_json(result))


def add_retry_routes(app: web.Application, ops: Operations) -> None:
    bind(app, ops)
    app.router.add_get("/api/v1/retry-queue", list_queue)
    app.router.add_post("/api/v1/retry-queue/submit", submit)
    app.router.add_get("/api/v1/retry-queue/{change_id}/{flow_id}", get_item)
