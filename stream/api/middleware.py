"""Bearer-token authentication (operator and read-only tokens) and JSON error answers for every
route.

A read-only token may read anything and run the POSTs that only read (READ_ONLY_POSTS, a
replay's dry run); any other write answers 403 naming the token as read-only, so `csignal
console --read-only` and scripts given that token cannot change Signal whatever they send.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.typedefs import Handler

from stream.api.bodies import json_or_none
from stream.api.deps import deps_of
from stream.api.errors import json_error, problems_response
from stream.control.config_service import ConfigServiceError
from stream.control.token import READ_ONLY, bearer_token, token_role

log = logging.getLogger("signal.api")

OPEN_PATHS = frozenset({"/healthz"})
ACTOR_HEADER = "X-Signal-Actor"
DEFAULT_ACTOR = "api-token"
_ACTOR_TEXT = re.compile(r"[^\w .@+:\-]")
"""What an actor name may hold: letters, digits and `_ .@+:-` (`console:ana`, `ana@example.com`)."""
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_ONLY_POSTS = frozenset({"/api/v1/sql", "/api/v1/mappings/{flow_id}/preview"})
"""Routes (as declared) whose POST only reads: SQL is read-only by design, a preview computes."""
DRY_RUN_POST = "/api/v1/replays"
READ_ONLY_REFUSAL = (
    "this API token is read-only: {method} {path} would change Signal; use the operator token "
    "($SIGNAL_DATA_DIR/api-token) to make changes"
)


def actor_of(request: web.Request) -> str:
    """Who made a change: the operator's name when the client gives one, else the token."""
    name = _ACTOR_TEXT.sub("", request.headers.get(ACTOR_HEADER, "")).strip()[:100]
    return name or DEFAULT_ACTOR


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in OPEN_PATHS:
        deps = deps_of(request)
        token = bearer_token(request.headers.get("Authorization"))
        role = token_role(deps.token, deps.read_only_token, token)
        if role is None:
            response = json_error(401, "missing or invalid bearer token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="signal"'
            return response
        if role == READ_ONLY and not await only_reads(request):
            message = READ_ONLY_REFUSAL.format(method=request.method, path=request.path)
            return json_error(403, message)
    return await handler(request)


async def only_reads(request: web.Request) -> bool:
    """Whether the request changes nothing: a read method, a POST that only reads, or a
    replay asked for its dry run (`"dry_run": true`; the body stays readable by the route)."""
    if request.method in READ_METHODS:
        return True
    if request.method != "POST":
        return False
    route = request.match_info.route.resource
    declared = route.canonical if route is not None else request.path
    if declared in READ_ONLY_POSTS:
        return True
    if declared == DRY_RUN_POST:
        body = await json_or_none(request)
        return isinstance(body, dict) and body.get("dry_run") is True
    return False


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
