"""JSON request bodies of the operator API's object routes (flows, mappings, connections,
sources, tags, ledger, retry, replays, previews), read within a bound and parsed off the loop.

Anyone with a token can send a body; aiohttp takes up to the application's `client_max_size`
(sized for account imports), and `json.loads` of 40 MB held control's event loop for 11 s. These
routes take at most `MAX_OBJECT_BYTES` (413 past it, read no further) and parse on a thread; a
body nested past what the parser can follow is a 400 like any other JSON it cannot read.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from config.validation import Problem
from stream.api.errors import error_body
from stream.api.limits import read_limited

MAX_OBJECT_BYTES = 4 * 1024 * 1024
"""Room for a retry resubmit of 10,000 items or a preview of a change of ingest's largest
(1,000,000 bytes) written out in full; no configuration object comes near it."""
_BODY_KEY = web.RequestKey("signal.body", bytes)


async def read_body(request: web.Request, limit: int = MAX_OBJECT_BYTES) -> bytes:
    """The body, at most `limit` bytes (a JSON 413 past it), read once per request: the
    read-only check of a replay's dry run and the route read the same bytes."""
    cached = request.get(_BODY_KEY)
    if isinstance(cached, bytes):
        return cached
    raw = await read_limited(request, limit, what="a request body")
    request[_BODY_KEY] = raw
    return raw


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps(error_body([Problem("", message)])), content_type="application/json"
    )


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise _bad_request(f"not JSON: {error}") from None
    except RecursionError:
        raise _bad_request("not JSON this service reads: nested too deeply") from None


async def json_body(request: web.Request) -> Any:
    """The request's JSON body; raises a 400 answer when it is not JSON."""
    raw = await read_body(request)
    if not raw.strip():
        raise _bad_request("expected a JSON body")
    return await asyncio.to_thread(_loads, raw)


async def json_or_none(request: web.Request) -> Any:
    """The body's JSON value, or None when it is empty or not JSON (no answer raised)."""
    raw = await read_body(request)
    try:
        return await asyncio.to_thread(_loads, raw or b"null")
    except web.HTTPBadRequest:
        return None


async def json_object(request: web.Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise _bad_request("expected a JSON object")
    return body
