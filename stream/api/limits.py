"""Bounds on what one request may make control do: body size, and how many run at once.

A body over its route's limit is a 413 naming the limit, read no further; a route whose slots
are all taken answers 429 at once with `Retry-After` rather than queueing without end.
"""

from __future__ import annotations

import json

from aiohttp import web

from config.validation import Problem
from stream.api.errors import error_body, json_error


def too_large(what: str, limit: int, size: int | None = None) -> web.HTTPRequestEntityTooLarge:
    got = f"{size} bytes" if size is not None else "more"
    return web.HTTPRequestEntityTooLarge(
        max_size=limit,
        actual_size=size or limit + 1,
        text=json.dumps(
            error_body([Problem("", f"{what} may be at most {limit} bytes; got {got}")])
        ),
        content_type="application/json",
    )


async def read_limited(request: web.Request, limit: int, *, what: str = "the body") -> bytes:
    """The request's body, at most `limit` bytes; raises a JSON 413 answer past it (without
    reading the rest)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(what, limit, declared)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise too_large(what, limit)
        chunks.append(chunk)


def busy(message: str, path: str = "") -> web.Response:
    """A 429 saying what is busy, with `Retry-After: 1`."""
    response = json_error(429, message, path=path)
    response.headers["Retry-After"] = "1"
    return response
