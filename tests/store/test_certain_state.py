"""The Certain source's ledger state: watermarks and last-seen rows, written in the transaction
that archives the poll's changes, or not at all."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import duckdb
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
    load_bodies,
    load_last_seen,
    load_session_seen,
    load_watermarks,
)
from stream.store.errors import StoreError
from stream.store.schema import MIGRATIONS, migrate
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


async def test_session_rows_and_watermarks_are_kept_apart_from_registrations(store: Store) -> None:
    later = T0 + timedelta(minutes=3)
    keynote = SeenRow(
        "session", "SUMMIT26", "R1", LastSeen(later, "s", "Attended"), session_code="KEYNOTE"
    )
    workshop = SeenRow(
        "session", "SUMMIT26", "R1", LastSeen(T0, "w", "Registered"), session_code="WORKSHOP"
    )
    await commit_poll(store, PollCommit(KEY, seen=[seen("R1")], watermarks={"SUMMIT26": T0}))
    await commit_poll(
        store,
        PollCommit(
            KEY, seen=[keynote, workshop], watermarks={"SUMMIT26": later}, stream="sessions"
        ),
    )
    assert await load_watermarks(store, KEY) == {"SUMMIT26": T0}
    assert await load_watermarks(store, KEY, "sessions") == {"SUMMIT26": later}
    found = await load_session_seen(
        store, KEY, "SUMMIT26", [("R1", "KEYNOTE"), ("R1", "WORKSHOP"), ("R1", "NONE")]
    )
    assert found == {
        ("R1", "KEYNOTE"): LastSeen(later, "s", "Attended"),
        ("R1", "WORKSHOP"): LastSeen(T0, "w", "Registered"),
    }
    registrations = await load_last_seen(store, KEY, "registration", "SUMMIT26", ["R1"])
    assert registrations == {"R1": LastSeen(T0, "d", "New")}


async def test_a_registration_body_is_kept_with_its_last_seen_row(store: Store) -> None:
    with_body = dataclasses.replace(seen("R1"), body='{"registrationCode":"R1"}')
    await commit_poll(store, PollCommit(KEY, seen=[with_body, seen("R2")]))
    assert await load_bodies(store, KEY, "SUMMIT26", ["R1", "R2", "R3"]) == {
        "R1": '{"registrationCode":"R1"}'
    }
    assert await load_bodies(store, KEY, "OTHER", ["R1"]) == {}


def test_migration_9_keeps_the_state_of_migration_6(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    migrate(con, [m for m in MIGRATIONS if m.version < 9])
    con.execute(
        "INSERT INTO certain_watermarks VALUES ('acme', 'ACME', 'SUMMIT26', ?, ?)", [T0, T0]
    )
    con.execute(
        "INSERT INTO certain_last_seen VALUES "
        "('acme', 'ACME', 'registration', 'SUMMIT26', 'R1', 'New', ?, 'd', ?)",
        [T0, T0],
    )
    assert migrate(con) == [m.version for m in MIGRATIONS if m.version >= 9]
    marks = con.execute("SELECT event_code, stream, watermark FROM certain_watermarks")
    assert marks.fetchall() == [("SUMMIT26", "registrations", T0)]
    rows = con.execute(
        "SELECT kind, code, session_code, status, digest, body FROM certain_last_seen"
    )
    assert rows.fetchall() == [("registration", "R1", "", "New", "d", None)]
    # The new key takes a session row beside the registration's, and refuses a repeat.
    con.execute(
        "INSERT INTO certain_last_seen VALUES "
        "('acme', 'ACME', 'session', 'SUMMIT26', 'R1', 'KEYNOTE', 'Registered', ?, 's', NULL, ?)",
        [T0, T0],
    )
    with pytest.raises(duckdb.ConstraintException):
        con.execute(
            "INSERT INTO certain_last_seen VALUES ('acme', 'ACME', 'session', 'SUMMIT26', "
            "'R1', 'KEYNOTE', 'Attended', ?, 's', NULL, ?)",
            [T0, T0],
        )
    con.close()
