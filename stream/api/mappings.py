"""Mappings: list, read, create and replace, versioned like flows.

Each mapping in an answer carries `version` (bumped by every stored change) and `used_by` (the
flows whose destination names it: who an edit reaches). `PUT` honours `If-Match: <version>`, so
an editor that read version 3 cannot overwrite someone else's version 4 (409, path `version`).
Changes go through the configuration service: validated with the whole account, audited per
mapping, and published to the workers.

    GET  /api/v1/mappings
    POST /api/v1/mappings                 create (id in the body)
    GET  /api/v1/mappings/{mapping_id}
    PUT  /api/v1/mappings/{mapping_id}    replace
    POST /api/v1/mappings/{mapping_id}    create with the id of the path
    DELETE /api/v1/mappings/{mapping_id}  delete one no flow uses (409 naming the flows that do)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from config.models import Mapping
from config.validation import Problem
from stream.api.bodies import json_object
from stream.api.deps import deps_of
from stream.api.errors import if_match_version, problems_response, validation_response
from stream.api.middleware import actor_of
from stream.control.config_service import ConfigService, ConflictError

READ_ONLY = ("version", "used_by")


def mapping_json(config: ConfigService, mapping: Mapping) -> dict[str, Any]:
    return {
        **mapping.model_dump(mode="json"),
        "version": config.version_of("mapping", mapping.id),
        "used_by": config.mapping_users(mapping.id),
    }


def _parsed(body: dict[str, Any], mapping_id: str | None) -> Mapping | web.Response:
    clean = {k: v for k, v in body.items() if k not in READ_ONLY}
    if mapping_id is not None and clean.setdefault("id", mapping_id) != mapping_id:
        message = f"expected {mapping_id!r} (the id in the URL), got {clean['id']!r}"
        return problems_response(422, [Problem("id", message)])
    try:
        return Mapping.model_validate(clean)
    except ValidationError as error:
        return validation_response(error)


async def list_mappings(request: web.Request) -> web.Response:
    config = deps_of(request).config
    return web.json_response(
        {"mappings": [mapping_json(config, m) for m in config.account.mappings]}
    )


async def get_mapping(request: web.Request) -> web.Response:
    config = deps_of(request).config
    return web.json_response(mapping_json(config, config.mapping(request.match_info["id"])))


async def _create(request: web.Request, mapping_id: str | None) -> web.Response:
    config = deps_of(request).config
    parsed = _parsed(await json_object(request), mapping_id)
    if isinstance(parsed, web.Response):
        return parsed
    saved = await config.save_mapping(parsed, actor_of(request), create=True)
    return web.json_response(mapping_json(config, saved), status=201)


async def create_mapping(request: web.Request) -> web.Response:
    return await _create(request, None)


async def create_mapping_at(request: web.Request) -> web.Response:
    return await _create(request, request.match_info["id"])


async def put_mapping(request: web.Request) -> web.Response:
    config = deps_of(request).config
    mapping_id = request.match_info["id"]
    config.mapping(mapping_id)
    expected = if_match_version(request)
    parsed = _parsed(await json_object(request), mapping_id)
    if isinstance(parsed, web.Response):
        return parsed
    saved = await config.save_mapping(
        parsed, actor_of(request), create=False, expected_version=expected
    )
    return web.json_response(mapping_json(config, saved))


async def delete_mapping(request: web.Request) -> web.Response:
    """204, or 409 with `used_by` (the flows' ids) when flows still use the mapping: deleting
    it would leave them pointing at nothing, so the operator moves them first."""
    config = deps_of(request).config
    mapping_id = request.match_info["id"]
    try:
        await config.delete_mapping(
            mapping_id, actor_of(request), expected_version=if_match_version(request)
        )
    except ConflictError as error:
        return problems_response(409, error.problems, used_by=config.mapping_users(mapping_id))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/mappings", list_mappings)
    app.router.add_post("/api/v1/mappings", create_mapping)
    app.router.add_get("/api/v1/mappings/{id}", get_mapping)
    app.router.add_put("/api/v1/mappings/{id}", put_mapping)
    app.router.add_post("/api/v1/mappings/{id}", create_mapping_at)
    app.router.add_delete("/api/v1/mappings/{id}", delete_mapping)
