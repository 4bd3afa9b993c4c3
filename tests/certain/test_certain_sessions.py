"""Session registrations through the Certain source: a real control polls
`RegistrationAgenda/{acct}/{evt}` of a real Certain sandbox and every session move lands in the
ledger once, as a `session_registration.status_change` carrying the registration and the
session, through a malformed record and a control killed mid-poll."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest

from tests.certain.source_world import World, world
from tests.support.waiting import until

__all__ = ["world"]

pytestmark = pytest.mark.slow

SESSION_CHANGE = "session_registration.status_change"
Move = tuple[str | None, str | None, str | None]


async def session_changes(world: World, code: str) -> list[Move]:
    """(session, status, previous status) of each session change of the registration, in the
    order Certain stamped them."""
    rows = await world.sql(
        "SELECT payload->>'$.session.sessionCode', payload->>'$.session.regSessionStatus', "
        "payload->>'$.session.previousRegSessionStatus' FROM changes "
        f"WHERE type = '{SESSION_CHANGE}' AND registration_code = '{code}' "
        f"AND event_code = '{world.event}' ORDER BY occurred_at, 1"
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def wait_session_changes(world: World, code: str, count: int) -> list[Move]:
    async def enough() -> list[Move] | None:
        found = await session_changes(world, code)
        return found if len(found) >= count else None

    found = await until(
        enough, f"{count} session changes of {code}", alive=world.control.exited, every=0.2
    )
    assert found is not None
    return found


async def count_session_changes(world: World) -> int:
    rows = await world.sql(
        f"SELECT count(*) FROM changes WHERE type = '{SESSION_CHANGE}' "
        f"AND event_code = '{world.event}'"
    )
    return int(rows[0][0])


async def test_a_session_registrations_life_arrives_once_per_move(world: World) -> None:
    [code] = await world.register(attendeeTypeCode="VIP")
    await world.wait_changes(code, 1)
    await world.session(code, "KEYNOTE", "Registered")
    await wait_session_changes(world, code, 1)
    await world.session(code, "KEYNOTE", "Attended")
    await wait_session_changes(world, code, 2)
    await world.session(code, "WORKSHOP", "Registered")
    await wait_session_changes(world, code, 3)
    await world.session(code, "WORKSHOP", "Cancelled")
    await wait_session_changes(world, code, 4)
    await world.session(code, "WORKSHOP", "Registered")  # back from Cancelled
    await wait_session_changes(world, code, 5)
    await world.polls_after(2)
    assert await session_changes(world, code) == [
        ("KEYNOTE", "Registered", None),
        ("KEYNOTE", "Attended", "Registered"),
        ("WORKSHOP", "Registered", None),
        ("WORKSHOP", "Cancelled", "Registered"),
        ("WORKSHOP", "Registered", "Cancelled"),
    ]
    [[payload]] = await world.sql(
        "SELECT payload FROM changes WHERE "
        f"type = '{SESSION_CHANGE}' AND registration_code = '{code}' "
        f"AND event_code = '{world.event}' AND payload->>'$.session.regSessionStatus' = 'Attended'"
    )
    change: dict[str, Any] = json.loads(payload)
    assert change["session"]["sessionName"] == "Opening keynote"
    assert change["session"]["instanceId"] is not None
    assert change["registration"]["attendeeTypeCode"] == "VIP"
    assert "@" in change["registration"]["profile"]["email"]
    assert change["changeId"].startswith("certain-")
    # The registration came from the ledger: no call fetched it on its own.
    assert not [c for c in world.sandbox.calls if c["path"].endswith(f"/{code}")]
    # Nothing but the registration's own create besides its session moves.
    own = [c for c in await world.changes_of(code) if c[0] != SESSION_CHANGE]
    assert own == [("registration.create_update", "New", None)]


async def test_a_registration_the_source_never_saw_is_fetched_for_its_session_move(
    world: World,
) -> None:
    await world.polls_after(1)
    # Stamped ten minutes ago by Certain's clock: older than the watermark minus the overlap,
    # so the registrations poll never reads it.
    await world.admin("POST", "clock", {"skewSeconds": -600})
    [code] = await world.register(attendeeTypeCode="VIP")
    await world.admin("POST", "clock", {"skewSeconds": 0})
    await world.session(code, "KEYNOTE", "Registered")
    assert await wait_session_changes(world, code, 1) == [("KEYNOTE", "Registered", None)]
    [[email]] = await world.sql(
        "SELECT payload->>'$.registration.profile.email' FROM changes "
        f"WHERE type = '{SESSION_CHANGE}' AND registration_code = '{code}' "
        f"AND event_code = '{world.event}'"
    )
    assert email is not None and "@" in email
    fetched = [c for c in world.sandbox.calls if c["path"].endswith(f"/{world.event}/{code}")]
    assert len(fetched) == 1 and fetched[0]["status"] == 200
    await world.polls_after(2)
    assert await session_changes(world, code) == [("KEYNOTE", "Registered", None)]
    own = [c for c in await world.changes_of(code) if c[0] != SESSION_CHANGE]
    assert own == [], "the registration itself is still unseen"


async def test_a_malformed_session_record_is_rejected_once_and_the_rest_go_on(
    world: World,
) -> None:
    first, second = await world.register(count=2)
    await world.wait_changes(first, 1)
    await world.wait_changes(second, 1)
    await world.admin("POST", "faults", {"malformedSessions": 1})
    await world.session([first, second], "KEYNOTE", "Registered")

    async def rejected() -> list[list[Any]] | None:
        rows = await world.sql(
            "SELECT reasons FROM rejected_changes WHERE source = 'poll' "
            f"AND reasons::VARCHAR LIKE '%{world.event}%'"
        )
        return rows or None

    rows = await until(rejected, "the malformed record rejected", alive=world.control.exited)
    assert rows is not None
    reason = str(rows[0][0])
    assert "session registration" in reason
    assert "sessionCode: expected a non-blank session code, got None" in reason
    # The other record of the page went on; the broken one is served whole on the next poll.
    assert await wait_session_changes(world, first, 1) == [("KEYNOTE", "Registered", None)]
    assert await wait_session_changes(world, second, 1) == [("KEYNOTE", "Registered", None)]
    await world.polls_after(2)
    assert await count_session_changes(world) == 2
    again = await world.sql(
        "SELECT count(*) FROM rejected_changes WHERE source = 'poll' "
        f"AND reasons::VARCHAR LIKE '%{world.event}%'"
    )
    assert again == [[1]]
    assert (await world.source())["totals"]["rejected"] == 1


async def test_a_control_killed_mid_poll_of_sessions_resumes_without_gaps_or_repeats(
    world: World,
) -> None:
    codes = await world.register(count=1500)

    async def registrations_taken() -> bool:
        rows = await world.sql(
            "SELECT count(*) FROM changes WHERE type = 'registration.create_update' "
            f"AND event_code = '{world.event}'"
        )
        return bool(rows[0][0] >= len(codes))

    await until(registrations_taken, "every registration", alive=world.control.exited, within=120)
    await world.session(codes, "KEYNOTE", "Registered")

    async def some_taken() -> list[str] | None:
        rows = await world.sql(
            f"SELECT registration_code FROM changes WHERE type = '{SESSION_CHANGE}' "
            f"AND event_code = '{world.event}' ORDER BY 1 LIMIT 10"
        )
        return [str(r[0]) for r in rows] if len(rows) == 10 else None

    taken = await until(
        some_taken, "the first page archived", alive=world.control.exited, every=0.02
    )
    world.control.stop(signal.SIGKILL)
    # Moved while control is down, among those it had taken as Registered: each must arrive
    # as one move from Registered (one it had not taken would arrive as Attended at once).
    assert taken is not None
    moved = taken
    await world.session(moved, "KEYNOTE", "Attended")
    await world.start_control()

    async def all_taken() -> bool:
        return await count_session_changes(world) >= len(codes) + len(moved)

    await until(all_taken, "every session change", alive=world.control.exited, within=120)
    await world.polls_after(2)
    moved_list = ", ".join(f"'{code}'" for code in moved)
    summary = await world.sql(
        "WITH per_code AS (SELECT registration_code AS code, "
        "count(*) FILTER (WHERE payload->>'$.session.previousRegSessionStatus' IS NULL) AS firsts, "
        "count(*) FILTER (WHERE payload->>'$.session.previousRegSessionStatus' = 'Registered') "
        f"AS moves FROM changes WHERE type = '{SESSION_CHANGE}' "
        f"AND event_code = '{world.event}' GROUP BY 1) "
        "SELECT count(*), count(*) FILTER (WHERE firsts = 1), "
        f"count(*) FILTER (WHERE moves = 1 AND code IN ({moved_list})), "
        f"count(*) FILTER (WHERE moves = 0 AND code NOT IN ({moved_list})) FROM per_code"
    )
    assert summary == [[len(codes), len(codes), len(moved), len(codes) - len(moved)]]
