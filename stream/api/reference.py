"""Reference data: tags with their assignments (written through `stream.api.tags`), the event
catalog, the change schema."""

from __future__ import annotations

from aiohttp import web

from stream.api.deps import deps_of
from stream.api.errors import json_error
from stream.api.tags import add_routes as add_tag_routes
from stream.api.tags import tags_json
from stream.certain.schema import change_event_json_schema


async def list_tags(request: web.Request) -> web.Response:
    config = deps_of(request).config
    return web.json_response(tags_json(config.account, config.assignments_version))


async def list_events(request: web.Request) -> web.Response:
    catalog = deps_of(request).config.catalog
    events = []
    for code in catalog:
        entry = catalog.entry(code)
        if entry is None:
            continue
        event = entry.event
        events.append(
            {
                "eventCode": code,
                "eventName": event.event_name,
                "eventStatus": event.event_status,
                "eventType": event.event_type,
                "isTest": event.is_test,
                "updatedAt": entry.updated_at.isoformat(),
                "changeId": entry.change_id,
            }
        )
    return web.json_response({"events": events})


async def get_event(request: web.Request) -> web.Response:
    code = request.match_info["event_code"]
    entry = deps_of(request).config.catalog.entry(code)
    if entry is None:
        return json_error(404, f"no event {code!r} in the catalog")
    return web.json_response({"eventCode": code, **entry.model_dump(mode="json", by_alias=True)})


async def change_schema(request: web.Request) -> web.Response:
    return web.json_response(change_event_json_schema())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/tags", list_tags)
    add_tag_routes(app)
    app.router.add_get("/api/v1/catalog/events", list_events)
    app.router.add_get("/api/v1/catalog/events/{event_code}", get_event)
    app.router.add_get("/api/v1/schema/change", change_schema)
