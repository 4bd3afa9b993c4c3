"""Re-driving archived changes: the one way control asks the pipeline to evaluate a change again.

Retries, operator resubmits and replays all republish the change *as archived* to
`signal-redrive`, keyed like `certain-changes` (registration code, event code for event changes)
so a redrive lands on the partition that orders that registration's changes. The pipeline
evaluates it for the named flow only, against the configuration and catalog it holds *now*: an
old payload is never replayed blindly (reliability §5).

Operator actions (resubmit, replay start and cancel) leave a row in `config_audit` with object
`retry_queue` or `replay`, so one trail answers "who changed what, and who re-sent what".
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from config.models import Account
from stream.certain.events import ChangeEvent
from stream.certain.parsing import parse_change
from stream.control.archive import archived_key
from stream.core.catalog import EventCatalog
from stream.messages import Redrive, RedriveRequest
from stream.store import ChangeRow, Store

Publish = Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[None]]
"""Send (key, value) records to `signal-redrive`; returns once the broker acknowledged all."""

Clock = Callable[[], datetime]

AUDIT_RETRY = "retry_queue"
AUDIT_REPLAY = "replay"


class ConfigSource(Protocol):
    """What previews and dry runs read: the configuration and catalog control holds now."""

    @property
    def account(self) -> Account: ...

    @property
    def catalog(self) -> EventCatalog: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def redrive_record(row: ChangeRow, redrive: Redrive) -> tuple[bytes, bytes]:
    request = RedriveRequest(change=json.loads(row.payload), redrive=redrive)
    return archived_key(row), request.dumps()


def parse_archived(row: ChangeRow) -> ChangeEvent | str:
    """The archived change as a `ChangeEvent`, or why it cannot be read back."""
    try:
        obj = json.loads(row.payload)
    except ValueError as error:
        return f"archived payload is not JSON: {error}"
    parsed = parse_change(obj)
    if isinstance(parsed, ChangeEvent):
        return parsed
    return f"archived change no longer parses: {parsed.path or '(change)'}: {parsed.reason}"


async def audit(
    store: Store,
    *,
    actor: str,
    object_kind: str,
    object_id: str,
    action: str,
    change: Mapping[str, Any],
    at: datetime | None = None,
) -> None:
    """One `config_audit` row for an operator action that is not a configuration save."""
    when = at or utc_now()
    body = json.dumps(change, sort_keys=True, separators=(",", ":"), default=str)
    sql = (
        'INSERT INTO config_audit_log ("at", actor, object, object_id, action, change) '
        "VALUES (?, ?, ?, ?, ?, ?::JSON)"
    )
    await store.write(
        lambda con: con.execute(sql, [when, actor, object_kind, object_id, action, body])
    )
