"""Where rows lie in the DuckDB file, and getting the old bytes of erased rows out of it.

DuckDB stores a table as row groups (122,880 rows) of column segments, each in a 256 KiB block
of the file. Checkpointing a row group's column that has updates writes the whole column of that
row group anew and frees the old segment; deleted rows stay in their row group, their values
carried into every segment written anew, until the whole group is dropped. A freed block
keeps its bytes until something is written there, and small segments share a block: when one
of them is written anew, its old bytes stay in the block as long as any other segment lives
there (`PRAGMA storage_info` shows them side by side at different offsets).

So an erasure notes the blocks that held the person's values (`note_blocks`, in its
transaction, before it changes them, in the ledger so that a restart finishes the scrub of an
erasure whose control was killed before it ended), and after the checkpoint `seal_blocks`
moves every other segment still living in those blocks: a column changed and restored in one
transaction (an update to the same value is skipped by DuckDB and rewrites nothing), or, for a
key column or a list that DuckDB cannot update in place, the row group's rows deleted and
inserted again. The
blocks are then free, and `scrub_free_blocks` writes random text over every free block.
Last, `find_in_file` searches the file's bytes for the person's emails and phones, for a copy
no step knew of (a row of theirs deleted before); the caller moves what it finds with its row
groups inserted again and scrubs once more.
"""

from __future__ import annotations

import bisect
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from stream.store.writer import Con

log = logging.getLogger(__name__)

PENDING = "erasure_scrubs"
"""The blocks each erasure noted, kept in the ledger from the erasure's transaction until its
scrub ends (`stream.store.migrations`, v11): a control killed in between finishes the scrub at
its next start. Block ids only, never the person's texts."""
NEEDLES = "temp.erasure_needles"
"""The texts the search of the file after the scrub looks for: the person's, so only in memory
on the writer's connection (a temporary table, never in the file), dropped by the scrub. A scrub
finished after a restart has none and moves and scrubs without searching."""
SEAL_ROUNDS = 4
"""Moving segments out of a block writes them into fresh blocks, which a next round never needs
to move again; more rounds than a few would mean something else keeps the block."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One column segment of a persistent row group, with absolute rowids."""

    table: str
    column: str
    group_lo: int
    group_hi: int
    lo: int
    hi: int
    validity: bool
    blocks: tuple[int, ...]
    offset: int = 0
    """Where in its first block the segment starts."""
    count: int = 0

    @property
    def place(self) -> tuple[str, str, bool, tuple[int, ...], int, int]:
        """The segment as stored, whatever the rowids of its row group become once a
        checkpoint drops the groups before it."""
        return (self.table, self.column, self.validity, self.blocks, self.offset, self.count)


def segments(con: Con, table: str) -> list[Segment]:
    """The table's persistent segments that occupy blocks, from `pragma_storage_info`."""
    rows = con.execute(
        "SELECT row_group_id, column_name, column_path, segment_type, start, count, block_id, "
        "additional_block_ids, block_offset FROM pragma_storage_info(?) WHERE persistent "
        "ORDER BY row_group_id",
        [table],
    ).fetchall()
    sizes: dict[int, int] = {}
    for group, _name, path, _kind, start, count, _block, _more, _offset in rows:
        if path == "[0]":
            sizes[int(group)] = max(sizes.get(int(group), 0), int(start) + int(count))
    starts: dict[int, int] = {}
    at = 0
    for group in sorted(sizes):
        starts[group] = at
        at += sizes[group]
    found: list[Segment] = []
    for group, name, _path, kind, start, count, block, more, offset in rows:
        blocks = tuple(int(b) for b in [block, *(more or [])] if b is not None and int(b) >= 0)
        if not blocks or int(group) not in starts:
            continue
        lo = starts[int(group)] + int(start)
        found.append(
            Segment(
                table,
                str(name),
                starts[int(group)],
                starts[int(group)] + sizes[int(group)],
                lo,
                lo + int(count),
                kind == "VALIDITY",
                blocks,
                int(offset or 0),
                int(count),
            )
        )
    return found


def row_group_ranges(con: Con, table: str) -> list[tuple[int, int]]:
    """[lo, hi) rowids of the table's persistent row groups, in order."""
    return sorted({(s.group_lo, s.group_hi) for s in segments(con, table)})


def blocks_holding(
    layout: Iterable[Segment], rowids: Sequence[int], columns: Iterable[str] | None
) -> set[int]:
    """Blocks of the data segments of `columns` (every column when None) that hold any of
    the sorted `rowids`."""
    wanted = None if columns is None else set(columns)
    held: set[int] = set()
    for segment in layout:
        if segment.validity or (wanted is not None and segment.column not in wanted):
            continue
        i = bisect.bisect_left(rowids, segment.lo)
        if i < len(rowids) and rowids[i] < segment.hi:
            held.update(segment.blocks)
    return held


def note_blocks(con: Con, blocks: Iterable[int], needles: Iterable[str] = ()) -> str:
    """Keep `blocks` for `seal_blocks` in the ledger, and the texts `find_in_file` looks for
    after the scrub in memory (in the caller's transaction: gone if it rolls back). Returns the
    note's id."""
    scrub_id = uuid.uuid4().hex
    con.execute(
        f"INSERT INTO {PENDING} (id, noted_at, blocks) VALUES (?, now(), ?::BIGINT[])",
        [scrub_id, sorted(set(blocks))],
    )
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {NEEDLES.removeprefix('temp.')} (needle VARCHAR)")
    texts = sorted(set(needles) - {""})
    if texts:
        con.execute(f"INSERT INTO {NEEDLES} SELECT unnest(?::VARCHAR[])", [texts])
    return scrub_id


@dataclass(frozen=True, slots=True)
class PendingScrub:
    id: str
    audit_id: str | None
    blocks: frozenset[int]


def pending_scrubs(con: Con) -> list[PendingScrub]:
    """The erasures whose scrub has not ended, oldest first."""
    rows = con.execute(
        f"SELECT id, audit_id, blocks FROM {PENDING} ORDER BY noted_at, id"
    ).fetchall()
    return [
        PendingScrub(
            str(r[0]), None if r[1] is None else str(r[1]), frozenset(int(b) for b in r[2])
        )
        for r in rows
    ]


def noted_blocks(con: Con) -> set[int] | None:
    """The blocks the erasures not yet scrubbed noted; None when there are none."""
    pending = pending_scrubs(con)
    if not pending:
        return None
    return {b for p in pending for b in p.blocks}


def noted_needles(con: Con) -> list[str]:
    if not _has_needles(con):
        return []
    return [str(r[0]) for r in con.execute(f"SELECT DISTINCT needle FROM {NEEDLES}").fetchall()]


def _has_needles(con: Con) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'temp' AND table_name = ?",
        [NEEDLES.removeprefix("temp.")],
    ).fetchall()
    return bool(rows[0][0])


def forget_blocks(con: Con, ids: Iterable[str] | None = None) -> None:
    """Drop the notes `ids` (every note when None) and the texts to search for."""
    if ids is None:
        con.execute(f"DELETE FROM {PENDING}")
    else:
        con.execute(f"DELETE FROM {PENDING} WHERE list_contains(?, id)", [sorted(ids)])
    con.execute(f"DROP TABLE IF EXISTS {NEEDLES}")


HEADER_BYTES = 3 * 4096
"""DuckDB's file starts with a main header and two database headers of 4 KiB; block n follows
at HEADER_BYTES + n * block size."""
SCAN_CHUNK = 16 * 1024 * 1024


def find_in_file(con: Con, needles: Sequence[str]) -> set[int]:
    """Blocks of the database file whose bytes hold any of `needles`, read straight from the
    file in chunks; -1 stands for the headers and the WAL. Byte for byte: ignoring case would
    mean lowering every chunk, 13 s instead of 3 s on a 3 GB file. What is stored compressed
    is not found this way: it is the check the byte-searching tests make, done where the ledger
    is, so an old copy in a block no erasure step knew of can be moved out too."""
    wanted = sorted({n.encode() for n in needles if n})
    if not wanted:
        return set()
    path = Path(
        str(
            con.execute(
                "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
            ).fetchall()[0][0]
        )
    )
    block_size = free_blocks(con)[1]
    found = {-1 for _ in _offsets(Path(f"{path}.wal"), wanted)}
    for offset in _offsets(path, wanted):
        found.add(-1 if offset < HEADER_BYTES else (offset - HEADER_BYTES) // block_size)
    return found


def _offsets(path: Path, needles: list[bytes]) -> Iterator[int]:
    if not path.exists():
        return
    keep = max(len(n) for n in needles) - 1
    with path.open("rb") as file:
        tail, at = b"", 0
        while chunk := file.read(SCAN_CHUNK):
            data = tail + chunk
            start = at - len(tail)
            for needle in needles:
                i = data.find(needle)
                while i >= 0:
                    yield start + i
                    i = data.find(needle, i + 1)
            tail = data[-keep:] if keep else b""
            at += len(chunk)


@dataclass(frozen=True, slots=True)
class Sealing:
    """What `seal_blocks` moved: columns of row groups changed and restored, row groups whose
    rows were inserted again, and blocks still shared after the last round (0 when sealed)."""

    columns: int = 0
    row_groups: int = 0
    rounds: int = 0
    left: int = 0


def seal_blocks(con: Con, held: set[int], *, rows: bool = False) -> Sealing:
    """Move every segment out of the `held` blocks, checkpointing after each round, so that
    they become free blocks (outside a transaction, after the erasure's CHECKPOINT). With
    `rows`, every row group found there has its rows inserted again: a column written anew
    keeps the values of the group's deleted rows, which only dropping the group removes.
    Once per erasure: later checkpoints reuse the freed blocks for fresh segments, which a
    second call would move again for nothing."""
    columns = groups = 0
    moving: set[tuple[str, str, bool, tuple[int, ...], int, int]] | None = None
    for rounds in range(SEAL_ROUNDS + 1):
        occupants = [
            s for table in _tables(con) for s in segments(con, table) if held & set(s.blocks)
        ]
        if moving is not None:
            # Only what the last round failed to move: any other segment there now is fresh,
            # written by that round's checkpoint into a block it freed (rows inserted again
            # land in the blocks their old group left), and a block is written whole, so none
            # of the old bytes stay beside it. Moving those again would go on for ever (on
            # 10M outcomes: 4 rounds of retry item groups, 10 s each, and 15 blocks "left").
            occupants = [s for s in occupants if s.place in moving]
        # A block vacated by a round is free: the scrub overwrites it, or a later checkpoint
        # reuses it for fresh segments, which need no moving.
        held = {b for s in occupants for b in s.blocks if b in held}
        if not occupants or rounds == SEAL_ROUNDS:
            break
        moving = {s.place for s in occupants}
        by_group: dict[tuple[str, int, int], set[str]] = {}
        for s in occupants:
            by_group.setdefault((s.table, s.group_lo, s.group_hi), set()).add(s.column)
        for (table, lo, hi), names in sorted(by_group.items()):
            types = column_types(con, table)
            fixed = key_columns(con, table)
            try:
                if rows or any(name in fixed or not _changeable(types[name]) for name in names):
                    _insert_again(con, table, lo, hi)
                    groups += 1
                else:
                    columns += _change_and_restore(con, table, lo, hi, {n: types[n] for n in names})
            except duckdb.Error as error:  # a write beside it (the delivery marks' lane)
                log.warning("ledger: moving %s rows %d-%d failed: %s", table, lo, hi, error)
        con.execute("FORCE CHECKPOINT")
    if held:
        log.warning("ledger: %d erased blocks are still shared after %d rounds", len(held), rounds)
    return Sealing(columns, groups, rounds, len(held))


def _tables(con: Con) -> list[str]:
    return [
        str(r[0])
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' ORDER BY 1"
        ).fetchall()
    ]


def column_types(con: Con, table: str) -> dict[str, str]:
    return {
        str(r[0]): str(r[1])
        for r in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' "
            "AND table_name = ?",
            [table],
        ).fetchall()
    }


def key_columns(con: Con, table: str) -> set[str]:
    """Columns of a primary key, unique constraint or index: DuckDB updates them as a delete
    and an insert, which moves the row instead of rewriting its segment."""
    rows = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ? "
        "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
        [table],
    ).fetchall()
    names = {str(n) for r in rows for n in r[0]}
    indexed = con.execute(
        "SELECT expressions FROM duckdb_indexes() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ?",
        [table],
    ).fetchall()
    for (expressions,) in indexed:
        names.update(str(e).strip('"') for e in (expressions or []))
    return names


_CHANGE: dict[str, tuple[str, str]] = {
    # type: (a different value of a non-NULL {c}, a value for a NULL {c})
    "VARCHAR": ("{c} || ' '", "''"),
    "JSON": ("({c}::VARCHAR || ' ')::JSON", "'null'::JSON"),
    "BOOLEAN": ("NOT {c}", "false"),
    "TIMESTAMP WITH TIME ZONE": ("{c} + INTERVAL 1 DAY", "now()"),
    "TIMESTAMP": ("{c} + INTERVAL 1 DAY", "now()::TIMESTAMP"),
    "DATE": ("{c} + 1", "current_date"),
    **{
        t: ("{c} + 1", "0") for t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "DOUBLE", "FLOAT")
    },
}


def _changeable(data_type: str) -> bool:
    return data_type in _CHANGE


def _change_and_restore(con: Con, table: str, lo: int, hi: int, columns: dict[str, str]) -> int:
    """Update one live row's `columns` to other values and back in one transaction: the row
    group's columns then hold updates and are written anew at the next checkpoint."""
    names = sorted(columns)
    quoted = ", ".join(f'"{n}"' for n in names)
    rows = con.execute(
        f"SELECT rowid, {quoted} FROM {table} WHERE rowid >= ? AND rowid < ? LIMIT 1", [lo, hi]
    ).fetchall()
    if not rows:  # every row of the group is deleted: the checkpoint drops the group
        return 0
    rowid, *values = rows[0]
    change = ", ".join(f'"{n}" = {_other_value(n, columns[n])}' for n in names)
    restore = ", ".join(f'"{n}" = ?::{columns[n]}' for n in names)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"UPDATE {table} SET {change} WHERE rowid = ?", [rowid])
        con.execute(f"UPDATE {table} SET {restore} WHERE rowid = ?", [*values, rowid])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return len(names)


def _other_value(name: str, data_type: str) -> str:
    other, for_null = _CHANGE[data_type]
    column = f'"{name}"'
    return f"CASE WHEN {column} IS NULL THEN {for_null} ELSE {other.format(c=column)} END"


def _insert_again(con: Con, table: str, lo: int, hi: int) -> None:
    """Delete the row group's rows and insert them again, in one transaction: the emptied group
    is dropped at the next checkpoint with its segments (slow on a keyed table: DuckDB deletes
    each key from its index, some 70 µs a row)."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DROP TABLE IF EXISTS temp.erasure_move")
        con.execute(
            f"CREATE TEMP TABLE erasure_move AS SELECT * FROM {table} "
            "WHERE rowid >= ? AND rowid < ?",
            [lo, hi],
        )
        con.execute(f"DELETE FROM {table} WHERE rowid >= ? AND rowid < ?", [lo, hi])
        con.execute(f"INSERT INTO {table} SELECT * FROM temp.erasure_move")
        con.execute("DROP TABLE temp.erasure_move")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def scrub_free_blocks(con: Con, rounds: int = 3) -> int:
    """Overwrite the file's free blocks (which keep the bytes of what was freed) with random
    text, then free them again; outside a transaction, after a CHECKPOINT. Returns the free
    blocks found first."""
    first = free_blocks(con)[0]
    for _ in range(rounds):
        free, block_size = free_blocks(con)
        if free == 0:
            break
        con.execute(
            "CREATE OR REPLACE TABLE erase_scrub AS SELECT md5(random()::VARCHAR) || "
            "md5(random()::VARCHAR) AS x FROM range(?)",
            [free * block_size // 40 + 1000],
        )
        con.execute("FORCE CHECKPOINT")
        left = free_blocks(con)[0]
        con.execute("DROP TABLE erase_scrub")
        con.execute("FORCE CHECKPOINT")
        if left == 0:
            break
    return first


def free_blocks(con: Con) -> tuple[int, int]:
    """(free blocks, block size) of the file."""
    row = con.execute(
        "SELECT free_blocks, block_size FROM pragma_database_size() LIMIT 1"
    ).fetchall()[0]
    return int(row[0]), int(row[1])
