"""Which part of a window the dashboards read from the live rollups and which from the ledger.

The live rollups (`stream.store.rollup_fold`) hold whole hours, so they serve windows charted in
buckets of an hour or more (24 h and longer: every such bucket is a run of whole hours aligned
to the epoch). Of such a window, the *clean* hours (folded, wholly inside it, and not touched by
a write since the last fold) come from the rollups; every other instant (the partial hours at
its edges, the hours not folded yet, the dirty ones) is read from the ledger's rows as before.
Both parts are disjoint and cover the window, so a sum is the sum of both and a distinct count
is the count of the union of both parts' keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from stream.metrics.definitions import Window
from stream.store import rollup_fold as fold
from stream.store.base import first
from stream.store.writer import Con

T = TypeVar("T")

ENABLED = True
"""False: every window is read from the ledger alone (benchmarks compare both ways)."""


@dataclass(frozen=True, slots=True)
class Split:
    clean: list[tuple[datetime, datetime]]
    """Runs of clean hours, read from the live rollups."""
    raw: list[tuple[datetime, datetime]]
    """The rest of the window, read from the ledger."""

    def rollup_condition(self, column: str = "hour") -> tuple[str, list[Any]]:
        return fold.range_condition(column, self.clean)

    def numbered(self) -> list[tuple[int, int]]:
        """`clean` as hours counted from the epoch (`live_keys.hour`)."""
        return [(fold.hour_number(lo), fold.hour_number(hi)) for lo, hi in self.clean]

    def raw_condition(self, column: str = "processed_at") -> tuple[str, list[Any]]:
        return fold.range_condition(column, self.raw)


def whole(start: datetime, end: datetime) -> Split:
    return Split([], [(start, end)])


def split(con: Con, window: Window) -> Split:
    """The window's clean hours and the rest (all of it when its buckets are under an hour)."""
    return split_range(con, window.start, window.end, hourly=window.bucket >= fold.HOUR)


def split_range(con: Con, start: datetime, end: datetime, *, hourly: bool = True) -> Split:
    lo, hi = fold.ceil_hour(start), fold.floor_hour(end)
    if not hourly or lo >= hi or not ENABLED:
        return whole(start, end)
    clean = fold.runs(fold.clean_hours(con, lo, hi))
    raw: list[tuple[datetime, datetime]] = []
    at = start
    for a, b in clean:
        if at < a:
            raw.append((at, a))
        at = b
    if at < end:
        raw.append((at, end))
    return Split(clean, raw)


def all_time(con: Con) -> tuple[Split, str, list[Any]]:
    """Every instant split as `split` does a window (for all-time figures, the scrape's): the
    clean hours, and an SQL condition on `processed_at` (with its parameters) for the rest,
    before, between and after them."""
    if not ENABLED:
        return whole(fold.EPOCH, fold.EPOCH), "true", []
    row = first(con.execute("SELECT min(hour), max(hour) FROM live_hours").fetchall())
    if row is None or row[0] is None:
        return whole(fold.EPOCH, fold.EPOCH), "true", []
    lo, hi = row[0], row[1] + fold.HOUR
    parts = split_range(con, lo, hi)
    inside, params = parts.raw_condition()
    return (
        parts,
        f"(processed_at < ? OR processed_at >= ? OR {inside})",
        [lo, hi, *params],
    )


def one_snapshot(con: Con, work: Callable[[Con], T]) -> T:
    """`work`'s statements in one read transaction: the clean hours it splits by and the rows and
    rollups it then reads are of the same moment. Read one statement at a time, a fold committed
    in between could refold an hour the split found clean with writes the rows part then misses,
    and a counter read so could step back for one scrape."""
    con.execute("BEGIN TRANSACTION")
    try:
        return work(con)
    finally:
        con.execute("ROLLBACK")
