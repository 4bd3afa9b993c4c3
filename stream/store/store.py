"""`Store`: the control service's ledger and configuration, as an asyncio API over DuckDB.

Every method is a coroutine whose DuckDB work runs on the writer thread (writes, one transaction
per call, so one call = one durable batch) or on a reader thread (reads). When a write coroutine
returns, the batch is committed to the WAL and synced: the caller may commit its Kafka offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from stream.store import arrow_batches as ab
from stream.store.base import first, insert_arrow, registered
from stream.store.config_objects import ConfigObjects
from stream.store.errors import StoreWriteError
from stream.store.readonly_sql import MAX_ANSWER_BYTES, QueryResult, run_read_only
from stream.store.retry_queue import (
    RESOLVING_STATUSES,
    RetryQueue,
    last_per_key,
    resolve_retries,
)
from stream.store.rows import (
    ApiCallRow,
    ChangeRow,
    ChangeSource,
    OutcomeRow,
    RejectedRecordRow,
    RejectedRow,
    RetryItem,
    utc,
)
from stream.store.writer import Con

T = TypeVar("T")

IN_FLIGHT_STATUS = "queued"
"""A delivery routed to Marketo with no answer yet. Its attempt row is kept; it becomes the
pair's state only while the pair has no state or is itself queued, never replaces a final state
and does not count as an attempt (see `Store.record_outcomes`)."""

LEDGER_ONLY_STATUSES = ("would_send", "skipped_duplicate")
"""Attempt rows that describe a pair without changing it: a dry run's `would_send` and a
redelivery noticed as a duplicate stay in the ledger but never become the pair's current state
(a dry run of a delivered pair must not make it look undelivered). One exception: a duplicate
noticed for a pair with no state or still `queued` proves an earlier delivery whose outcome was
lost, and makes the pair delivered."""

_NOT_FINAL = (*LEDGER_ONLY_STATUSES, IN_FLIGHT_STATUS)

_OUTCOME_INSERT_COLUMNS = ", ".join(ab.OUTCOME_COLUMNS)
_OUTCOME_INSERT = (
    f"INSERT INTO outcome_log ({_OUTCOME_INSERT_COLUMNS}, recorded_at) "
    f"SELECT {_OUTCOME_INSERT_COLUMNS}, now() FROM batch"
)
_OUTCOMES_RECORDED = (
    "SELECT o.outcome_id FROM outcome_log o "
    "SEMI JOIN batch b ON o.outcome_id = b.outcome_id AND o.processed_at = b.processed_at "
    "WHERE o.processed_at BETWEEN ? AND ?"
)
"""The batch's outcomes the ledger has already (a batch sent or delivered again). outcome_log
has no key (migration 14): an outcome's id hashes its processed_at, so a stored copy has the
same processed_at, and the range, given as parameters, lets DuckDB's zone maps skip every row
group outside it: the newest few, since outcomes are recorded about as they are processed.
In `bench control_ledger --long`, recording holds the rate it had with the key while the
ledger's indexes stay flat."""


def _time_range(table: pa.Table, column: str) -> tuple[datetime, datetime]:
    """The lowest and highest time of `column`: the bounds a lookup of stored rows gives DuckDB
    so that its zone maps skip the row groups outside them."""
    lowest, highest = pc.min_max(table[column]).values()
    return lowest.as_py(), highest.as_py()


def _unrecorded(con: Con, table: pa.Table) -> pa.Table:
    """The rows of `table` (each outcome_id once) whose outcome the ledger does not have."""
    processed = _time_range(table, "processed_at")
    with registered(con, "batch", table.select(["outcome_id", "processed_at"])):
        rows = con.execute(_OUTCOMES_RECORDED, list(processed)).fetchall()
    if not rows:
        return table
    recorded = pa.array([r[0] for r in rows], type=ab.STR)
    return table.filter(pc.invert(pc.is_in(table["outcome_id"], value_set=recorded)))


_LATEST_COLUMNS = [c for c in ab.OUTCOME_COLUMNS if c not in ("change_id", "flow_id")]
_NEWER = (
    "(excluded.processed_at, excluded.attempt, excluded.outcome_id) > "
    "(delivery_state.processed_at, delivery_state.attempt, delivery_state.outcome_id)"
)
_STATE_COLUMNS = f"""(change_id, flow_id, {", ".join(_LATEST_COLUMNS)},
         attempts, first_processed_at, delivered_at, updated_at)"""
_NEWEST_PER_PAIR = """QUALIFY row_number() OVER (
        PARTITION BY change_id, flow_id
        ORDER BY processed_at DESC, attempt DESC, outcome_id DESC) = 1"""


def _take_if(condition: str) -> str:
    return ", ".join(
        f"{c} = CASE WHEN {condition} THEN excluded.{c} ELSE delivery_state.{c} END"
        for c in _LATEST_COLUMNS
    )


_REPLAY_KEEPS_DELIVERED = "NOT (excluded.replayed AND delivery_state.status = 'delivered')"
"""A replayed row never replaces a delivered state: the first delivery (and whether Marketo
created the lead then) is the pair's history, and a replay is an attempt of its own, kept in
`outcome_attempts` and in the replay's progress. A replay of a pair never delivered (failed,
filtered out, not activated) still becomes its state."""

_FINAL_REPLACES = (
    f"(delivery_state.status = '{IN_FLIGHT_STATUS}' OR {_NEWER}) AND {_REPLAY_KEEPS_DELIVERED}"
)

_STATE_UPSERT = f"""
    INSERT INTO delivery_state {_STATE_COLUMNS}
    SELECT change_id, flow_id, {", ".join(_LATEST_COLUMNS)},
           attempts, first_processed_at, delivered_at, now()
    FROM (
        SELECT *,
               count(*) OVER pair AS attempts, min(processed_at) OVER pair AS first_processed_at,
               min(processed_at) FILTER (WHERE status = 'delivered') OVER pair AS delivered_at,
               count(*) FILTER (WHERE status = 'delivered') OVER (
                   pair ORDER BY processed_at, attempt, outcome_id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS delivered_before
        FROM batch
        WHERE status NOT IN {_NOT_FINAL}
        WINDOW pair AS (PARTITION BY change_id, flow_id)
    )
    WHERE NOT replayed OR delivered_before = 0
    {_NEWEST_PER_PAIR}
    ON CONFLICT (change_id, flow_id) DO UPDATE SET
        {_take_if(_FINAL_REPLACES)},
        attempts = delivery_state.attempts + excluded.attempts,
        first_processed_at = least(delivery_state.first_processed_at, excluded.first_processed_at),
        delivered_at = least(delivery_state.delivered_at, excluded.delivered_at),
        updated_at = excluded.updated_at
"""
"""Final rows (every status but queued and the ledger-only ones): the newest per pair becomes
the state, over a queued state whatever the times, over a final state when newer; a replayed row
after a delivery, in the batch or in the state, does not (`_REPLAY_KEEPS_DELIVERED`)."""

_STATE_UPSERT_ONE_PER_PAIR = f"""
    INSERT INTO delivery_state {_STATE_COLUMNS}
    SELECT change_id, flow_id, {", ".join(_LATEST_COLUMNS)},
           1, processed_at, CASE WHEN status = 'delivered' THEN processed_at END, now()
    FROM batch
    WHERE status NOT IN {_NOT_FINAL}
    ON CONFLICT {_STATE_UPSERT.split("ON CONFLICT", 1)[1]}"""
"""`_STATE_UPSERT` for a batch with at most one final row per pair (the usual batch: one
outcome per delivery): each row is its pair's newest, its only attempt and delivery, and no
delivery of the batch precedes it, so the window functions have nothing to rank. They were
17 of the statement's 45 ms per 5,000 outcomes."""

_QUEUED_UPSERT = f"""
    INSERT INTO delivery_state {_STATE_COLUMNS}
    SELECT change_id, flow_id, {", ".join(_LATEST_COLUMNS)},
           0, min(processed_at) OVER pair, NULL, now()
    FROM batch
    WHERE status = '{IN_FLIGHT_STATUS}'
    WINDOW pair AS (PARTITION BY change_id, flow_id)
    {_NEWEST_PER_PAIR}
    ON CONFLICT (change_id, flow_id) DO UPDATE SET
        {_take_if(f"delivery_state.status = '{IN_FLIGHT_STATUS}' AND {_NEWER}")},
        first_processed_at = least(delivery_state.first_processed_at, excluded.first_processed_at),
        updated_at = excluded.updated_at
"""
"""Queued rows, after the final ones of the same batch: a pair without state becomes queued, a
queued pair follows its newest queued row, any other state stays."""

_DUPLICATE_PROVES_DELIVERY = f"""
    INSERT INTO delivery_state {_STATE_COLUMNS}
    SELECT change_id, flow_id,
           {", ".join("'delivered'" if c == "status" else c for c in _LATEST_COLUMNS)},
           1, processed_at, processed_at, now()
    FROM batch
    WHERE status = 'skipped_duplicate'
    QUALIFY row_number() OVER (
        PARTITION BY change_id, flow_id ORDER BY processed_at, attempt, outcome_id) = 1
    ON CONFLICT (change_id, flow_id) DO UPDATE SET
        {", ".join(f"{c} = excluded.{c}" for c in _LATEST_COLUMNS)},
        attempts = delivery_state.attempts + 1,
        first_processed_at = least(delivery_state.first_processed_at, excluded.processed_at),
        delivered_at = excluded.processed_at,
        updated_at = excluded.updated_at
    WHERE delivery_state.status = '{IN_FLIGHT_STATUS}'
"""
"""A duplicate noticed for a pair with no state or still queued: the delivered-keys log proved
a delivery whose outcome was lost (a crash between Marketo's answer and the outcome; after a
crash of everything, the pair's queued row may be lost too, so recovery re-drove it as a change
nobody routed), so the pair is delivered, at the duplicate's time, with its reason. Never over
a final state."""


def _state_statements(new: pa.Table, statuses: set[str]) -> list[tuple[str, pa.Table]]:
    """The state statements the batch `new` (with these statuses) needs, in their order, each
    with the rows of the batch it reads. Each statement's SELECT keeps only rows of its own
    statuses before ranking them, so handing it just those rows changes nothing — and spares
    the split by stored pair (`_run_state_statement`) the rest: the final rows' stored pairs no
    longer send the queued statement down its UPDATE path for nothing (11.5 ms of a
    5,000-outcome batch whose queued rows were all new). A statement with no rows to read
    still cost DuckDB most of its time (planning the upsert): the queued and duplicate
    statements were 40 ms of a 140 ms batch of 500 outcomes without a queued or duplicate
    row, so one without rows is left out."""
    wanted: list[tuple[str, pa.Table]] = []
    if not statuses.issubset(_NOT_FINAL):
        final = new
        if not statuses.isdisjoint(_NOT_FINAL):
            final = new.filter(pc.invert(pc.is_in(new["status"], value_set=_NOT_FINAL_ARRAY)))
        single = _one_final_row_per_pair(final)
        wanted.append((_STATE_UPSERT_ONE_PER_PAIR if single else _STATE_UPSERT, final))
    for status, statement in (
        (IN_FLIGHT_STATUS, _QUEUED_UPSERT),
        ("skipped_duplicate", _DUPLICATE_PROVES_DELIVERY),
    ):
        if status in statuses:
            rows = new if statuses == {status} else new.filter(pc.equal(new["status"], status))
            wanted.append((statement, rows))
    return wanted


_NOT_FINAL_ARRAY = pa.array(_NOT_FINAL, type=ab.STR)


def _one_final_row_per_pair(final: pa.Table) -> bool:
    """Has every (change, flow) of these final rows one row only?"""
    pairs = final.select(["change_id", "flow_id"]).group_by(["change_id", "flow_id"])
    return bool(pairs.aggregate([]).num_rows == final.num_rows)


def _pair_keys(table: pa.Table) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(table["change_id"], table["flow_id"], "\x1f")


Within = tuple[datetime, datetime] | None
"""The occurred_at range a lookup of stored pairs reads delivery_state within (None: all of
it), given to DuckDB as the statement's two parameters."""


def _split_by_stored(
    con: Con, table: pa.Table, stored_in: str, within: Within = None
) -> tuple[pa.Table, pa.Table]:
    """The rows of `table` whose (change, flow) has no row in `stored_in` yet, and the rest;
    with `within`, stored rows outside that occurred_at range are not looked at.

    DuckDB runs an ON CONFLICT insert as a merge: a join of the whole batch with the table and
    a grouping of the batch, even when no row conflicts; over 5,000 new pairs it cost 4-5 times
    a plain insert of the same rows (about 50 against 11 ms). Finding the pairs already there
    is a join of two key columns, so new pairs take the plain insert and only stored ones the
    upsert. That join scans the whole table, since DuckDB does not look a two-column key up
    in its index, and change ids are hashes, so no range of them skips a row group: over 10
    million states the lookups took 154 ms of a 298 ms batch of 5,000 outcomes. `within`,
    given as parameters, lets the zone maps skip every row group outside it: 10 ms of 149
    (`Store.record_outcome_batch` says why that is safe). Two keys joined by the separator may
    collide: a pair then counts as stored and takes the upsert, which is right for either."""
    pairs = table.select(["change_id", "flow_id"])
    sql = f"SELECT change_id, flow_id FROM {stored_in} SEMI JOIN pairs USING (change_id, flow_id)"
    if within is not None:
        sql += f" WHERE {stored_in}.occurred_at BETWEEN ? AND ?"
    with registered(con, "pairs", pairs):
        found = con.sql(sql, params=list(within or ())).to_arrow_table()
    if found.num_rows == 0:
        return table, table.slice(0, 0)
    stored = pc.is_in(_pair_keys(table), value_set=_pair_keys(found).combine_chunks())
    return table.filter(pc.invert(stored)), table.filter(stored)


_CONFLICT = "(change_id, flow_id) DO UPDATE SET"
_CONFLICT_WHERE = "\n    WHERE "


def _as_update(statement: str, within: Within = None) -> str:
    """The state upsert `statement` as an UPDATE of stored pairs: its SELECT joined to
    delivery_state by key (and, with `within`, by an occurred_at range given as two
    parameters), its SET with the selected row for `excluded`, its conflict WHERE (if any)
    added to the join's. For a batch whose every pair is stored the upsert inserts
    nothing and updates exactly the rows this updates, to the same values; DuckDB runs the
    upsert as a merge joining the batch with the whole table, the UPDATE as a join of the batch
    with its own rows by key."""
    head, tail = statement.split("ON CONFLICT", 1)
    tail = tail.strip().removeprefix(_CONFLICT)
    select = head.split(_STATE_COLUMNS, 1)[1].strip()
    assignments, _, condition = tail.partition(_CONFLICT_WHERE)
    where = "delivery_state.change_id = b.change_id AND delivery_state.flow_id = b.flow_id"
    if within is not None:
        where += " AND delivery_state.occurred_at BETWEEN ? AND ?"
    if condition.strip():
        where += f" AND ({condition.strip()})"
    return (
        f"UPDATE delivery_state SET {assignments.strip().replace('excluded.', 'b.')}\n"
        f"    FROM ({select}) AS b{_STATE_COLUMNS}\n    WHERE {where}"
    )


def _update_stored(con: Con, statement: str, stored: pa.Table, within: Within = None) -> None:
    """`statement` over a batch whose pairs all have state (within that occurred_at range, if
    given): `_as_update` of it."""
    with registered(con, "batch", stored):
        con.execute(_as_update(statement, within), list(within or ())).fetchall()


def _run_state_statement(con: Con, statement: str, new: pa.Table, *, bounded: bool) -> None:
    """`statement` over the batch `new`: as a plain insert for the pairs without state, as an
    update for the others (see `_split_by_stored`, `_as_update`); `bounded`, stored pairs are
    looked for only among states of the batch's occurred_at range. Every statement reads and
    ranks a pair's rows by themselves, so splitting the batch by pair changes no pair's result,
    and what the upsert inserts for a pair without state is what its SELECT makes."""
    within = _time_range(new, "occurred_at") if bounded else None
    fresh, stored = _split_by_stored(con, new, "delivery_state", within)
    if fresh.num_rows:
        with registered(con, "batch", fresh):
            con.execute(statement.split("ON CONFLICT", 1)[0]).fetchall()
    if stored.num_rows:
        _update_stored(con, statement, stored, within)


_RESOLVING = pa.array(RESOLVING_STATUSES, type=ab.STR)
_RETRY_COLUMNS = ", ".join(ab.RETRY_COLUMNS)
_RETRY_INSERT = f"INSERT INTO retry_items ({_RETRY_COLUMNS}) SELECT {_RETRY_COLUMNS} FROM batch"
"""A batch's retry items whose pairs have none yet: what `upsert_retries` inserts for them."""
_RETRY_UPDATE = (
    "UPDATE retry_items SET "
    + ", ".join(
        f"{c} = b.{c}" for c in ab.RETRY_COLUMNS if c not in ("change_id", "flow_id", "created_at")
    )
    + " FROM batch b WHERE retry_items.change_id = b.change_id AND retry_items.flow_id = b.flow_id"
)
"""A batch's retry items whose pairs have one stored (one item per pair, `last_per_key`): what
`upsert_retries` sets for them, without the merge over the whole table."""


def _update_stored_retries(con: Con, stored: pa.Table) -> None:
    insert_arrow(con, stored, _RETRY_UPDATE)


_CHANGE_INSERT_COLUMNS = ", ".join(ab.CHANGE_COLUMNS)
_CHANGE_VALUES = _CHANGE_INSERT_COLUMNS.replace("payload", "payload::JSON")
_ARCHIVE_AS_GIVEN = (
    f"INSERT INTO change_log ({_CHANGE_INSERT_COLUMNS}) SELECT {_CHANGE_VALUES} FROM batch "
    "ON CONFLICT (change_id) DO NOTHING"
)
_ARCHIVE_PUBLISHED = (
    f"INSERT INTO change_log ({_CHANGE_INSERT_COLUMNS}) "
    f"SELECT {_CHANGE_VALUES.replace('published_at', 'coalesce(published_at, received_at)')} "
    "FROM batch ON CONFLICT (change_id) DO NOTHING"
)
_MARK_ECHOED = """
    UPDATE change_log c SET published_at = b.published_at
    FROM (SELECT change_id, min(coalesce(published_at, received_at)) AS published_at
          FROM batch GROUP BY change_id) b
    WHERE c.change_id = b.change_id AND c.published_at IS NULL
"""
_ARCHIVE_ALL_NEW = _ARCHIVE_AS_GIVEN.split(" ON CONFLICT", 1)[0]
"""`_ARCHIVE_AS_GIVEN` for a batch of distinct ids none of which is stored, which is every
batch but a resent one: it adds the same rows without DuckDB's conflict handling, which cost
3.7 against 1.5 ms for 10 changes and grew with the ledger (5.9 -> 20.7 ms for 500 changes
over an empty ledger and one of 500,000). An id already stored fails the primary key, and
`Store.accept_changes` writes the batch again with `_ARCHIVE_AS_GIVEN`."""
_INDEX_LOOKUP_IDS = 50
"""Up to this many rows, a batch joined with change_log by key is looked up in the primary
key's index (DuckDB turns the join into a filter on the keys, `dynamic_or_filter_threshold`);
a larger one scans change_id over the whole ledger."""
_CHANGE_SELECT_COLUMNS = _CHANGE_INSERT_COLUMNS.replace("payload", "payload::VARCHAR")
_UNPUBLISHED_OF_BATCH = (
    f"SELECT {_CHANGE_SELECT_COLUMNS} FROM change_log "
    "WHERE published_at IS NULL AND change_id IN (SELECT change_id FROM batch) "
    "ORDER BY received_at, change_id"
)
"""The batch's stored rows without `published_at`, in `accept_changes`'s order, for a batch of
more than `_INDEX_LOOKUP_IDS` rows: `published_at IS NULL` is checked in the scan, which skips
the row groups the last checkpoint found without a NULL."""
_STORED_OF_BATCH = (
    f"SELECT {_CHANGE_SELECT_COLUMNS} FROM change_log SEMI JOIN batch USING (change_id) "
    "ORDER BY received_at, change_id"
)
"""`_UNPUBLISHED_OF_BATCH` for a batch of at most `_INDEX_LOOKUP_IDS` rows, which reads every
stored row of the batch, by key: the caller keeps those without `published_at`. With the
filter in the scan DuckDB reads published_at of every row group that may hold a NULL (one
updated since the last checkpoint, one holding a change never published) instead of using the
index, and 10 changes cost 2.2 ms over an empty ledger, 4.5 ms over 500,000 changes."""
_PUBLISHED_AT = list(ab.CHANGE_COLUMNS).index("published_at")
_MARK_PUBLISHED = (
    "UPDATE change_log SET published_at = ? "
    "WHERE published_at IS NULL AND change_id IN (SELECT change_id FROM wanted)"
)
"""Mark the ids of `wanted` not marked yet, for more than `_INDEX_LOOKUP_IDS` ids (see
`_UNPUBLISHED_OF_BATCH`)."""
_MARK_FEW_PUBLISHED = (
    "UPDATE change_log SET published_at = ? FROM wanted w WHERE change_log.change_id = w.change_id "
    "AND change_log.published_at IS NOT DISTINCT FROM w.published_at"
)
"""`_MARK_PUBLISHED` for at most `_INDEX_LOOKUP_IDS` ids, looked up by index: `wanted` has a
published_at column, NULL on every row, so the last condition is `published_at IS NULL` as a
condition of the join rather than a filter of the scan (see `_STORED_OF_BATCH`; 1.4 ms over an
empty ledger, 3.7 ms over 500,000 changes as a filter, for 10 ids)."""
_DELETE_UNPUBLISHED = (
    "DELETE FROM change_log WHERE published_at IS NULL "
    "AND change_id IN (SELECT change_id FROM unpublishable) RETURNING change_id"
)
_REJECTED_INSERT = (
    f"INSERT INTO rejected_changes ({', '.join(ab.REJECTED_COLUMNS)}) "
    f"SELECT {', '.join(ab.REJECTED_COLUMNS)} FROM batch"
)


@dataclass(frozen=True, slots=True)
class AcceptedChanges:
    """What `Store.accept_changes` committed: rows added, and the batch's rows still to
    publish (as stored)."""

    added: int
    unpublished: list[ChangeRow]


def _change_from_row(row: Sequence[Any]) -> ChangeRow:
    values = dict(zip(ab.CHANGE_COLUMNS, row, strict=True))
    values["source"] = cast(ChangeSource, values["source"])
    return ChangeRow(**values)


class Store(RetryQueue, ConfigObjects):
    """The control service's DuckDB store; see the module docstring for threading. The retry
    queue and the configuration objects are parts of their own (`retry_queue`,
    `config_objects`) over the shared core (`base`)."""

    # -- changes ---------------------------------------------------------------------------

    async def archive_changes(self, rows: Sequence[ChangeRow]) -> int:
        """Archive changes read from `certain-changes`; a change_id already archived is ignored.
        Returns rows added.

        The changes were published (they were read from the topic): a row without
        `published_at` gets its `received_at`, and a change the ingest API accepted but had
        not marked published yet is marked now.
        """
        if not rows:
            return 0
        table = ab.changes_table(rows)

        def work(con: Con) -> int:
            with registered(con, "batch", table):
                con.execute(_MARK_ECHOED).fetchall()
                row = first(con.execute(_ARCHIVE_PUBLISHED).fetchall())
            return int(row[0]) if row else 0

        return await self._db.write(work)

    async def accept_changes(
        self,
        rows: Sequence[ChangeRow],
        rejected: Sequence[RejectedRow] = (),
        *,
        also: Callable[[Con], None] | None = None,
    ) -> AcceptedChanges:
        """The ingest outbox: archive changes not yet published (`published_at` as given,
        normally None) and keep rejected input, in one transaction.

        A change_id already archived is left as it is. Returns the rows added and, read back
        in the same transaction, the stored rows of this batch still waiting to be published
        (new ones, and earlier ones whose publication never completed): those are what the
        caller publishes, then passes to `mark_published`. `also` writes in the same
        transaction (the Certain source's watermark and last-seen state).
        """
        if not rows and not rejected and also is None:
            return AcceptedChanges(0, [])
        table = ab.changes_table(rows) if rows else None
        bad = ab.rejected_table(rejected) if rejected else None

        def work(con: Con, *, all_new: bool) -> AcceptedChanges:
            added = 0
            pending: list[ChangeRow] = []
            if table is not None:
                few = table.num_rows <= _INDEX_LOOKUP_IDS
                with registered(con, "batch", table):
                    insert = _ARCHIVE_ALL_NEW if all_new else _ARCHIVE_AS_GIVEN
                    row = first(con.execute(insert).fetchall())
                    added = int(row[0]) if row else 0
                    found = con.execute(_STORED_OF_BATCH if few else _UNPUBLISHED_OF_BATCH)
                    stored = found.fetchall()
                pending = [_change_from_row(r) for r in stored if r[_PUBLISHED_AT] is None]
            if bad is not None:
                insert_arrow(con, bad, _REJECTED_INSERT)
            if also is not None:
                also(con)
            return AcceptedChanges(added, pending)

        distinct = (
            table is not None and pc.count_distinct(table["change_id"]).as_py() == table.num_rows
        )
        return await self._new_first(work, try_new=distinct)

    async def _new_first(self, work: Callable[..., T], *, try_new: bool = True) -> T:
        """`work(con, all_new=True)` in one transaction, taking what it cannot see in the
        ledger as new; when an insert of it failed a key (a batch sent or delivered again, a
        state out of the range looked at) that transaction is rolled back whole and
        `work(con, all_new=False)` runs in another, reading what the ledger has. DuckDB's
        conflict handling costs several times a plain insert and grows with the table, as does
        a look at the whole table, and all but a rare batch are new."""
        if try_new:
            try:
                return await self._db.write(lambda con: work(con, all_new=True))
            except StoreWriteError as error:
                if not isinstance(error.__cause__, duckdb.ConstraintException):
                    raise
        return await self._db.write(lambda con: work(con, all_new=False))

    async def mark_published(self, change_ids: Iterable[str], at: datetime) -> int:
        """Record that the broker acknowledged these changes; rows already marked keep their
        time. Returns the rows marked now."""
        ids = list(dict.fromkeys(change_ids))
        if not ids:
            return 0
        when = utc(at, "at")
        keys = pa.table(
            {
                "change_id": pa.array(ids, type=ab.STR),
                "published_at": pa.nulls(len(ids), ab.CHANGE_COLUMNS["published_at"]),
            }
        )
        sql = _MARK_FEW_PUBLISHED if len(ids) <= _INDEX_LOOKUP_IDS else _MARK_PUBLISHED

        def work(con: Con) -> int:
            with registered(con, "wanted", keys):
                row = first(con.execute(sql, [when]).fetchall())
            return int(row[0]) if row else 0

        return await self._db.write(work)

    async def set_aside_unpublishable(self, rejected: Sequence[RejectedRow]) -> int:
        """Move accepted changes that no publish can clear from the outbox to
        `rejected_changes`, each with its reason, in one transaction; returns how many moved.

        A ledger written before every way in bounded a change's size may hold one; at the head
        of the outbox it failed every publish, and no change behind it was ever published.
        Only a change still unpublished moves (each row names its `change_id`): one the broker
        took meanwhile stays where it is.
        """
        ids = [r.change_id for r in rejected if r.change_id is not None]
        if not ids:
            return 0
        table = ab.rejected_table(rejected)
        keys = pa.table({"change_id": pa.array(ids, type=ab.STR)})

        def work(con: Con) -> int:
            with registered(con, "unpublishable", keys):
                moved = con.execute(_DELETE_UNPUBLISHED).fetchall()
            ids_moved = pa.array([row[0] for row in moved], type=ab.STR)
            if len(ids_moved):
                insert_arrow(
                    con, table.filter(pc.is_in(table["change_id"], ids_moved)), _REJECTED_INSERT
                )
            return len(ids_moved)

        return await self._db.write(work)

    async def unpublished_changes(self, older_than: datetime, limit: int = 1000) -> list[ChangeRow]:
        """Changes accepted by the ingest API that the broker never acknowledged, received at
        or before `older_than`, oldest first (for recovery to publish)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        columns = ", ".join(ab.CHANGE_COLUMNS).replace("payload", "payload::VARCHAR")
        sql = (
            f"SELECT {columns} FROM change_log "
            "WHERE published_at IS NULL AND received_at <= ? "
            "ORDER BY received_at, change_id LIMIT ?"
        )
        params = [utc(older_than, "older_than"), limit]
        rows = await self._db.read(lambda con: con.execute(sql, params).fetchall())
        return [_change_from_row(r) for r in rows]

    async def record_rejected(self, rows: Sequence[RejectedRow]) -> None:
        """Keep invalid input (raw text) with its reasons."""
        if not rows:
            return
        table = ab.rejected_table(rows)
        await self._db.write(lambda con: insert_arrow(con, table, _REJECTED_INSERT))

    async def record_rejected_records(self, rows: Sequence[RejectedRecordRow]) -> None:
        """Keep records of Signal's topics that control could not take, with the reasons. A
        redelivered record (same topic, agent, partition, offset and text) is kept once."""
        if not rows:
            return
        table = ab.rejected_records_table(rows)
        columns = ", ".join(ab.REJECTED_RECORD_COLUMNS)
        sql = (
            f"INSERT INTO rejected_records ({columns}) SELECT {columns} FROM batch b "
            "WHERE b.kafka_offset IS NULL OR NOT EXISTS (SELECT 1 FROM rejected_records r "
            "WHERE r.topic = b.topic AND r.agent = b.agent AND r.payload = b.payload "
            "AND r.kafka_partition IS NOT DISTINCT FROM b.kafka_partition "
            "AND r.kafka_offset = b.kafka_offset)"
        )
        await self._db.write(lambda con: insert_arrow(con, table, sql))

    async def get_changes(self, change_ids: Iterable[str]) -> dict[str, ChangeRow]:
        """Archived changes by id (unknown ids are absent), e.g. to re-drive a retry."""
        ids = list(dict.fromkeys(change_ids))
        if not ids:
            return {}
        keys = pa.table({"change_id": pa.array(ids, type=ab.STR)})
        columns = ", ".join(f"c.{name}" for name in ab.CHANGE_COLUMNS)
        sql = (
            f"SELECT {columns.replace('c.payload', 'c.payload::VARCHAR')} "
            "FROM change_log c JOIN wanted w USING (change_id)"
        )

        def read(con: Con) -> dict[str, ChangeRow]:
            with registered(con, "wanted", keys):
                rows = con.execute(sql).fetchall()
            return {r[0]: _change_from_row(r) for r in rows}

        return await self._db.read(read)

    async def list_changes(
        self,
        *,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
        event_code: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 1000,
    ) -> list[ChangeRow]:
        """Archived changes in (occurred_at, change_id) order, for replays.

        Keyset-paged: pass the last row's (occurred_at, change_id) as `after` for the next page.
        """
        clauses: list[str] = []
        params: list[Any] = []
        if occurred_from is not None:
            clauses.append("occurred_at >= ?")
            params.append(utc(occurred_from, "occurred_from"))
        if occurred_to is not None:
            clauses.append("occurred_at < ?")
            params.append(utc(occurred_to, "occurred_to"))
        if event_code is not None:
            clauses.append("event_code = ?")
            params.append(event_code)
        if after is not None:
            clauses.append("(occurred_at, change_id) > (?, ?)")
            params.extend([utc(after[0], "after"), after[1]])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        columns = ", ".join(ab.CHANGE_COLUMNS).replace("payload", "payload::VARCHAR")
        sql = f"SELECT {columns} FROM change_log {where} ORDER BY occurred_at, change_id LIMIT ?"
        params.append(limit)
        rows = await self._db.read(lambda con: con.execute(sql, params).fetchall())
        return [_change_from_row(r) for r in rows]

    # -- outcomes --------------------------------------------------------------------------

    async def record_outcomes(
        self, rows: Sequence[OutcomeRow], retry_items: Sequence[RetryItem] = ()
    ) -> int:
        """Append attempt rows, update the current state per (change, flow), and upsert retry
        items, all in one transaction.

        A redelivered outcome (same outcome_id) is ignored. The newest final attempt by
        (processed_at, attempt, outcome_id) becomes the pair's state whatever the arrival order;
        a non-failure outcome resolves a retry item recorded before it. A `queued` row (in
        flight) becomes the state only of a pair without state or still queued, and is not
        counted in `attempts`; a final row replaces a queued state whatever its time, so a
        final outcome recorded before its queued row keeps the pair final. A
        `skipped_duplicate` row makes a pair without state or queued delivered (see
        `LEDGER_ONLY_STATUSES`). A replayed row never replaces a delivered state (a lead the
        first delivery created stays created; see `_REPLAY_KEEPS_DELIVERED`).
        Returns the number of attempt rows added.
        """
        if not rows and not retry_items:
            return 0
        unique = list({r.outcome_id: r for r in reversed(rows)}.values())[::-1]
        return await self.record_outcome_batch(
            ab.outcomes_table(unique) if unique else None, retry_items
        )

    async def record_outcome_batch(
        self, table: pa.Table | None, retry_items: Sequence[RetryItem] = ()
    ) -> int:
        """`record_outcomes` for a batch already in Arrow (`OUTCOME_COLUMNS`, each outcome_id
        once): the record agent builds it straight from the decoded records, since a row
        object per outcome cost more than DuckDB's whole share of a batch."""
        if table is not None and table.num_rows == 0:
            table = None
        if table is None and not retry_items:
            return 0
        retries = ab.retry_table(last_per_key(retry_items)) if retry_items else None

        def work(con: Con, *, all_new: bool) -> int:
            new = None if table is None else _unrecorded(con, table)
            if new is not None and new.num_rows == 0:
                new = None
            if new is not None:
                insert_arrow(con, new, _OUTCOME_INSERT)
            statuses = set() if new is None else set(pc.unique(new["status"]).to_pylist())
            if new is not None:
                for statement, rows in _state_statements(new, statuses):
                    _run_state_statement(con, statement, rows, bounded=all_new)
            if retries is not None:
                fresh, stored = _split_by_stored(con, retries, "retry_items")
                if fresh.num_rows:
                    insert_arrow(con, fresh, _RETRY_INSERT)
                if stored.num_rows:
                    _update_stored_retries(con, stored)
            if new is not None and not statuses.isdisjoint(RESOLVING_STATUSES):
                resolving = new.filter(pc.is_in(new["status"], value_set=_RESOLVING))
                _, open_items = _split_by_stored(con, resolving, "retry_items")
                if open_items.num_rows:
                    resolve_retries(con, open_items)
            return 0 if new is None else int(new.num_rows)

        # Every outcome of a change carries the change's occurred_at, so a pair's stored state
        # has the occurred_at of the batch's rows for it, and the lookups of stored pairs read
        # only states of the batch's occurred_at range (`_split_by_stored`). Where a state was
        # written with another (an outcome salvaged from a broken record takes the time it was
        # read; a change sent again with another time), its pair looks new: the plain insert
        # fails the key, the batch is rolled back whole and recorded again reading every state.
        return await self._new_first(work, try_new=table is not None)

    async def retry_items_of(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], RetryItem]:
        """The stored retry items of these (change, flow) pairs, in one read: what the record
        agent plans a batch's retry transitions from. A join with the pairs as an Arrow table,
        not operator SQL with an IN list: the guard parsed a 5,000-literal statement per batch."""
        return await self.retry_items_with(pairs, ())

    async def retry_items_with(
        self, pairs: Iterable[tuple[str, str]], changes: Iterable[str]
    ) -> dict[tuple[str, str], RetryItem]:
        """`retry_items_of` the pairs and of any flow of `changes`, in one read: a record
        standing for many flows of a change (`OutcomeRecord.also`) reads that change's few
        items instead of a key per flow."""
        wanted = list(dict.fromkeys(pairs))
        whole = list(dict.fromkeys(changes))
        if not wanted and not whole:
            return {}
        keys = pa.table(
            {
                "change_id": pa.array([p[0] for p in wanted], type=ab.STR),
                "flow_id": pa.array([p[1] for p in wanted], type=ab.STR),
            }
        )
        of_changes = pa.table({"change_id": pa.array(whole, type=ab.STR)})
        columns = ", ".join(f"r.{c}" for c in ab.RETRY_COLUMNS)
        sql = f"SELECT {columns} FROM retry_items r JOIN wanted w USING (change_id, flow_id)"
        if whole:
            sql += (
                f" UNION SELECT {columns} FROM retry_items r"
                " JOIN wanted_changes c USING (change_id)"
            )

        def read(con: Con) -> list[Any]:
            with registered(con, "wanted", keys), registered(con, "wanted_changes", of_changes):
                return con.execute(sql).fetchall()

        rows = await self._db.read(read)
        items = (RetryItem(**dict(zip(ab.RETRY_COLUMNS, row, strict=True))) for row in rows)
        return {(item.change_id, item.flow_id): item for item in items}

    async def seen(self, change_id: str, flow_id: str) -> bool:
        """Was this (change, flow) already delivered?"""
        return (change_id, flow_id) in await self.seen_many([(change_id, flow_id)])

    async def seen_many(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The subset of (change_id, flow_id) pairs already delivered."""
        wanted = list(dict.fromkeys(pairs))
        if not wanted:
            return set()
        keys = pa.table(
            {
                "change_id": pa.array([p[0] for p in wanted], type=ab.STR),
                "flow_id": pa.array([p[1] for p in wanted], type=ab.STR),
            }
        )

        def read(con: Con) -> set[tuple[str, str]]:
            with registered(con, "wanted", keys):
                rows = con.execute(
                    "SELECT d.change_id, d.flow_id FROM delivery_state d "
                    "JOIN wanted w USING (change_id, flow_id) WHERE d.delivered_at IS NOT NULL"
                ).fetchall()
            return {(str(r[0]), str(r[1])) for r in rows}

        return await self._db.read(read)

    # -- Marketo calls ---------------------------------------------------------------------

    async def record_api_calls(self, rows: Sequence[ApiCallRow]) -> None:
        if not rows:
            return
        table = ab.api_calls_table(rows)
        columns = ", ".join(ab.API_CALL_COLUMNS)
        sql = (
            f"INSERT INTO api_call_log ({columns}, recorded_at) SELECT {columns}, now() FROM batch"
        )
        await self._db.write(lambda con: insert_arrow(con, table, sql))

    # -- operator SQL ----------------------------------------------------------------------

    async def query(
        self, sql: str, *, max_rows: int = 1000, timeout_s: float | None = 30.0
    ) -> QueryResult:
        """Guarded read-only SQL for operators (see `readonly_sql`).

        Raises `SqlRefusedError` (what was refused and why) or `SqlFailedError` (DuckDB's error,
        or the time limit).
        """
        return await self._db.read_isolated(
            lambda cursor: run_read_only(cursor, sql, max_rows=max_rows, timeout_s=timeout_s)
        )

    async def operator_query(
        self,
        sql: str,
        *,
        max_rows: int = 1000,
        timeout_s: float = 30.0,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> tuple[QueryResult, bytes]:
        """An operator's statement (`/sql`): guarded like `query`, on the operators' lane (apart
        from the service's readers), its answer capped at `max_bytes` and encoded as JSON there
        too. Returns the result and its JSON."""

        def work(cursor: Con) -> tuple[QueryResult, bytes]:
            result = run_read_only(
                cursor, sql, max_rows=max_rows, timeout_s=timeout_s, max_bytes=max_bytes
            )
            return result, result.to_json_bytes()

        return await self._db.read_operator(work)
