"""`POST /api/v1/changes`: change events from Certain (or any producer) into `certain-changes`.

The body is a JSON array of change events, a single change event, or NDJSON (one per line).
Every valid item is produced to `certain-changes`, keyed by registration code (event code for
`event.create_update`), and the answer is sent only after the broker acknowledged all of them, so
an accepted change is never lost. Invalid items are recorded as rejected changes (source `api`)
and listed in the answer by position, field and reason.

Answers: 202 when every item was accepted; 207 when some were accepted and some rejected (the
accepted ones are in, only the listed ones need fixing); 400 when nothing was accepted; 503 when
the broker did not acknowledge — then nothing counts as accepted and the whole body may be sent
again (`changeId` makes that harmless).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from config.models import Source
from stream.api.deps import deps_of
from stream.api.errors import json_error
from stream.certain.events import ChangeEvent
from stream.certain.parsing import Rejection, parse_changes
from stream.store import RejectedRow

log = logging.getLogger("signal.api.ingest")


def change_key(change: ChangeEvent) -> str:
    if change.type is Source.EVENT_CREATE_UPDATE or change.registration_code is None:
        return change.event_code
    return change.registration_code


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
    if rejected:
        await deps.store.record_rejected([_rejected_row(r, now) for r in rejected])
    unique: dict[str, ChangeEvent] = {}
    for change in accepted:
        unique.setdefault(change.change_id, change)
    records = [
        (
            change_key(change).encode(),
            json.dumps(change.to_json_dict(), ensure_ascii=False, separators=(",", ":")).encode(),
        )
        for change in unique.values()
    ]
    if records:
        try:
            await asyncio.wait_for(deps.produce_changes(records), deps.produce_timeout_s)
        except Exception as error:
            log.warning("producing %d changes failed: %s", len(records), type(error).__name__)
            return json_error(
                503,
                f"the broker did not acknowledge the changes ({type(error).__name__}); "
                "nothing was accepted, send the batch again",
                accepted=0,
                rejected=len(rejected),
            )
    body = {
        "accepted": len(records),
        "rejected": len(rejected),
        "duplicates": len(accepted) - len(records),
        "change_ids": list(unique),
        "errors": [_error_item(r) for r in rejected],
    }
    status = 202 if not rejected else (207 if records else 400)
    return web.json_response(body, status=status)
