"""A registration too big for the broker: a Certain record with a megabyte in one field becomes
a change no publish could ever clear. It is kept in `rejected_changes` with the reason, the
registrations beside it flow on, and the outbox is left with nothing it cannot send (before,
the change was accepted, every recovery scan failed on it first, and the changes behind it
waited for good)."""

from __future__ import annotations

from pathlib import Path

from simulators.certain.sandbox_changes import change_registration
from stream.certain.parsing import MAX_CHANGE_BYTES
from tests.certain.poller_world import poller_world
from tests.certain.test_poller_at_scale import EVENT, register, watching_one_event
from tests.support.clock import recent


async def test_a_change_too_big_to_publish_is_rejected_and_the_rest_flow(tmp_path: Path) -> None:
    async with poller_world(tmp_path, watching_one_event) as world:
        big, small = await register(world, 2)
        first = await world.poll()
        assert first.rejected == 0
        assert {c.registration_code for c in world.changes()} >= {big, small}
        event = world.sandbox.state.event("ACME", EVENT)
        assert event is not None
        huge = "x" * (MAX_CHANGE_BYTES + 100_000)
        change_registration(world.sandbox.state, event, big, {"profile": {"organization": huge}})
        change_registration(
            world.sandbox.state, event, small, {"registrationStatusLabel": "Cancelled"}
        )
        published = len(world.published)
        second = await world.poll()
        assert second.rejected == 1
        sent = world.changes()[published:]
        assert {c.registration_code for c in sent} == {small}
        assert all(len(value) < MAX_CHANGE_BYTES for _, value in world.published)
        rows = await world.ledger("SELECT source, reasons, length(payload) FROM rejected_changes")
        assert len(rows) == 1
        source, reasons, size = rows[0]
        assert source == "poll" and size > MAX_CHANGE_BYTES
        assert f"registration {big!r}" in reasons[0]
        assert f"the broker takes at most {MAX_CHANGE_BYTES:,} bytes per change" in reasons[0]
        archived = await world.ledger(
            f"SELECT count(*) FROM changes WHERE registration_code = '{big}'"
        )
        assert archived == [[1]]  # its first, ordinary change only
        outbox = await world.store.unpublished_changes(recent(hours=-1), limit=10)
        assert outbox == []
        third = await world.poll()
        assert (third.changes, third.rejected) == (0, 0)
