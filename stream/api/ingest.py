"""`POST /api/v1/changes`: change events from Certain (or any producer) into the ledger, then
into `certain-changes`.

The body is a JSON array of change events, a single change event, or NDJSON (one per line).
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
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from stream.api.deps import ApiDeps, deps_of
from stream.api.errors import json_error
from stream.certain.events import ChangeEvent
from stream.certain.parsing import Rejection, parse_changes
from stream.control.archive import Received, archive_valid, change_record
from stream.store import ChangeRow, RejectedRow
from stream.store.store import AcceptedChanges

log = logging.getLogger("signal.api.ingest")


def _items(raw: bytes) -> Any:
    """A lone JSON object (pretty-printed or not) is a batch of one; anything else is left to
    `parse_changes`, which reads arrays and NDJSON."""
    text = raw.lstrip()
    if text.startswith(b"{"):
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(value, dict):
            return [value]
    return raw


def _rejected_row(rejection: Rejection, now: datetime) -> RejectedRow:
    raw = rejection.raw
    payload = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
    change_id = raw.get("changeId") if isinstance(raw, dict) else None
    problems = rejection.problems or ()
    reasons = tuple(f"{p.path}: {p.reason}" if p.path else p.reason for p in problems) or (
        rejection.reason,
    )
    return RejectedRow(
        received_at=now,
        reasons=reasons,
        payload=payload,
        source="api",
        change_id=change_id if isinstance(change_id, str) else None,
    )


def _error_item(rejection: Rejection) -> dict[str, Any]:
    return {
        "index": rejection.index,
        "path": rejection.path,
        "message": rejection.reason,
        "problems": [{"path": p.path, "message": p.reason} for p in rejection.problems],
    }


async def post_changes(request: web.Request) -> web.Response:
    deps = deps_of(request)
    raw = await request.read()
    if not raw.strip():
        return json_error(
            400, "empty body: expected a JSON array of change events or NDJSON", accepted=0
        )
    accepted, rejected = parse_changes(_items(raw))
    now = datetime.now(UTC)
    bad = [_rejected_row(r, now) for r in rejected]
    received = [Received(change, _payload(change)) for change in accepted]

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
    problem = await _publish(deps, committed.unpublished)
    body: dict[str, Any] = {
        "accepted": len(change_ids),
        "rejected": len(rejected),
        "duplicates": len(accepted) - len(change_ids),
        "change_ids": change_ids,
        "errors": [_error_item(r) for r in rejected],
        "published": problem is None,
    }
    if problem is not None:
        body["message"] = (
            f"the changes are accepted and kept in the ledger, but the broker did not "
            f"acknowledge them ({problem}); recovery will publish them, no need to send again"
        )
    status = 202 if not rejected else (207 if change_ids else 400)
    return web.json_response(body, status=status)


def _payload(change: ChangeEvent) -> str:
    return json.dumps(change.to_json_dict(), ensure_ascii=False, separators=(",", ":"))


async def _publish(deps: ApiDeps, rows: list[ChangeRow]) -> str | None:
    """Produce the committed rows still unpublished and mark them; None when done, else why
    not. A failed mark is only logged: control marks them when it reads them from the topic."""
    if not rows:
        return None
    try:
        records = [change_record(row) for row in rows]
        await asyncio.wait_for(deps.produce_changes(records), deps.produce_timeout_s)
    except Exception as error:
        log.warning(
            "producing %d accepted changes failed (%s); they wait in the ledger for recovery",
            len(rows),
            type(error).__name__,
        )
        return type(error).__name__
    try:
        await deps.store.mark_published([row.change_id for row in rows], datetime.now(UTC))
    except Exception as error:
        log.warning("marking %d changes published failed: %s", len(rows), error)
    return None
