"""The ledger's side of recovery: what has no final outcome, the recovery log and delivered
keys (the delivery marks are `stream.store.delivery_marks`).

Control's recovery (stream/control/recovery.py) decides; these functions read and write DuckDB
for it, on the store's threads (reads on a reader cursor, writes as one transaction on the
writer), so nothing here runs on the event loop. Times are arguments: the caller's clock decides
what "older than the grace" and "within the horizon" mean.

`recovery_log` has one row per (change, flow) recovery re-drove — its reason (`unrouted` or
`queued`), how many times, first and last time, and when it gave up (`stranded_at`) — one
row with `flow_id` '' per change for which no flow was expected to act (`nothing_expected`), and
one with `flow_id` '(deferred)' per change recovery could not decide on yet (`deferred`, e.g. its
event unknown to control's catalog): its `last_at` keeps the change out of the scans for a grace
period, then it is evaluated again; its `first_at` says since when it waits. A deferral that
outlived its bound is closed (`reason` 'deferral_expired', `stranded_at` set, the why in `note`)
once its failed outcomes are published, and is not evaluated again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]

from stream.store import arrow_batches as ab
from stream.store.base import registered
from stream.store.rows import ChangeRow, utc
from stream.store.store import Store
from stream.store.writer import Con

__all__ = [
    "DeliveredKey",
    "LedgerFigures",
    "QueuedPair",
    "RecoveryEntry",
    "UnroutedChange",
    "deferrals_waiting",
    "delivered_keys",
    "ledger_figures",
    "note_deferral_expired",
    "note_deferred",
    "note_nothing_expected",
    "note_redriven",
    "note_stranded",
    "queued_overdue",
    "unrouted_changes",
]

DEFERRED = "deferred"
DEFERRED_MARKER = "(deferred)"
"""`flow_id` of a change recovery could not decide on yet (no flow id has parentheses)."""
DEFERRAL_EXPIRED = "deferral_expired"
"""`reason` of a deferral given up on (waited too long, or too many waited)."""


@dataclass(frozen=True, slots=True)
class RecoveryEntry:
    """What recovery did for one (change, flow) so far."""

    redrives: int
    last_at: datetime
    stranded_at: datetime | None = None
    first_at: datetime | None = None
    """The first redrive (or, for a deferral, when it began to wait)."""


@dataclass(frozen=True, slots=True)
class QueuedPair:
    """A pair whose ledger state is `queued`: routed to Marketo, no answer recorded."""

    change_id: str
    flow_id: str
    since: datetime
    """When it was queued (the queued outcome's processed_at)."""
    attempt: int
    replay_id: str | None
    entry: RecoveryEntry | None


@dataclass(frozen=True, slots=True)
class UnroutedChange:
    """An archived, published change with no outcome for any flow."""

    row: ChangeRow
    since: datetime
    """When it was published to `certain-changes` (received, for changes read from the topic)."""
    entries: dict[str, RecoveryEntry] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveredKey:
    change_id: str
    flow_id: str
    replay_id: str | None
    delivered_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerFigures:
    """What the ledger holds without a final outcome, within the horizon."""

    unpublished: int = 0
    unrouted: int = 0
    queued_overdue: int = 0
    redriven_total: int = 0
    stranded: int = 0
    nothing_expected: int = 0
    oldest: datetime | None = None
    """The oldest moment among the unpublished, unrouted and overdue queued items."""
    deferred: int = 0
    """Changes waiting, still without any outcome, for something control does not know yet."""
    deferral_expired: int = 0
    """Deferrals given up on (recorded as failed outcomes), all time."""


def _entry(
    redrives: Any, last_at: Any, stranded_at: Any, first_at: Any = None
) -> RecoveryEntry | None:
    if redrives is None or last_at is None:
        return None
    return RecoveryEntry(int(redrives), last_at, stranded_at, first_at)


# -- candidates ------------------------------------------------------------------------------

_QUEUED = """
    SELECT d.change_id, d.flow_id, d.processed_at, d.attempt, d.replay_id,
           r.redrives, r.last_at, r.stranded_at
    FROM delivery_state d
    JOIN change_log c ON c.change_id = d.change_id
    LEFT JOIN recovery_log r ON r.change_id = d.change_id AND r.flow_id = d.flow_id
    WHERE d.status = 'queued' AND d.processed_at < $cutoff AND c.received_at >= $horizon
      AND r.stranded_at IS NULL AND (r.last_at IS NULL OR r.last_at < $cutoff)
    ORDER BY d.processed_at, d.change_id, d.flow_id
    LIMIT $limit
"""


async def queued_overdue(
    store: Store, *, cutoff: datetime, horizon: datetime, limit: int
) -> list[QueuedPair]:
    """Pairs queued before `cutoff`, of changes received since `horizon`, that recovery did not
    re-drive since `cutoff` and has not given up on; oldest first."""
    params = {"cutoff": utc(cutoff, "cutoff"), "horizon": utc(horizon, "horizon"), "limit": limit}
    rows = await store.read(lambda con: con.execute(_QUEUED, params).fetchall())
    return [
        QueuedPair(str(r[0]), str(r[1]), r[2], max(1, int(r[3])), r[4], _entry(r[5], r[6], r[7]))
        for r in rows
    ]


_UNROUTED_WHERE = """
    c.received_at >= $horizon AND c.published_at IS NOT NULL AND c.published_at < $cutoff
    AND NOT EXISTS (SELECT 1 FROM delivery_state d WHERE d.change_id = c.change_id)
"""

_CHANGE_SELECT = ", ".join(
    f"c.{name}::VARCHAR" if name == "payload" else f"c.{name}" for name in ab.CHANGE_COLUMNS
)

_UNROUTED = f"""
    SELECT {_CHANGE_SELECT}, c.published_at AS since
    FROM change_log c
    WHERE {_UNROUTED_WHERE}
      AND NOT EXISTS (
          SELECT 1 FROM recovery_log r WHERE r.change_id = c.change_id
             AND (r.flow_id = '' OR r.stranded_at IS NOT NULL OR r.last_at >= $cutoff))
    ORDER BY since, c.change_id
    LIMIT $limit
"""

_ENTRIES_OF = """
    SELECT r.change_id, r.flow_id, r.redrives, r.last_at, r.stranded_at, r.first_at
    FROM recovery_log r JOIN wanted w ON w.change_id = r.change_id
    WHERE r.flow_id <> ''
"""


async def unrouted_changes(
    store: Store, *, cutoff: datetime, horizon: datetime, limit: int
) -> list[UnroutedChange]:
    """Changes received since `horizon` and published before `cutoff` with no outcome for any
    flow, that recovery neither marked as expecting nothing, nor re-drove since `cutoff`, nor
    gave up on; oldest first, each with what recovery did for its flows so far.

    Changes accepted by the ingest API and not yet published are the outbox's, not these.
    """
    params = {"cutoff": utc(cutoff, "cutoff"), "horizon": utc(horizon, "horizon"), "limit": limit}
    width = len(ab.CHANGE_COLUMNS)

    def read(con: Con) -> list[UnroutedChange]:
        rows = con.execute(_UNROUTED, params).fetchall()
        if not rows:
            return []
        wanted = pa.table({"change_id": pa.array([str(r[0]) for r in rows], type=ab.STR)})
        entries: dict[str, dict[str, RecoveryEntry]] = {}
        with registered(con, "wanted", wanted):
            for cid, fid, *log in con.execute(_ENTRIES_OF).fetchall():
                entry = _entry(*log)
                if entry is not None:
                    entries.setdefault(str(cid), {})[str(fid)] = entry
        found = []
        for r in rows:
            values = dict(zip(ab.CHANGE_COLUMNS, r[:width], strict=True))
            row = ChangeRow(**values)
            found.append(UnroutedChange(row, r[width], entries.get(row.change_id, {})))
        return found

    return await store.read(read)


# -- the log ---------------------------------------------------------------------------------

_REDRIVEN = """
    INSERT INTO recovery_log
        (change_id, flow_id, reason, note, redrives, first_at, last_at, stranded_at)
    SELECT change_id, flow_id, reason, NULL, 1, $at, $at, NULL FROM batch
    ON CONFLICT (change_id, flow_id) DO UPDATE SET
        redrives = recovery_log.redrives + 1,
        last_at = excluded.last_at,
        reason = excluded.reason
"""

_STRANDED = """
    INSERT INTO recovery_log
        (change_id, flow_id, reason, note, redrives, first_at, last_at, stranded_at)
    SELECT change_id, flow_id, reason, NULL, 0, $at, $at, $at FROM batch
    ON CONFLICT (change_id, flow_id) DO UPDATE SET
        stranded_at = coalesce(recovery_log.stranded_at, excluded.stranded_at)
"""

_NOTHING = """
    INSERT INTO recovery_log
        (change_id, flow_id, reason, note, redrives, first_at, last_at, stranded_at)
    SELECT change_id, '', 'nothing_expected', note, 0, $at, $at, NULL FROM batch
    ON CONFLICT (change_id, flow_id) DO NOTHING
"""


def _pairs_table(pairs: Sequence[tuple[str, str, str]]) -> pa.Table:
    unique = list({(c, f): (c, f, r) for c, f, r in pairs}.values())
    return pa.table(
        {
            "change_id": pa.array([p[0] for p in unique], type=ab.STR),
            "flow_id": pa.array([p[1] for p in unique], type=ab.STR),
            "reason": pa.array([p[2] for p in unique], type=ab.STR),
        }
    )


def _notes_table(changes: Sequence[tuple[str, str]]) -> pa.Table:
    """(change_id, note) pairs as a batch, one row per change (the last note given wins)."""
    unique = dict(changes)
    return pa.table(
        {
            "change_id": pa.array(list(unique), type=ab.STR),
            "note": pa.array(list(unique.values()), type=ab.STR),
        }
    )


async def _write_batch(store: Store, table: pa.Table, sql: str, at: datetime) -> None:
    params = {"at": utc(at, "at")}

    def work(con: Con) -> None:
        with registered(con, "batch", table):
            con.execute(sql, params).fetchall()

    await store.write(work)


async def note_redriven(store: Store, pairs: Sequence[tuple[str, str, str]], at: datetime) -> None:
    """Count one more redrive at `at` for each (change_id, flow_id, reason)."""
    if pairs:
        await _write_batch(store, _pairs_table(pairs), _REDRIVEN, at)


async def note_stranded(store: Store, pairs: Sequence[tuple[str, str, str]], at: datetime) -> None:
    """Record that recovery gave up on each (change_id, flow_id, reason) at `at` (kept once)."""
    if pairs:
        await _write_batch(store, _pairs_table(pairs), _STRANDED, at)


async def note_nothing_expected(
    store: Store, changes: Sequence[tuple[str, str]], at: datetime
) -> None:
    """Mark each (change_id, why) as a change no flow is expected to act on."""
    if changes:
        await _write_batch(store, _notes_table(changes), _NOTHING, at)


_DEFERRED = f"""
    INSERT INTO recovery_log
        (change_id, flow_id, reason, note, redrives, first_at, last_at, stranded_at)
    SELECT change_id, '{DEFERRED_MARKER}', '{DEFERRED}', note, 0, $at, $at, NULL FROM batch
    ON CONFLICT (change_id, flow_id) DO UPDATE SET
        note = excluded.note,
        last_at = excluded.last_at
"""


async def note_deferred(store: Store, changes: Sequence[tuple[str, str]], at: datetime) -> None:
    """Record that each (change_id, why) could not be decided at `at`: `unrouted_changes` leaves
    it out until `at` is older than its cutoff, then it is evaluated again."""
    if changes:
        await _write_batch(store, _notes_table(changes), _DEFERRED, at)


_WAITING = f"""
    SELECT count(*) FROM recovery_log r
    WHERE r.flow_id = '{DEFERRED_MARKER}' AND r.stranded_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM delivery_state d WHERE d.change_id = r.change_id)
"""


async def deferrals_waiting(store: Store) -> int:
    """Changes deferred and still waiting: not given up on, still without any outcome."""
    return int(await store.read(lambda con: con.execute(_WAITING).fetchall()[0][0]))


_DEFERRAL_EXPIRED = f"""
    INSERT INTO recovery_log
        (change_id, flow_id, reason, note, redrives, first_at, last_at, stranded_at)
    SELECT change_id, '{DEFERRED_MARKER}', '{DEFERRAL_EXPIRED}', note, 0, $at, $at, $at FROM batch
    ON CONFLICT (change_id, flow_id) DO UPDATE SET
        reason = excluded.reason,
        note = excluded.note,
        last_at = excluded.last_at,
        stranded_at = coalesce(recovery_log.stranded_at, excluded.stranded_at)
"""


async def note_deferral_expired(
    store: Store, changes: Sequence[tuple[str, str]], at: datetime
) -> None:
    """Close the deferral of each (change_id, why) at `at`: its failed outcomes are published,
    so `unrouted_changes` leaves it out from now on (its first_at is kept)."""
    if not changes:
        return
    unique = dict(changes)
    table = pa.table(
        {
            "change_id": pa.array(list(unique), type=ab.STR),
            "note": pa.array(list(unique.values()), type=ab.STR),
        }
    )
    await _write_batch(store, table, _DEFERRAL_EXPIRED, at)


# -- figures ---------------------------------------------------------------------------------

_FIGURES = f"""
    WITH
    unpublished AS (
        SELECT count(*) AS n, min(received_at) AS oldest FROM change_log
        WHERE published_at IS NULL AND received_at >= $horizon),
    unrouted AS (
        SELECT count(*) AS n, min(c.published_at) AS oldest FROM change_log c
        WHERE {_UNROUTED_WHERE}
          AND NOT EXISTS (SELECT 1 FROM recovery_log r
                          WHERE r.change_id = c.change_id AND r.flow_id = '')),
    queued AS (
        SELECT count(*) AS n, min(d.processed_at) AS oldest FROM delivery_state d
        JOIN change_log c ON c.change_id = d.change_id
        WHERE d.status = 'queued' AND d.processed_at < $cutoff AND c.received_at >= $horizon),
    log AS (
        SELECT coalesce(sum(redrives), 0) AS redriven,
               count(*) FILTER (WHERE flow_id = '') AS nothing,
               count(*) FILTER (WHERE flow_id = '{DEFERRED_MARKER}'
                                  AND reason = '{DEFERRAL_EXPIRED}') AS expired
        FROM recovery_log),
    deferred AS (
        SELECT count(*) AS n FROM recovery_log r
        WHERE r.flow_id = '{DEFERRED_MARKER}' AND r.stranded_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM delivery_state d WHERE d.change_id = r.change_id)),
    stranded AS (
        SELECT count(*) AS n FROM recovery_log r
        WHERE r.stranded_at IS NOT NULL AND r.flow_id NOT IN ('', '{DEFERRED_MARKER}')
          AND NOT EXISTS (SELECT 1 FROM delivery_state d
                          WHERE d.change_id = r.change_id AND d.flow_id = r.flow_id
                            AND d.status <> 'queued'))
    SELECT unpublished.n, unrouted.n, queued.n, log.redriven, stranded.n, log.nothing,
           least(unpublished.oldest, unrouted.oldest, queued.oldest), deferred.n, log.expired
    FROM unpublished, unrouted, queued, log, stranded, deferred
"""


async def ledger_figures(store: Store, *, cutoff: datetime, horizon: datetime) -> LedgerFigures:
    """Counts for metrics: unpublished changes, unrouted changes and queued pairs older than
    `cutoff` (of changes received since `horizon`), redrives ever made, pairs given up on and
    still without a final outcome, changes expecting nothing, the oldest pending moment, changes
    deferred and still waiting, and deferrals given up on."""
    params = {"cutoff": utc(cutoff, "cutoff"), "horizon": utc(horizon, "horizon")}
    row = await store.read(lambda con: con.execute(_FIGURES, params).fetchall()[0])
    return LedgerFigures(
        unpublished=int(row[0]),
        unrouted=int(row[1]),
        queued_overdue=int(row[2]),
        redriven_total=int(row[3]),
        stranded=int(row[4]),
        nothing_expected=int(row[5]),
        oldest=row[6],
        deferred=int(row[7]),
        deferral_expired=int(row[8]),
    )


# -- delivered keys --------------------------------------------------------------------------

_DELIVERED = """
    SELECT change_id, flow_id, replay_id, min(processed_at) AS delivered_at
    FROM outcome_log
    WHERE status = 'delivered' AND processed_at >= $since
    GROUP BY change_id, flow_id, replay_id
"""


async def delivered_keys(store: Store, *, since: datetime) -> list[DeliveredKey]:
    """Every delivery recorded since `since`, once per (change, flow, replay), at its first
    delivery: the keys the pipeline writes to `signal-delivered`.

    Read from the attempt rows rather than the per-pair state, because a pair's state keeps
    only its newest attempt: a pair delivered and later replayed has two keys (the plain one and
    the replay's), and its state names only the replay.
    """
    params = {"since": utc(since, "since")}

    def read(con: Con) -> list[DeliveredKey]:
        rows = con.execute(_DELIVERED, params).fetchall()
        return [DeliveredKey(str(c), str(f), r, at) for c, f, r, at in rows]

    return await store.read(read)
