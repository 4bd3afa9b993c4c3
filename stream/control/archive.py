"""Archiving valid change events: the one path shared by control's `archive` agent (changes read
from `certain-changes`) and the ingest API (its outbox, written before the changes are
published).

Both do the same thing with a batch of valid changes: one row per change_id, `is_test` taken
from the change's own event or, failing that, the catalog (including the event changes of the
same batch), the batch written by the caller's `write`, then the batch's `event.create_update`
changes folded into the catalog. The catalog learns an event only once its change is written,
so a batch the ledger refused leaves no trace in the catalog either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from config.models import Source
from stream.certain.events import ChangeEvent
from stream.certain.parsing import oversize_record_reason
from stream.control.config_service import ConfigService
from stream.core.catalog import EventCatalog
from stream.store import ChangeRow
from stream.store.rows import ChangeSource

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Received:
    """One valid change and its JSON text as it is archived (and published)."""

    change: ChangeEvent
    payload: str
    partition: int | None = None
    offset: int | None = None


def change_key(change: ChangeEvent) -> str:
    """The `certain-changes` key: the registration code, the event code for event changes."""
    if change.type is Source.EVENT_CREATE_UPDATE or change.registration_code is None:
        return change.event_code
    return change.registration_code


def archived_key(row: ChangeRow) -> bytes:
    """The partition key of an archived change on `certain-changes` (and of its redrive): the
    same key `change_key` gives the change, so a person's changes keep their order."""
    if row.type == Source.EVENT_CREATE_UPDATE.value or not row.registration_code:
        return (row.event_code or row.change_id).encode()
    return row.registration_code.encode()


def change_record(row: ChangeRow) -> tuple[bytes, bytes]:
    """The (key, value) to produce to `certain-changes` for an archived change (what ingest
    and recovery publish): `archived_key`, the archived JSON as the value."""
    return archived_key(row), row.payload.encode()


def publishable(
    rows: Sequence[ChangeRow],
) -> tuple[list[tuple[ChangeRow, tuple[bytes, bytes]]], list[tuple[ChangeRow, str]]]:
    """Each row with its `change_record`, for the rows the broker takes, and each row it can
    never take with the reason. Every way in rejects a change that big (`oversize_reason`);
    a ledger from before that bound may still hold one, accepted and never published."""
    fit: list[tuple[ChangeRow, tuple[bytes, bytes]]] = []
    unfit: list[tuple[ChangeRow, str]] = []
    for row in rows:
        key, value = change_record(row)
        reason = oversize_record_reason(len(key) + len(value))
        if reason is None:
            fit.append((row, (key, value)))
        else:
            unfit.append((row, reason))
    return fit, unfit


def change_row(
    received: Received, catalog: EventCatalog, *, now: datetime, source: ChangeSource
) -> ChangeRow:
    change = received.change
    event = change.event or catalog.get(change.event_code)
    is_test = bool(
        (change.registration is not None and change.registration.is_test)
        or (event is not None and event.is_test)
    )
    return ChangeRow(
        change_id=change.change_id,
        type=change.type.value,
        account_code=change.account_code,
        event_code=change.event_code,
        registration_code=change.registration_code,
        is_test=is_test,
        occurred_at=change.occurred_at,
        received_at=now,
        payload=received.payload,
        source=source,
        kafka_partition=received.partition,
        kafka_offset=received.offset,
    )


async def archive_valid(
    config: ConfigService,
    received: Sequence[Received],
    *,
    now: datetime,
    source: ChangeSource,
    write: Callable[[list[ChangeRow]], Awaitable[T]],
) -> T:
    """Rows for `received` (the first of each change_id), written by `write` (called even for
    no rows, so a caller can commit other input with them), then the event changes applied to
    the catalog. `write`'s exception propagates and leaves the catalog as it was."""
    unique: dict[str, Received] = {}
    for item in received:
        unique.setdefault(item.change.change_id, item)
    events = [r.change for r in unique.values() if r.change.type is Source.EVENT_CREATE_UPDATE]
    catalog = config.catalog.apply_all(events) if events else config.catalog
    rows = [change_row(r, catalog, now=now, source=source) for r in unique.values()]
    result = await write(rows)
    if events:
        config.apply_changes(events)
    return result
