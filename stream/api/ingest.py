"""`POST /api/v1/changes`: change events from Certain (or any producer) into the ledger, then
into `certain-changes`.

The body is a JSON array of change events, a single change event, or NDJSON (one per line), at
most `MAX_BODY_BYTES` (413 beyond). One poisoned item never takes its batch down: an item that
is not JSON, nested too deep, holds a lone surrogate or would be over the broker's message limit
(`stream.certain.parsing.MAX_CHANGE_BYTES`) is rejected by its position like any invalid change
(`stream.certain.parsing`). The body is parsed off the event loop.

Every request's work is bounded, whatever its bytes hold: at most `MAX_ITEMS` items (413 beyond,
counted no further than that, nothing accepted or recorded); the first `REJECTIONS_IN_FULL`
rejections are listed in the answer and kept in `rejected_changes` one by one, any further ones
are counted (`errors_omitted`, present only then) and kept as one summary row, so a batch of
invalid items can neither build an answer of megabytes nor fill the disk, and none goes
unmentioned.

Ingest is an outbox: the valid items are committed to the ledger first (as control's archive
agent would archive them, `stream.control.archive`; `published_at` empty), together with the
invalid ones as rejected changes (source `api`). Only then are the changes produced to
`certain-changes`, keyed by registration code (event code for `event.create_update`); once the
broker acknowledged them they are marked published. An accepted change is therefore in the
ledger before the client hears so, whatever happens to the broker afterwards.

Answers: 202 when every item was accepted; 207 when some were accepted and some rejected (the
accepted ones are in, only the listed ones need fixing); 400 when nothing was accepted; 503 when
the ledger did not take the batch — then nothing counts as accepted and the whole body may be
sent again. `published` says whether the broker acknowledged the accepted changes: when it did
not (down, or too slow), the answer is still 202/207 with `published: false` and a `message`,
and control's recovery publishes the changes from the ledger later; sending them again is not
needed. A resent change (same `changeId`) is harmless: it is archived once, and published again
only if its earlier publication was never acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from stream.api.deps import ApiDeps, deps_of
from stream.api.errors import json_error
from stream.api.limits import more_items_than
from stream.certain.events import ChangeEvent
from stream.certain.parsing import Problem, Rejection, escaped, oversize_reason, parse_items
from stream.control.archive import Received, archive_valid, publishable
from stream.store import ChangeRow, RejectedRow
from stream.store.store import AcceptedChanges

log = logging.getLogger("signal.api.ingest")


MAX_BODY_BYTES = 16 * 1024 * 1024
"""The largest body taken: `csignal ingest` sends 4 MB chunks; bigger batches are refused (413)
before they are read in full."""
MAX_ITEMS = 10_000
"""The most change events one request may carry: validating, recording and answering for each
costs control's time, so a body of millions of tiny items (`[{},{},…]` fits 5 million in the
body limit) is refused before any of them is looked at."""
REJECTIONS_IN_FULL = 1_000
"""Rejections of one request listed in the answer and kept as rows one by one; above
`csignal ingest`'s 500 lines per request, so the CLI always hears of every rejected line."""
_SUMMARY_REASONS = 10
_READ_CHUNK = 256 * 1024


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it is over `limit` bytes (announced or as it arrives)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    parts: list[bytes] = []
    size = 0
    async for part in request.content.iter_chunked(_READ_CHUNK):
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
    return b"".join(parts)


@dataclass
class _Batch:
    received: list[Received]
    rejected: list[Rejection]


def _parse(raw: bytes) -> _Batch:
    """The body → the changes to accept with their payloads, and the rejections in order."""
    received: list[Received] = []
    rejected: list[Rejection] = []
    for index, result in parse_items(raw):
        if isinstance(result, Rejection):
            rejected.append(result)
            continue
        payload = _payload(result)
        reason = oversize_reason(result.registration_code or result.event_code, payload)
        if reason is not None:
            raw_item = result.to_json_dict()
            rejected.append(Rejection(index, "", reason, raw_item, (Problem("", reason),)))
            continue
        received.append(Received(result, payload))
    rejected.sort(key=lambda r: -1 if r.index is None else r.index)
    return _Batch(received, rejected)


def _rejected_row(rejection: Rejection, now: datetime) -> RejectedRow:
    raw = rejection.raw
    change_id = raw.get("changeId") if isinstance(raw, dict) else None
    problems = rejection.problems or ()
    reasons = tuple(f"{p.path}: {p.reason}" if p.path else p.reason for p in problems) or (
        rejection.reason,
    )
    return RejectedRow(
        received_at=now,
        reasons=tuple(escaped(reason) for reason in reasons),
        payload=_stored(raw),
        source="api",
        change_id=escaped(change_id) if isinstance(change_id, str) else None,
    )


def _stored(raw: Any) -> str:
    """A rejected item as text the ledger takes: its own text, or its JSON with any lone
    surrogate written as an escape."""
    if isinstance(raw, str):
        return escaped(raw)
    try:
        return escaped(json.dumps(raw, ensure_ascii=False, default=str))
    except (RecursionError, ValueError, TypeError) as error:
        return f"(not storable as JSON: {type(error).__name__})"


def _error_item(rejection: Rejection) -> dict[str, Any]:
    return {
        "index": rejection.index,
        "path": rejection.path,
        "message": rejection.reason,
        "problems": [{"path": p.path, "message": p.reason} for p in rejection.problems],
    }


INGEST_SLOTS: web.AppKey[asyncio.Semaphore] = web.AppKey("signal_ingest_slots", asyncio.Semaphore)
MAX_INGESTING = 2
"""Ingest requests worked on at once: each may hold a 16 MiB body and its parse (a few hundred
MB of objects at most); the others wait unread, a socket's buffer each, not a body."""
INGEST_WAIT_S = 30.0
"""How long a request waits for a slot before it is answered 429 (send again)."""


def add_routes(app: web.Application) -> None:
    app[INGEST_SLOTS] = asyncio.Semaphore(MAX_INGESTING)
    app.router.add_post("/api/v1/changes", post_changes)


async def post_changes(request: web.Request) -> web.Response:
    """One batch at a time per slot, its body read only once it has one: however many
    producers send at once, control holds `MAX_INGESTING` bodies, not one per request."""
    slots = request.app[INGEST_SLOTS]
    try:
        async with asyncio.timeout(INGEST_WAIT_S):
            await slots.acquire()
    except TimeoutError:
        response = json_error(
            429,
            f"ingest is busy with {MAX_INGESTING} other batches; nothing was accepted, send "
            "this one again",
            accepted=0,
        )
        response.headers["Retry-After"] = "1"
        return response
    try:
        return await _ingest(request)
    finally:
        slots.release()


async def _ingest(request: web.Request) -> web.Response:
    deps = deps_of(request)
    raw = await _read_body(request, MAX_BODY_BYTES)
    if raw is None:
        return json_error(
            413,
            f"the body is over {MAX_BODY_BYTES:,} bytes; send the changes in smaller batches",
            accepted=0,
        )
    if not raw.strip():
        return json_error(
            400, "empty body: expected a JSON array of change events or NDJSON", accepted=0
        )
    now = datetime.now(UTC)
    parsed = await asyncio.to_thread(_parse_and_keep, raw, now)
    if parsed is None:
        return json_error(
            413,
            f"the body holds more than {MAX_ITEMS:,} change events (counted no further); at most "
            f"{MAX_ITEMS:,} are taken per request: send them in smaller batches",
            accepted=0,
            max_items=MAX_ITEMS,
        )
    batch, bad = parsed
    received, rejected = batch.received, batch.rejected
    accepted = [r.change for r in received]

    async def write(rows: list[ChangeRow]) -> AcceptedChanges:
        return await deps.store.accept_changes(rows, bad)

    try:
        committed = await archive_valid(deps.config, received, now=now, source="api", write=write)
    except Exception as error:
        log.warning("the ledger did not take %d changes: %s", len(received), error)
        return json_error(
            503,
            f"the ledger did not take the changes ({type(error).__name__}); "
            "nothing was accepted, send the batch again",
            accepted=0,
            rejected=len(rejected),
        )
    change_ids = list(dict.fromkeys(change.change_id for change in accepted))
    problem, too_large = await _publish(deps, committed.unpublished)
    body: dict[str, Any] = {
        "accepted": len(change_ids),
        "rejected": len(rejected),
        "duplicates": len(accepted) - len(change_ids),
        "change_ids": change_ids,
        "errors": [_error_item(r) for r in rejected[:REJECTIONS_IN_FULL]],
        "published": problem is None and not too_large,
    }
    messages: list[str] = []
    if len(rejected) > REJECTIONS_IN_FULL:
        body["errors_omitted"] = len(rejected) - REJECTIONS_IN_FULL
        messages.append(
            f"{len(rejected):,} items were rejected; the first {REJECTIONS_IN_FULL:,} are listed "
            f"and kept one by one, the other {len(rejected) - REJECTIONS_IN_FULL:,} are counted "
            "in one summary row of rejected_changes"
        )
    if problem is not None:
        messages.append(
            f"the changes are accepted and kept in the ledger, but the broker did not "
            f"acknowledge them ({problem}); recovery will publish them, no need to send again"
        )
    if too_large:
        messages.append(
            f"{len(too_large):,} of these changes were accepted earlier and are too big for the "
            f"broker ever to take ({', '.join(too_large[:5])}); recovery moves them to "
            "rejected_changes"
        )
    if messages:
        body["message"] = "; ".join(messages)
    status = 202 if not rejected else (207 if change_ids else 400)
    return web.json_response(body, status=status)


def _parse_and_keep(raw: bytes, now: datetime) -> tuple[_Batch, list[RejectedRow]] | None:
    """The batch and the rejected rows to keep; None when the body holds over `MAX_ITEMS`
    items (nothing of it parsed). Blocking: run it on a thread."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # one rejection for the whole body (`stream.certain.parsing`)
    if text is not None and more_items_than(text, MAX_ITEMS):
        return None
    batch = _parse(raw)
    kept = [_rejected_row(r, now) for r in batch.rejected[:REJECTIONS_IN_FULL]]
    rest = batch.rejected[REJECTIONS_IN_FULL:]
    if rest:
        kept.append(_summary_row(rest, now))
    return batch, kept


def _summary_row(rest: list[Rejection], now: datetime) -> RejectedRow:
    """One row for the rejections of a request past the first `REJECTIONS_IN_FULL`: how
    many, their positions and their most common reasons."""
    reasons = Counter(escaped(f"{r.path}: {r.reason}" if r.path else r.reason)[:200] for r in rest)
    indexes = [r.index for r in rest if r.index is not None]
    where = f" (items {min(indexes)} to {max(indexes)})" if indexes else ""
    lines = [
        f"{len(rest):,} more items of this request were rejected{where}; only the first "
        f"{REJECTIONS_IN_FULL:,} rejections of a request are kept one by one"
    ]
    lines += [f"{count:,} × {reason}" for reason, count in reasons.most_common(_SUMMARY_REASONS)]
    payload = {
        "rejected_not_kept": len(rest),
        "first_index": min(indexes) if indexes else None,
        "last_index": max(indexes) if indexes else None,
        "reasons": dict(reasons.most_common(_SUMMARY_REASONS)),
    }
    return RejectedRow(
        received_at=now,
        reasons=tuple(lines),
        payload=json.dumps(payload, ensure_ascii=False),
        source="api",
    )


def _payload(change: ChangeEvent) -> str:
    return json.dumps(change.to_json_dict(), ensure_ascii=False, separators=(",", ":"))


async def _publish(deps: ApiDeps, rows: list[ChangeRow]) -> tuple[str | None, list[str]]:
    """Produce the committed rows still unpublished and mark them. Returns why the broker did
    not acknowledge them (None when it did) and the ids of stored changes it never can take:
    one a ledger accepted before every way in bounded a change's size, sent again, is left to
    recovery, which sets it aside, and the batch's other changes are published now. A failed
    mark is only logged: control marks them when it reads them from the topic."""
    fit, unfit = publishable(rows)
    too_large = [row.change_id for row, _ in unfit]
    if too_large:
        log.warning(
            "%d stored changes of this batch are too big for the broker (%s); recovery moves "
            "them to rejected_changes",
            len(too_large),
            ", ".join(repr(change_id) for change_id in too_large[:5]),
        )
    if not fit:
        return None, too_large
    try:
        async with asyncio.timeout(deps.produce_timeout_s):
            await deps.produce_changes([record for _, record in fit])
    except Exception as error:
        log.warning(
            "producing %d accepted changes failed (%s); they wait in the ledger for recovery",
            len(fit),
            type(error).__name__,
        )
        return type(error).__name__, too_large
    try:
        await deps.store.mark_published([row.change_id for row, _ in fit], datetime.now(UTC))
    except Exception as error:
        log.warning("marking %d changes published failed: %s", len(fit), error)
    return None, too_large
