"""Records Certain changes while a poll pages through them are neither skipped nor repeated.

Certain serves a poll's registrations oldest first, a page at a time. A record changed between
two page reads leaves its place (its new `dateModified` sorts it last), so every record after
it moves one place up: paged by plain offset, the record that moved across the page boundary
is never served. When that record is older than the poll's final watermark minus the overlap,
the next poll does not read it either, and its change is lost for good. This happens in a
catch-up (a source started with a past start point, or back after an outage): pages of old
records while users keep working.

Each case here starts the source an hour back, creates old registrations (the sandbox's clock
set 40 minutes back), and changes the first registration of the first page as soon as that page
has been served (the sandbox's `after_answer` hook); polls then run until nothing is new.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from simulators.certain.sandbox_changes import change_registration
from stream.certain.client import PAGE_SIZE
from tests.certain.poller_world import PollerWorld, poller_world, source_entry
from tests.certain.test_poller_at_scale import (
    CREATE,
    EVENT,
    MOVE,
    assert_each_change_once,
    ledger_summary,
    poll_until,
    register,
)

OLD_S = 40 * 60


def catching_up(url: str) -> dict[str, Any]:
    """The source watches one event from an hour ago: its first poll is a catch-up."""
    start = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    return {"account": "ACME", "certain_sources": [source_entry(url, EVENT, start=start)]}


async def old_registrations(world: PollerWorld, count: int, seconds: int) -> list[str]:
    """`count` registrations stamped 40 minutes ago, spread evenly over `seconds` seconds."""
    codes: list[str] = []
    for second in range(seconds):
        world.sandbox.clock.skew_s = -OLD_S + second
        codes += await register(world, count // seconds)
    world.sandbox.clock.skew_s = 0
    return codes


def change_after_first_page(world: PollerWorld, code: str) -> list[str]:
    """Cancel registration `code` right after the first registrations page is served; the
    list returned records the pages served (their `start_index`)."""
    served: list[str] = []
    event = world.sandbox.state.event("ACME", EVENT)
    assert event is not None

    def hook(request: web.Request) -> None:
        if not request.path.endswith(f"/Registration/ACME/{EVENT}"):
            return
        served.append(request.query.get("start_index", ""))
        if len(served) == 1:
            change_registration(
                world.sandbox.state, event, code, {"registrationStatusLabel": "Cancelled"}
            )

    world.sandbox.after_answer.append(hook)
    return served


@pytest.mark.parametrize(
    "seconds",
    [pytest.param(1, id="one-stamp"), pytest.param(4, id="four-stamps")],
)
async def test_a_record_changed_between_pages_shifts_none_out_of_the_poll(
    tmp_path: Path, seconds: int
) -> None:
    count = 1200
    async with poller_world(tmp_path, catching_up) as world:
        await poll_until(world, 1)  # the event itself; no registration yet
        codes = await old_registrations(world, count, seconds)
        served = change_after_first_page(world, codes[0])
        await poll_until(world, count + 1)
        assert len(served) > count // PAGE_SIZE, served
        assert await ledger_summary(world) == {
            (CREATE, "New", None): count,
            (MOVE, "Cancelled", "New"): 1,
        }
        await assert_each_change_once(world)
