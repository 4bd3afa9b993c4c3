"""The Certain source's promise — each change once, none lost — at the scale and in the
situations the issue names: a mass change of 5,000 registrations (one `dateModified` across ten
pages) with a poll cut off half way, soft deletes and status regressions inside mass changes,
and Certain's clock two minutes ahead of or behind Signal's while thousands of records move.

The poller runs in the test's process against the Certain sandbox over HTTP and a real DuckDB
ledger (tests/certain/poller_world.py); the tests with a control process of its own are in
test_certain_source.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stream.certain.client import PAGE_SIZE
from tests.certain.poller_world import PollerWorld, plain_account, poller_world

EVENT = "SUMMIT26"
CREATE = "registration.create_update"
MOVE = "registration.status_change"


def watching_one_event(url: str) -> dict[str, Any]:
    return plain_account(url, EVENT)


async def register(world: PollerWorld, count: int, status: str = "New") -> list[str]:
    codes: list[str] = []
    while len(codes) < count:
        body = {
            "eventCode": EVENT,
            "registrationStatusLabel": status,
            "count": min(2000, count - len(codes)),
        }
        answer = await world.admin("POST", "registrations", body)
        codes += [r["registrationCode"] for r in answer["registrations"]]
    return codes


async def mass(world: PollerWorld, codes: list[str], status: str) -> None:
    body = {"eventCode": EVENT, "codes": codes, "set": {"registrationStatusLabel": status}}
    await world.admin("POST", "registrations/mass", body)


async def poll_until(world: PollerWorld, changes: int, polls: int = 20) -> int:
    """Poll until `changes` more changes were emitted, then once more (a repeat would show)."""
    found = 0
    for _ in range(polls):
        found += (await world.poll()).changes
        if found >= changes:
            break
    assert found == changes, f"{found} of {changes} changes in {polls} polls"
    assert (await world.poll()).changes == 0, "a poll after the last change finds nothing new"
    return found


async def ledger_summary(world: PollerWorld) -> dict[tuple[str, str | None, str | None], int]:
    """(type, status, previous status) → changes archived for registrations of the event."""
    rows = await world.ledger(
        "SELECT type, payload->>'$.registration.registrationStatusLabel', "
        "payload->>'$.registration.previousStatusLabel', count(*) FROM changes "
        f"WHERE event_code = '{EVENT}' AND registration_code IS NOT NULL GROUP BY 1, 2, 3"
    )
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


async def assert_each_change_once(world: PollerWorld) -> None:
    [[rows, ids]] = await world.ledger("SELECT count(*), count(DISTINCT change_id) FROM changes")
    assert rows == ids
    repeated = {i: n for i, n in world.published_ids().items() if n > 1}
    assert repeated == {}, f"published more than once: {list(repeated)[:3]}"


@pytest.mark.slow  # about a minute on a loaded machine: 10,000 changes through the ledger
async def test_a_mass_change_of_5000_cut_off_mid_poll_arrives_once_each(tmp_path: Path) -> None:
    async with poller_world(tmp_path, watching_one_event) as world:
        await world.poll()
        codes = await register(world, 5000)
        await poll_until(world, 5000)
        await mass(world, codes, "Attended")  # one update: one dateModified on every record

        # A poll cut off after its third page was committed (a crash mid-poll) …
        published = len(world.published)
        third_page = asyncio.Event()

        def count_pages() -> None:
            if len(world.published) >= published + 3 * PAGE_SIZE:
                third_page.set()

        world.after_publish.append(count_pages)
        cut = asyncio.create_task(world.poll())
        await third_page.wait()
        cut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cut
        [[taken]] = await world.ledger(f"SELECT count(*) FROM changes WHERE type = '{MOVE}'")
        assert 0 < taken < 5000

        # … and a poller started afresh over the same ledger takes the rest, none twice.
        world.after_publish.clear()
        world.restart()
        await poll_until(world, 5000 - taken)
        assert await ledger_summary(world) == {
            (CREATE, "New", None): 5000,
            (MOVE, "Attended", "New"): 5000,
        }
        await assert_each_change_once(world)
        moved = Counter(c.registration_code for c in world.changes() if c.type.value == MOVE)
        assert set(moved) == set(codes) and set(moved.values()) == {1}


async def test_soft_deletes_and_regressions_inside_mass_changes(tmp_path: Path) -> None:
    async with poller_world(tmp_path, watching_one_event) as world:
        await world.poll()
        codes = await register(world, 600)
        await poll_until(world, 600)
        await mass(world, codes, "Attended")
        await poll_until(world, 600)
        regressed, deleted = codes[:200], codes[200:300]
        await mass(world, regressed, "New")  # checked in by mistake …
        for code in deleted:
            await world.admin("DELETE", f"registrations/ACME/{EVENT}/{code}")
        await poll_until(world, 300)
        await mass(world, regressed, "Attended")  # … and checked in again
        await poll_until(world, 200)
        assert await ledger_summary(world) == {
            (CREATE, "New", None): 600,
            (MOVE, "Attended", "New"): 600 + 200,
            (MOVE, "New", "Attended"): 200,
            (CREATE, "Attended", None): 100,  # the soft deletes: isActive false
        }
        rows = await world.ledger(
            "SELECT DISTINCT payload->>'$.registration.isActive' FROM changes "
            f"WHERE type = '{CREATE}' AND payload->>'$.registration.registrationStatusLabel' "
            "= 'Attended'"
        )
        assert rows == [["false"]]
        await assert_each_change_once(world)


@pytest.mark.parametrize("skews", [(120, -120), (-120, 120)])
async def test_two_minutes_of_clock_skew_during_mass_changes(
    tmp_path: Path, skews: tuple[int, int]
) -> None:
    first, second = skews
    async with poller_world(tmp_path, watching_one_event) as world:
        await world.admin("POST", "clock", {"skewSeconds": first})
        await world.poll()
        codes = await register(world, 1200)
        await poll_until(world, 1200)
        # Certain's clock jumps by four minutes (from ahead to behind, or back): the next
        # stamps may be older than the watermark, and the overlap window must still see them.
        await world.admin("POST", "clock", {"skewSeconds": second})
        await mass(world, codes, "Attended")
        late = await register(world, 300)
        await poll_until(world, 1500)
        await mass(world, late, "Cancelled")
        await poll_until(world, 300)
        assert await ledger_summary(world) == {
            (CREATE, "New", None): 1500,
            (MOVE, "Attended", "New"): 1200,
            (MOVE, "Cancelled", "New"): 300,
        }
        await assert_each_change_once(world)
        assert world.poller.status.rejected_total == 0
