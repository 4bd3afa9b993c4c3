"""The Certain source end to end: a real control process polls a real Certain sandbox (in this
process, over loopback HTTP) and every change lands in the ledger exactly once, through 5xx
bursts, a 401, malformed records, clock skew and a control killed mid-poll.

Each test watches an event of its own (a fresh code: every control of the session archives
what the others publish on the shared broker's `certain-changes`, and the sandbox's registration
codes repeat from one sandbox to the next), created before control starts.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from simulators.certain.sandbox_seed import DEFAULT_PASSWORD
from tests.certain.source_world import World, account_yaml, world
from tests.support.waiting import until

__all__ = ["world"]

pytestmark = pytest.mark.slow


async def test_a_registrations_life_arrives_once_per_change(world: World) -> None:
    [code] = await world.register()
    assert await world.wait_changes(code, 1) == [("registration.create_update", "New", None)]
    await world.move(code, "Attended")
    await world.wait_changes(code, 2)
    await world.move(code, "New")  # a regression …
    await world.wait_changes(code, 3)
    await world.move(code, "Attended")  # … and back
    await world.wait_changes(code, 4)
    await world.admin("DELETE", f"registrations/ACME/{world.event}/{code}")
    await world.wait_changes(code, 5)
    await world.polls_after(2)
    assert await world.changes_of(code) == [
        ("registration.create_update", "New", None),
        ("registration.status_change", "Attended", "New"),
        ("registration.status_change", "New", "Attended"),
        ("registration.status_change", "Attended", "New"),
        ("registration.create_update", "Attended", None),
    ]
    deleted = await world.sql(
        "SELECT payload->>'$.registration.isActive' FROM changes "
        f"WHERE registration_code = '{code}' AND event_code = '{world.event}' "
        "ORDER BY occurred_at DESC LIMIT 1"
    )
    assert deleted == [["false"]]
    sources = await world.sql(
        f"SELECT DISTINCT source FROM change_log WHERE event_code = '{world.event}'"
    )
    assert sources == [["poll"]]
    events = await world.sql(
        "SELECT count(*) FROM changes WHERE type = 'event.create_update' "
        f"AND event_code = '{world.event}'"
    )
    assert events == [[1]]
    state = await world.source()
    assert state["state"] == "polling"
    assert state["totals"]["changes"] == 6
    assert state["lag_s"] is not None and state["lag_s"] >= 0
    # The password's state is listed (password_set, password_source), never the password.
    assert "password" not in state and DEFAULT_PASSWORD not in str(state)


async def test_a_5xx_burst_backs_off_and_loses_nothing(world: World) -> None:
    await world.polls_after(1)
    await world.admin("POST", "faults", {"status": 503, "count": 4})

    async def backing_off() -> dict[str, Any] | None:
        source = await world.source()
        return source if source["state"] == "backing off" else None

    seen = await until(backing_off, "the source backing off", alive=world.control.exited)
    assert seen is not None
    assert "503" in seen["last_error"] and seen["retry_at"] is not None
    [code] = await world.register()
    await world.wait_changes(code, 1)
    await world.polls_after(2)
    assert await world.changes_of(code) == [("registration.create_update", "New", None)]
    state = await world.source()
    assert state["state"] == "polling"
    assert state["totals"]["errors"] >= 1


async def test_a_401_stops_the_source_until_its_password_changes(world: World) -> None:
    await world.polls_after(1)
    await world.admin("POST", "accounts/ACME/password", {"password": "rotated-pw"})

    async def stopped() -> dict[str, Any] | None:
        source = await world.source()
        return source if source["state"] == "stopped: unauthorized" else None

    seen = await until(stopped, "the source stopped", alive=world.control.exited)
    assert seen is not None
    assert "401" in seen["last_error"]
    refused_then = sum(1 for c in world.sandbox.calls if c["status"] == 401)
    [code] = await world.register()
    prometheus = await world.http.get(f"{world.control.url}/metrics", headers=world.control.auth())
    text = await prometheus.text()
    assert (
        'signal_certain_source_state{account="ACME",source="acme",state="stopped: unauthorized"} 1'
        in text
    )
    assert sum(1 for c in world.sandbox.calls if c["status"] == 401) == refused_then, (
        "a stopped source does not call Certain again"
    )
    await world.import_yaml(account_yaml(world.sandbox.url, world.event, "rotated-pw"))
    await world.wait_changes(code, 1)

    async def polling() -> bool:
        # The change is in the ledger once its page is committed; the state says polling once
        # the whole poll is done.
        return bool((await world.source())["state"] == "polling")

    assert await until(polling, "the source polling again", alive=world.control.exited)
    await world.polls_after(2)
    assert await world.changes_of(code) == [("registration.create_update", "New", None)]


async def test_a_malformed_record_is_rejected_once_and_the_rest_go_on(world: World) -> None:
    await world.polls_after(1)
    await world.admin("POST", "faults", {"malformed": 1})
    first, second = await world.register(count=2)

    async def rejected() -> list[list[Any]] | None:
        rows = await world.sql("SELECT reasons FROM rejected_changes WHERE source = 'poll'")
        return rows or None

    rows = await until(rejected, "the malformed record rejected", alive=world.control.exited)
    assert rows is not None
    assert "registrationCode: expected a non-blank registration code" in str(rows[0][0])
    # The other record of the page went on; the broken one is served whole on the next poll
    # (the overlap re-reads it) and arrives then.
    await world.wait_changes(first, 1)
    await world.wait_changes(second, 1)
    await world.polls_after(2)
    assert await world.changes_of(first) == [("registration.create_update", "New", None)]
    assert await world.changes_of(second) == [("registration.create_update", "New", None)]
    again = await world.sql("SELECT count(*) FROM rejected_changes WHERE source = 'poll'")
    assert again == [[1]]
    assert (await world.source())["totals"]["rejected"] == 1


@pytest.mark.parametrize("skews", [(120, -120), (-120, 120)])
async def test_clock_skew_of_two_minutes_either_way(world: World, skews: tuple[int, int]) -> None:
    first_skew, second_skew = skews
    await world.admin("POST", "clock", {"skewSeconds": first_skew})
    [one] = await world.register()
    await world.wait_changes(one, 1)
    await world.admin("POST", "clock", {"skewSeconds": second_skew})
    [two] = await world.register()
    await world.move(one, "Attended")
    await world.wait_changes(two, 1)
    await world.wait_changes(one, 2)
    await world.polls_after(2)
    assert await world.changes_of(one) == [
        ("registration.create_update", "New", None),
        ("registration.status_change", "Attended", "New"),
    ]
    assert await world.changes_of(two) == [("registration.create_update", "New", None)]
    state = await world.source()
    assert state["lag_s"] >= 0


async def test_a_control_killed_mid_poll_resumes_without_gaps_or_repeats(world: World) -> None:
    codes = await world.register(count=3000)

    async def some_taken() -> bool:
        rows = await world.sql(f"SELECT count(*) FROM changes WHERE event_code = '{world.event}'")
        return bool(rows[0][0] > 1)

    await until(some_taken, "the first page archived", alive=world.control.exited, every=0.02)
    world.control.stop(signal.SIGKILL)
    moved = codes[:10]
    for code in moved:
        await world.move(code, "Attended")
    await world.start_control()

    async def all_taken() -> bool:
        rows = await world.sql(
            "SELECT count(*) FROM changes WHERE type LIKE 'registration.%' "
            f"AND event_code = '{world.event}'"
        )
        return bool(rows[0][0] >= len(codes) + len(moved))

    await until(all_taken, "every change archived", alive=world.control.exited, within=120)
    await world.polls_after(2)
    # Aggregated in SQL: the operator API answers at most 1,000 rows.
    moved_list = ", ".join(f"'{code}'" for code in moved)
    summary = await world.sql(
        "WITH per_code AS (SELECT registration_code AS code, "
        "count(*) FILTER (WHERE type = 'registration.create_update') AS creates, "
        "count(*) FILTER (WHERE type = 'registration.status_change') AS moves FROM changes "
        f"WHERE event_code = '{world.event}' AND registration_code IS NOT NULL GROUP BY 1) "
        "SELECT count(*), count(*) FILTER (WHERE creates = 1), "
        f"count(*) FILTER (WHERE moves = 1 AND code IN ({moved_list})), "
        f"count(*) FILTER (WHERE moves = 0 AND code NOT IN ({moved_list})) FROM per_code"
    )
    assert summary == [[len(codes), len(codes), len(moved), len(codes) - len(moved)]]


async def test_deactivating_and_reactivating_takes_effect_without_a_restart(world: World) -> None:
    await world.polls_after(1)
    inactive = account_yaml(world.sandbox.url, world.event).replace(
        "poll_interval_s: 1}", "poll_interval_s: 1, active: false}"
    )
    await world.import_yaml(inactive)

    async def is_inactive() -> bool:
        return bool((await world.source())["state"] == "inactive")

    await until(is_inactive, "the source inactive", alive=world.control.exited)
    calls_then = len(world.sandbox.calls)
    [code] = await world.register()
    assert await world.changes_of(code) == []
    assert len(world.sandbox.calls) == calls_then, "an inactive source does not call Certain"
    await world.import_yaml(account_yaml(world.sandbox.url, world.event))
    await world.wait_changes(code, 1)
    await world.polls_after(2)
    assert await world.changes_of(code) == [("registration.create_update", "New", None)]
