"""The ledger's record of replays (table `replays`), so a replay outlives the control process
that started it.

A replay publishes the archived changes of its scope in (occurred_at, change_id) order, chunk by
chunk (`stream.control.replay`). After each chunk the broker acknowledged, its progress is saved
here: the counters and `after`, the (occurred_at, change_id) up to which every change in scope
was published. A control that restarts reads the replays still `publishing` and resumes each
after its `after`: at most the chunk published after the last save goes out again, and its
pairs carry the same replay id, so the pipeline's delivered keys skip what it delivered already.

Writes go through the store's writer (one small transaction per save); reads on a reader.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from datetime import datetime

from stream.store.rows import utc
from stream.store.store import Store
from stream.store.writer import Con

__all__ = ["ReplayRecord", "load_replays", "save_replay"]


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """One row of `replays`: a replay's scope, who started it, its publishing state and
    counters, and how far it got."""

    id: str
    flow_id: str
    occurred_from: datetime | None
    occurred_to: datetime | None
    event_code: str | None
    only_undelivered: bool
    actor: str
    started_at: datetime
    publishing: str
    scanned: int
    in_scope: int
    published: int
    unreadable: int
    skipped_delivered: int
    after_occurred_at: datetime | None
    after_change_id: str | None
    finished_at: datetime | None
    cancelled_by: str | None
    error: str | None
    resumes: int
    updated_at: datetime


_COLUMNS = [f.name for f in fields(ReplayRecord)]
_UPSERT = f"""
    INSERT INTO replays ({", ".join(_COLUMNS)})
    VALUES ({", ".join("?" for _ in _COLUMNS)})
    ON CONFLICT (id) DO UPDATE SET
        {", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "id")}
"""
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM replays ORDER BY started_at, id"


async def save_replay(store: Store, record: ReplayRecord) -> None:
    """Insert or update the replay's row (one transaction)."""
    values = list(astuple(record))
    values[_COLUMNS.index("updated_at")] = utc(record.updated_at, "updated_at")

    def work(con: Con) -> None:
        con.execute(_UPSERT, values).fetchall()

    await store.write(work)


async def load_replays(store: Store) -> list[ReplayRecord]:
    """Every replay the ledger knows, oldest first."""

    def read(con: Con) -> list[ReplayRecord]:
        return [ReplayRecord(*row) for row in con.execute(_SELECT).fetchall()]

    return await store.read(read)
