"""Erasing a person from ledger tables among other people's rows, on a real DuckDB file: the
person's values sit in small column segments that share a 256 KiB block with columns the erasure
does not change; after the erasure, its checkpoint and the scrub, the file holds no byte of their
email or phone, and every other row is as it was.

The crowd is `crowd.SMALL` rows, one row group: every test here fails as it does among full row
groups of 125,000 rows when the moving of shared segments, the row groups' insert or the search
of the file is taken out (see tests/support/crowd.py), at a tenth of the CPU."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from stream.store import Store, file_blocks
from stream.store.person import (
    PersonError,
    Selector,
    audit_erasure,
    erase_person,
    finish_erasures,
    scrub_free_blocks,
)
from stream.store.writer import Con
from tests.store.conftest import T0, change
from tests.support.changes import change_row, registration_json
from tests.support.crowd import SMALL, Someone, add_crowd


async def _seed(store: Store, person: Someone) -> int:
    """Other people's rows around the person's: their failure quotes their email in
    delivery_state (redacted) and retry_items (deleted). Returns the rowid of the person's."""
    data = registration_json(
        "erasee-1", code=person.code, email=person.email, profile={"phone": person.phone}
    )
    await store.archive_changes([dataclasses.replace(change_row(data), received_at=T0)])
    await store.archive_changes([change(f"other-{i}") for i in range(3)])
    reason = f"Marketo refused {person.email}"
    mine = await store.write(lambda con: add_crowd(con, "erasee-1", reason, T0, rows=SMALL))
    await store.checkpoint()
    return mine


def _file_bytes(path: Path) -> bytes:
    wal = Path(f"{path}.wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


async def _others(store: Store) -> list[Any]:
    """A digest of everyone else's rows."""

    def read(con: Con) -> list[Any]:
        return [
            con.execute(
                f"SELECT count(*), sum(hash(t)) FROM {table} t WHERE change_id <> 'erasee-1'"
            ).fetchall()[0]
            for table in ("delivery_state", "retry_items", "change_log")
        ]

    return await store.read(read)


async def _shared_reason_blocks(store: Store, mine: int) -> set[str]:
    """Columns other than `reason` whose segments share a block with delivery_state's reason
    segment of the row group holding rowid `mine`."""

    def read(con: Con) -> set[str]:
        layout = file_blocks.segments(con, "delivery_state")
        held = file_blocks.blocks_holding(layout, [mine], ["reason"])
        return {s.column for s in layout if set(s.blocks) & held} - {"reason"}

    return await store.read(read)


async def _scrub(store: Store) -> int:
    def scrub(con: Con) -> int:
        con.execute("FORCE CHECKPOINT")
        return scrub_free_blocks(con)

    return await store.write_raw(scrub)


async def _erase(store: Store, person: Someone) -> dict[str, Any]:
    report = await store.write(lambda con: erase_person(con, Selector(email=person.email)))
    await _scrub(store)
    return report.to_dict()


async def test_erasure_leaves_no_bytes_in_blocks_shared_with_other_columns(
    store: Store, db_path: Path
) -> None:
    person = Someone.make()
    mine = await _seed(store, person)
    before = _file_bytes(db_path)
    assert all(s in before for s in person.secrets), "the search must find them while there"
    shared = await _shared_reason_blocks(store, mine)
    assert shared - {"registration_code", "marketo_lead_id"}, "columns erasure keeps share it"
    others = await _others(store)

    report = await _erase(store, person)

    assert report["touched"]["delivery_state"]["redacted"] == 1
    assert report["touched"]["retry_items"]["deleted"] == 1
    assert report["touched"]["delivery_state"]["rewritten"] == SMALL, "the whole row group"
    after = _file_bytes(db_path)
    for secret in person.secrets:
        assert secret not in after, f"{secret!r} is still in the ledger's file or WAL"
    assert await _others(store) == others, "everyone else's rows stay as they were"

    def left(con: Con) -> list[Any]:
        return con.execute(
            "SELECT reason, registration_code FROM delivery_state WHERE change_id = 'erasee-1'"
        ).fetchall()

    assert await store.read(left) == [("[erased]", None)]
    assert await store.write_raw(file_blocks.noted_blocks) is None, "the note goes with the scrub"


async def test_a_failed_erasure_notes_nothing_and_changes_nothing(store: Store) -> None:
    person = Someone.make()
    await _seed(store, person)
    others = await _others(store)

    def erase_then_fail(con: Con) -> None:
        erase_person(con, Selector(email=person.email))
        raise RuntimeError("the audit row could not be written")

    with pytest.raises(RuntimeError):
        await store.write(erase_then_fail)
    assert await store.write_raw(file_blocks.noted_blocks) is None
    assert await _others(store) == others

    with pytest.raises(PersonError, match="holds nothing"):
        await store.write(lambda con: erase_person(con, Selector(email="nobody@example.org")))
    # A scrub without an erasure before it only overwrites free blocks.
    assert await store.write_raw(scrub_free_blocks) >= 0
    report = await _erase(store, person)
    assert report["touched"]["retry_items"]["deleted"] == 1


async def test_without_moving_the_sharers_the_old_bytes_stay(store: Store, db_path: Path) -> None:
    """Why the erasure moves other segments: checkpoint and scrub alone leave the old reason
    segment's bytes in its block, which the untouched columns keep in use."""
    person = Someone.make()
    await _seed(store, person)
    await store.write(lambda con: erase_person(con, Selector(email=person.email)))

    def scrub_only(con: Con) -> None:
        con.execute("FORCE CHECKPOINT")
        file_blocks.forget_blocks(con)
        scrub_free_blocks(con)

    await store.write_raw(scrub_only)
    assert person.email.encode() in _file_bytes(db_path)


async def test_sealing_moves_key_and_plain_columns_out_of_a_block(store: Store) -> None:
    """A block holding a key column's segment empties by the row group's rows inserted again,
    one holding only plain columns by a change and restore; every row stays as it was."""
    mine = await _seed(store, Someone.make())
    others = await _others(store)

    def blocks_of(con: Con) -> set[int]:
        layout = file_blocks.segments(con, "delivery_state")
        return file_blocks.blocks_holding(layout, [mine], ["flow_id", "status"])

    held = await store.read(blocks_of)
    assert held

    def seal(con: Con) -> file_blocks.Sealing:
        return file_blocks.seal_blocks(con, held)

    sealing = await store.write_raw(seal)
    assert sealing.row_groups >= 1 and sealing.left == 0, sealing

    def used(con: Con) -> set[int]:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {b for t in tables for s in file_blocks.segments(con, t) for b in s.blocks}

    assert not held & await store.read(used)
    assert await _others(store) == others


async def test_a_row_deleted_before_is_found_by_searching_the_file(
    store: Store, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The person's retry item was deleted before the erasure (as retention drops resolved
    ones): no row of theirs is left in the table, but DuckDB keeps the deleted row's values in
    its row group. The search of the file after the scrub finds them there, and the row group
    is inserted again, which drops them."""
    person = Someone.make()
    await _seed(store, person)

    def resolved(con: Con) -> None:
        con.execute("DELETE FROM retry_items WHERE change_id = 'erasee-1'")

    await store.write(resolved)
    await store.checkpoint()
    assert person.email.encode() in _file_bytes(db_path), "a copy no row points to"

    with caplog.at_level(logging.WARNING, logger="stream.store.person"):
        report = await _erase(store, person)
    assert "retry_items" not in report["touched"]
    assert person.email.encode() not in _file_bytes(db_path)
    assert "erased text found again" in caplog.text
    assert "still in" not in caplog.text
    assert person.email not in caplog.text


async def test_the_ledger_notes_blocks_never_the_person(store: Store) -> None:
    """The note that survives a crash holds block ids and the audit id, nothing of the person's;
    the texts to search for stay in the writer's memory."""
    person = Someone.make()
    await _seed(store, person)
    report = await store.write(lambda con: erase_person(con, Selector(email=person.email)))

    def note(con: Con) -> list[Any]:
        return con.execute("SELECT * FROM erasure_scrubs").fetchall()

    rows = await store.write_raw(note)
    assert len(rows) == 1 and rows[0][0] == report.scrub_id and rows[0][3]
    for secret in (person.email, person.email.lower(), person.phone, person.code):
        assert secret not in str(rows)
    assert person.email.lower() in await store.write_raw(file_blocks.noted_needles)


async def test_a_failed_scrub_keeps_the_note_and_the_next_start_finishes_it(
    store: Store, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scrub that fails leaves the note in the ledger; `finish_erasures` (control's start)
    moves and scrubs then, without the texts, drops the note and audits the end."""
    person = Someone.make()
    await _seed(store, person)

    def work(con: Con) -> None:
        report = erase_person(con, Selector(email=person.email))
        audit_erasure(con, T0, "operator", "erasure-1", report)

    await store.write(work)
    real = file_blocks.scrub_free_blocks

    def broken(con: Con, rounds: int = 3) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(file_blocks, "scrub_free_blocks", broken)
    with pytest.raises(OSError, match="disk full"):
        await _scrub(store)
    assert await store.write_raw(file_blocks.noted_blocks), "the note stays for the next start"
    assert person.email.encode() in _file_bytes(db_path)

    monkeypatch.setattr(file_blocks, "scrub_free_blocks", real)
    # What a restart has: the ledger's note, not the texts of the process that erased.
    await store.write_raw(lambda con: con.execute("DROP TABLE IF EXISTS temp.erasure_needles"))
    assert await store.write_raw(finish_erasures) == 1
    for secret in person.secrets:
        assert secret not in _file_bytes(db_path), f"{secret!r} is still in the file"
    assert await store.write_raw(file_blocks.noted_blocks) is None
    actions = [(e.action, e.object_id) for e in await store.config_audit(kind="ledger")]
    assert sorted(actions) == [("erase", "erasure-1"), ("erase-scrubbed", "erasure-1")]
    assert await store.write_raw(finish_erasures) == 0, "nothing left to finish"
