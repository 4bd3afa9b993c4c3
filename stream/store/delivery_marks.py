"""Delivery marks: the delivered-keys log (`signal-delivered`, `stream.delivery_keys`) as
control keeps it in the ledger for recovery, one row per key, `sending` or `delivered`.

A delivery overrides a "sending" mark and is never undone; a tombstone removes a "sending" mark
only. Writing the same records again changes nothing, so a redelivered batch is harmless. The
writes run on the store's apart lane (`Store.write_apart`), so they never wait behind an outcome
batch. What recovery does with the marks is `stream.control.recovery`'s; the rest of the
ledger's side of recovery is `stream.store.recovery`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa  # type: ignore[import-untyped]

from stream.delivery_keys import MarkState
from stream.store import arrow_batches as ab
from stream.store.base import registered
from stream.store.rows import utc
from stream.store.store import Store
from stream.store.writer import Con


@dataclass(frozen=True, slots=True)
class DeliveryMark:
    """One record of the delivered-keys log as control read it."""

    key: str
    change_id: str
    flow_id: str
    replay_id: str | None
    state: MarkState
    at: datetime | None
    """The delivery or sending time; None for a tombstone (`withdrawn`)."""


@dataclass(frozen=True, slots=True)
class StoredMark:
    key: str
    state: MarkState
    marked_at: datetime


@dataclass(frozen=True, slots=True)
class MarksWritten:
    """Keys of a batch by their net effect (each key counted once)."""

    delivered: int = 0
    sending: int = 0
    withdrawn: int = 0


def fold_marks(marks: Sequence[DeliveryMark]) -> dict[str, DeliveryMark]:
    """The net effect of a batch per key, records taken in log order: a delivery wins over
    everything (the newest delivery time); otherwise the last "sending" mark or tombstone counts
    (a "sending" mark keeps the newest time among those after the last tombstone)."""
    net: dict[str, DeliveryMark] = {}
    for mark in marks:
        before = net.get(mark.key)
        if mark.state == "delivered":
            if before is not None and before.state == "delivered" and _later(before, mark):
                continue
            net[mark.key] = mark
        elif before is not None and before.state == "delivered":
            continue
        elif mark.state == "sending" and before is not None and before.state == "sending":
            if not _later(before, mark):
                net[mark.key] = mark
        else:
            net[mark.key] = mark
    return net


def _later(kept: DeliveryMark, new: DeliveryMark) -> bool:
    return kept.at is not None and new.at is not None and kept.at >= new.at


_MARK_DELIVERED = """
    INSERT INTO delivery_marks
        (key, change_id, flow_id, replay_id, state, marked_at, updated_at)
    SELECT key, change_id, flow_id, replay_id, 'delivered', marked_at, $now FROM batch
    ON CONFLICT (key) DO UPDATE SET
        marked_at = CASE WHEN delivery_marks.state = 'delivered'
                         THEN greatest(delivery_marks.marked_at, excluded.marked_at)
                         ELSE excluded.marked_at END,
        state = 'delivered',
        updated_at = excluded.updated_at
"""

_MARK_SENDING = """
    INSERT INTO delivery_marks
        (key, change_id, flow_id, replay_id, state, marked_at, updated_at)
    SELECT key, change_id, flow_id, replay_id, 'sending', marked_at, $now FROM batch
    ON CONFLICT (key) DO UPDATE SET
        marked_at = greatest(delivery_marks.marked_at, excluded.marked_at),
        updated_at = excluded.updated_at
    WHERE delivery_marks.state = 'sending'
"""

_MARK_WITHDRAWN = """
    DELETE FROM delivery_marks
    WHERE state = 'sending' AND key IN (SELECT key FROM batch)
"""


def _marks_table(marks: Sequence[DeliveryMark]) -> pa.Table:
    return pa.table(
        {
            "key": pa.array([m.key for m in marks], type=ab.STR),
            "change_id": pa.array([m.change_id for m in marks], type=ab.STR),
            "flow_id": pa.array([m.flow_id for m in marks], type=ab.STR),
            "replay_id": pa.array([m.replay_id for m in marks], type=ab.STR),
            "marked_at": pa.array([m.at for m in marks], type=ab.TS),
        }
    )


async def record_delivery_marks(
    store: Store, marks: Sequence[DeliveryMark], now: datetime
) -> MarksWritten:
    """Keep a batch of the delivered-keys log, in log order, in one transaction (see the module
    docstring); `now` is the rows' `updated_at`."""
    net = fold_marks(marks)
    if not net:
        return MarksWritten()
    groups: dict[str, list[DeliveryMark]] = {"delivered": [], "sending": [], "withdrawn": []}
    for mark in net.values():
        groups[mark.state].append(mark)
    params = {"now": utc(now, "now")}

    def work(con: Con) -> None:
        for state, sql in (
            ("delivered", _MARK_DELIVERED),
            ("sending", _MARK_SENDING),
            ("withdrawn", _MARK_WITHDRAWN),
        ):
            if groups[state]:
                with registered(con, "batch", _marks_table(groups[state])):
                    con.execute(sql, {} if state == "withdrawn" else params).fetchall()

    await store.write_apart(work)
    return MarksWritten(len(groups["delivered"]), len(groups["sending"]), len(groups["withdrawn"]))


async def stored_marks(store: Store, *, since: datetime) -> list[StoredMark]:
    """Every delivery mark (sending or delivered) marked since `since`."""
    params = {"since": utc(since, "since")}
    sql = "SELECT key, state, marked_at FROM delivery_marks WHERE marked_at >= $since"

    def read(con: Con) -> list[StoredMark]:
        rows = con.execute(sql, params).fetchall()
        return [StoredMark(str(k), s, at) for k, s, at in rows]

    return await store.read(read)


async def prune_delivery_marks(store: Store, *, before: datetime) -> int:
    """Forget delivery marks older than `before` (the delivered-keys log forgets them too)."""
    params = {"before": utc(before, "before")}

    def work(con: Con) -> int:
        rows = con.execute(
            "DELETE FROM delivery_marks WHERE marked_at < $before RETURNING key", params
        ).fetchall()
        return len(rows)

    return await store.write_apart(work)
