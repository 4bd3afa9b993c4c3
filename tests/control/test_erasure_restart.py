"""An erasure whose control is killed (SIGKILL) after the erasure committed and before its scrub
ended: the redaction stands, but the person's old bytes are still in the file (free blocks, and
blocks other columns keep in use); the next control finishes the scrub at its start, before its
API listens, so the file no longer holds them, and the audit says the scrub ended."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from pathlib import Path

import aiohttp
import duckdb
import pytest

from stream.broker import EmbeddedBroker
from stream.store import Store
from stream.store.person import HOLD_ENV
from tests.store.conftest import change
from tests.support.changes import change_row, registration_json
from tests.support.clock import recent
from tests.support.crowd import SMALL, Someone, add_crowd
from tests.support.processes import ControlProcess, start_control
from tests.support.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

WHEN = recent(hours=2)


async def seed(path: Path, person: Someone, other: Someone) -> None:
    """The person among a crowd of other rows (`crowd.SMALL`; their reason shares a block with
    columns the erasure keeps), and someone else whose data stays. With the scrub's moving of
    shared segments taken out, the restart leaves the email in the file among 1,000 rows as
    among 125,000."""
    store = await Store.open(path)
    try:
        for who, change_id in ((person, "erasee-1"), (other, "other-x")):
            data = registration_json(
                change_id, code=who.code, email=who.email, profile={"phone": who.phone}
            )
            await store.archive_changes([dataclasses.replace(change_row(data), received_at=WHEN)])
        await store.archive_changes([change(f"other-{i}", received_at=WHEN) for i in range(3)])
        reason = f"Marketo refused {person.email} ({person.phone})"
        await store.write(lambda con: add_crowd(con, "erasee-1", reason, WHEN, rows=SMALL))
        await store.checkpoint()
    finally:
        await store.close()


def file_bytes(path: Path) -> bytes:
    wal = Path(f"{path}.wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


async def erase(control: ControlProcess, email: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{control.url}/api/v1/ledger/erasures", json={"email": email}, headers=control.auth()
        ) as response,
    ):
        await response.read()


async def test_a_killed_erasure_is_finished_by_the_next_start(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    path = data_dir / "signal.duckdb"
    person, other = Someone.make("crashed"), Someone.make("crashed")
    await seed(path, person, other)
    assert all(s in file_bytes(path) for s in person.secrets), "the search must find them there"

    hold = tmp_path / "hold"
    hold.touch()
    reached = Path(f"{hold}.reached")
    first = await asyncio.to_thread(
        start_control, broker, data_dir, name="first", env={HOLD_ENV: str(hold)}
    )
    erasing = asyncio.ensure_future(erase(first, person.email))
    try:
        await until(
            lambda: asyncio.to_thread(reached.exists),
            "the erasure committed and its scrub about to start",
            within=120,
            alive=first.exited,
        )
        first.kill()  # SIGKILL: between the erasure's commit and its scrub
    finally:
        first.kill()
        erasing.cancel()
        with contextlib.suppress(BaseException):
            await erasing
    left = file_bytes(path)
    assert any(s in left for s in person.secrets), "the kill left the old bytes in the file"

    hold.unlink()
    second = await asyncio.to_thread(start_control, broker, data_dir, name="second")
    try:
        # The API listens only after the unfinished scrub is done.
        after = file_bytes(path)
        for secret in person.secrets:
            assert secret not in after, f"{secret!r} is still in the ledger's file or WAL"
        assert other.email.encode() in after, "other people's data stays"
        assert "did not finish their scrub" in second.log()
        assert person.email not in second.log() and person.email not in first.log()
    finally:
        assert second.stop() == 0, second.tail()

    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM erasure_scrubs").fetchall() == [(0,)]
        redacted = con.execute(
            "SELECT payload::VARCHAR, registration_code FROM change_log "
            "WHERE change_id = 'erasee-1'"
        ).fetchall()
        assert redacted == [('{"erased":true}', None)]
        audit = con.execute(
            "SELECT action, object_id, change::VARCHAR FROM config_audit_log "
            "WHERE object = 'ledger' ORDER BY \"at\""
        ).fetchall()
    finally:
        con.close()
    assert [a[0] for a in audit] == ["erase", "erase-scrubbed"]
    assert audit[0][1] == audit[1][1], "the scrub's row names the erasure's audit id"
    scrubbed = json.loads(audit[1][2])
    assert scrubbed["free_blocks_scrubbed"] > 0 and scrubbed["file_searched"] is False
    assert scrubbed["blocks_left_shared"] == 0
    assert person.email not in str(audit) and person.code not in str(audit)
    for secret in person.secrets:
        assert secret not in file_bytes(path)
