"""Bounds on what one request may make control do: body size, items per ingest request, and
how many run at once.

A body over its route's limit is a 413 naming the limit, read no further; a route whose slots
are all taken answers 429 at once with `Retry-After` rather than queueing without end.
"""

from __future__ import annotations

import itertools
import json
import re

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


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]+|[\]}]+|,|[^"\[\]{},]+|"', re.DOTALL)
"""JSON text as strings, runs of opening or closing brackets, commas and the text between."""
_TEXT_LINE = re.compile(r"^.*\S.*$", re.MULTILINE)
"""An NDJSON line that is not blank (only `\\n` ends a line, as the ingest parser reads it)."""


def more_items_than(text: str, cap: int) -> bool:
    """Does the ingest body `text` (a JSON array, one JSON object or NDJSON) hold more than
    `cap` items? Counting stops at `cap + 1`, so the answer costs work for at most that many
    items whatever the body's size: a body of millions of tiny items is refused before any of
    them is decoded, validated or stored.

    Counts as `stream.certain.parsing` splits the body: an array's items (a well-formed array
    is stepped through item by item with the JSON decoder; a malformed one by its top-level
    commas), a single object as one, other text (and NDJSON whose first line is an array) by
    its non-blank lines."""
    body = text.lstrip("\ufeff")
    start = len(body) - len(body.lstrip())
    head = body[start : start + 1]
    if head == "[":
        counted = _array_items(body, start, cap)
        if counted is not None:
            return counted > cap
        if not _whole_first_line(body, start):
            return _top_level_commas(body, start, cap) >= cap
    elif head == "{" and _one_value(body, start):
        return cap < 1
    lines = _TEXT_LINE.finditer(body)
    return next(itertools.islice(lines, cap, None), None) is not None


def _skip_space(text: str, at: int) -> int:
    found = _JSON_SPACE.match(text, at)
    return at if found is None else found.end()


def _array_items(text: str, start: int, cap: int) -> int | None:
    """Items of the well-formed array opening at `start`, counted up to `cap + 1`; None when
    it is not well formed that far, or more text follows it (NDJSON whose first line is an
    array: then lines are items)."""
    decoder = json.JSONDecoder()
    at = _skip_space(text, start + 1)
    if text.startswith("]", at):
        return 0 if not text[at + 1 :].strip() else None
    count = 0
    while True:
        try:
            _value, at = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            return None
        count += 1
        if count > cap:
            return count
        at = _skip_space(text, at)
        if text.startswith(",", at):
            at = _skip_space(text, at + 1)
        elif text.startswith("]", at):
            return count if not text[at + 1 :].strip() else None
        else:
            return None


def _top_level_commas(text: str, start: int, cap: int) -> int:
    """Commas between the items of the (malformed) array opening at `start`, counted up to
    `cap`: the parser splits such an array at exactly these."""
    depth = 0
    commas = 0
    for match in _TOKENS.finditer(text, start):
        token = match.group()
        head = token[0]
        if head in "[{":
            depth += len(token)
        elif head in "]}":
            depth -= len(token)
            if depth <= 0:
                return commas
        elif head == "," and depth == 1:
            commas += 1
            if commas >= cap:
                return commas
    return commas


def _whole_first_line(text: str, start: int) -> bool:
    """Does the array opening at `start` close on its own line, with more lines after it?
    (NDJSON whose first line is an array: the parser takes its lines as the items.)"""
    newline = text.find("\n", start)
    if newline < 0 or not text[newline:].strip():
        return False
    depth = 0
    for match in _TOKENS.finditer(text, start, newline):
        token = match.group()
        if token[0] in "[{":
            depth += len(token)
        elif token[0] in "]}":
            depth -= len(token)
            if depth <= 0:
                return not text[match.end() : newline].strip()
    return False


def _one_value(text: str, start: int) -> bool:
    """Is `text` one JSON value (a pretty-printed object) and nothing more?"""
    try:
        _value, end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        return False
    return not text[end:].strip()
