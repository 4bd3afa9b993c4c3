"""Bearer-token authentication and JSON error answers for every route."""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.typedefs import Handler

from stream.api.deps import deps_of
from stream.api.errors import json_error, problems_response
from stream.control.config_service import ConfigServiceError
from stream.control.token import bearer_token, token_matches

log = logging.getLogger("signal.api")

OPEN_PATHS = frozenset({"/healthz"})
ACTOR_HEADER = "X-Signal-Actor"
DEFAULT_ACTOR = "api-token"
_ACTOR_TEXT = re.compile(r"[^\w .@+\-]")


def actor_of(request: web.Request) -> str:
    """Who made a change: the operator's name when the client gives one, else the token."""
    name = _ACTOR_TEXT.sub("", request.headers.get(ACTOR_HEADER, "")).strip()[:100]
    return name or DEFAULT_ACTOR


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in OPEN_PATHS:
        token = bearer_token(request.headers.get("Authorization"))
        if not token_matches(deps_of(request).token, token):
            response = json_error(401, "missing or invalid bearer token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="signal"'
            return response
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ConfigServiceError as error:
        return problems_response(error.status, error.problems)
    except web.HTTPException as error:
        if error.content_type == "application/json" or error.status < 400:
            raise
        return json_error(error.status, error.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return json_error(500, "internal error; see the control service's log")
