"""The Certain source's ledger state: watermarks and last-seen rows, written in the transaction
that archives the poll's changes, or not at all."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from stream.certain.poll_diff import LastSeen
from stream.store import RejectedRow, Store
from stream.store.certain_state import (
    EVENT_LIST,
    PollCommit,
    SeenRow,
    SourceKey,
    commit_poll,
    forget_source,
    load_last_seen,
    load_watermarks,
)
from stream.store.errors import StoreError
from tests.store.conftest import T0, change

KEY = SourceKey("acme", "ACME")


def seen(code: str, minutes: int = 0, status: str = "New") -> SeenRow:
    return SeenRow(
        "registration", "SUMMIT26", code, LastSeen(T0 + timedelta(minutes=minutes), "d", status)
    )


async def test_changes_state_and_watermark_commit_together(store: Store) -> None:
    row = dataclasses.replace(change("c1"), source="poll", published_at=None)
    bad = RejectedRow(T0, ("dateModified: expected a timestamp, got 'x'",), "{}", source="poll")
    result = await commit_poll(
        store,
        PollCommit(KEY, [row], [bad], [seen("R1")], {"SUMMIT26": T0, EVENT_LIST: T0}),
    )
    assert [r.change_id for r in result.unpublished] == ["c1"]
    assert await load_watermarks(store, KEY) == {"SUMMIT26": T0, EVENT_LIST: T0}
    assert await load_last_seen(store, KEY, "registration", "SUMMIT26", ["R1", "R2"]) == {
        "R1": LastSeen(T0, "d", "New")
    }
    sources = await store.query("SELECT source FROM changes")
    assert sources.rows == (("poll",),)
    rejected = await store.query("SELECT source, reasons FROM rejected_changes")
    assert rejected.rows[0][0] == "poll"


async def test_last_seen_is_replaced_and_watermarks_only_move_forward(store: Store) -> None:
    later = T0 + timedelta(minutes=5)
    await commit_poll(store, PollCommit(KEY, seen=[seen("R1")], watermarks={"SUMMIT26": later}))
    await commit_poll(
        store,
        PollCommit(KEY, seen=[seen("R1", 5, "Attended")], watermarks={"SUMMIT26": T0}),
    )
    assert await load_watermarks(store, KEY) == {"SUMMIT26": later}
    assert await load_last_seen(store, KEY, "registration", "SUMMIT26", ["R1"]) == {
        "R1": LastSeen(later, "d", "Attended")
    }


async def test_the_same_record_twice_in_one_page_keeps_the_newer(store: Store) -> None:
    await commit_poll(store, PollCommit(KEY, seen=[seen("R1", 3, "Attended"), seen("R1", 1)]))
    found = await load_last_seen(store, KEY, "registration", "SUMMIT26", ["R1"])
    assert found["R1"].status == "Attended"


async def test_state_is_per_source_and_account(store: Store) -> None:
    await commit_poll(store, PollCommit(KEY, seen=[seen("R1")], watermarks={"SUMMIT26": T0}))
    other = SourceKey("acme", "OTHER")
    assert await load_watermarks(store, other) == {}
    assert await load_last_seen(store, other, "registration", "SUMMIT26", ["R1"]) == {}
    await forget_source(store, "acme")
    assert await load_watermarks(store, KEY) == {}


async def test_a_failed_state_write_leaves_no_change_behind(store: Store) -> None:
    await store.write(lambda con: con.execute("DROP TABLE certain_last_seen"))
    row = dataclasses.replace(change("c2"), source="poll", published_at=None)
    with pytest.raises(StoreError):
        await commit_poll(store, PollCommit(KEY, [row], seen=[seen("R2")]))
    archived = await store.query("SELECT count(*) FROM changes")
    assert archived.rows == ((0,),)
