"""What a server Signal calls (Certain, Marketo) answers, read within a bound and with the secrets
it may echo back taken out, before anything reads it.

An answer is read in chunks up to its caller's bound (`read_capped`), so a runaway one is never
held whole in memory.

Signal sends the Certain password (as Basic authorization), the Marketo client secret (in the
identity request's form) and Marketo access tokens (as bearer authorization). A server or proxy
that echoes the request into an error — headers, query, form — would otherwise put them in an
outcome's reason, an `api_calls` row, a source's `last_error`, a log line. The answer's bytes
are scrubbed once, where they are read: every form a secret could be echoed in (as sent,
URL-encoded, JSON-escaped, base64 inside Basic) becomes `[redacted]`, which is valid inside any
JSON string, so the answer still parses.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import aiohttp

REDACTED = b"[redacted]"
MIN_SECRET_CHARS = 4
"""Shorter values are not looked for: a one-letter "secret" would take out every such letter."""


def echo_forms(*secrets: str | None, basic: tuple[str, str] | None = None) -> tuple[bytes, ...]:
    """The byte strings to take out of an answer for these secrets (and a Basic credential's
    header value), longest first so no form is cut by a shorter one inside it."""
    forms: set[bytes] = set()
    values = [s for s in secrets if s and len(s) >= MIN_SECRET_CHARS]
    if basic is not None:
        token = base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode("ascii")
        values.append(token)
    for value in values:
        for form in (
            value,
            quote(value, safe=""),
            quote_plus(value),
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
            json.dumps(value)[1:-1].replace("/", "\\/"),
        ):
            forms.add(form.encode())
    return tuple(sorted(forms, key=len, reverse=True))


def scrub(raw: bytes, forms: Iterable[bytes]) -> bytes:
    """`raw` with each form replaced by `[redacted]`."""
    for form in forms:
        if form in raw:
            raw = raw.replace(form, REDACTED)
    return raw


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or its first chunks once past `limit` bytes (the caller sees it is longer than
    `limit` and refuses it): read no further."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)
