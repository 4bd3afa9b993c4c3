"""The Certain source end to end: a real control process polls a real Certain sandbox (in this
process, over loopback HTTP) and every change lands in the ledger exactly once, through 5xx
bursts, a 401, malformed records, clock skew and a control killed mid-poll.

Each test watches an event of its own (a fresh code: every control of the session archives
what the others publish on the shared broker's `certain-changes`, and the sandbox's registration
codes repeat from one sandbox to the next), created before control starts.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulators.certain.sandbox import CertainSandbox
from simulators.certain.sandbox_seed import DEFAULT_PASSWORD
from stream.broker import EmbeddedBroker
from tests.support.processes import ControlProcess, start_control
from tests.support.waiting import until

pytestmark = pytest.mark.slow

_EVENTS = itertools.count(1)
ACCOUNT_YAML = """\
account: ACME
certain_sources:
  - {{id: acme, name: ACME on Certain, host: '{url}', account_code: ACME, username: signal-api,
     password: '{password}', events: [{event}], poll_interval_s: 1}}
"""


@dataclass
class World:
    sandbox: CertainSandbox
    http: aiohttp.ClientSession
    broker: EmbeddedBroker
    data_dir: Path
    control: ControlProcess
    event: str

    # --- the sandbox ---------------------------------------------------------------------

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.sandbox.url}/_sandbox/{path}"
        async with self.http.request(method, url, json=body) as response:
            answer = await response.json()
            assert response.status < 300, answer
            return answer

    async def register(self, count: int = 1, **fields: Any) -> list[str]:
        body: dict[str, Any] = {"eventCode": self.event, "registrationStatusLabel": "New", **fields}
        if count > 1:
            body["count"] = count
        answer = await self.admin("POST", "registrations", body)
        return [r["registrationCode"] for r in answer["registrations"]]

    async def move(self, code: str, status: str) -> None:
        path = f"registrations/ACME/{self.event}/{code}"
        await self.admin("PATCH", path, {"registrationStatusLabel": status})

    # --- control -------------------------------------------------------------------------

    starts: int = 0

    async def start_control(self) -> None:
        # A log of its own per start: waiting for "listening" must not find the last one's.
        self.starts += 1
        name = f"control-{self.starts}"
        self.control = await asyncio.to_thread(start_control, self.broker, self.data_dir, name=name)

    async def sql(self, statement: str) -> list[list[Any]]:
        return await self.control.sql(self.http, statement)

    async def source(self) -> dict[str, Any]:
        async with self.http.get(
            f"{self.control.url}/api/v1/sources", headers=self.control.auth()
        ) as response:
            body = await response.json()
            assert response.status == 200, body
            [source] = body["sources"]
            return dict(source)

    async def changes_of(self, code: str) -> list[tuple[str, str | None, str | None]]:
        """(type, status, previous status) of each change archived for the registration,
        in the order Certain stamped them."""
        rows = await self.sql(
            "SELECT type, payload->>'$.registration.registrationStatusLabel', "
            "payload->>'$.registration.previousStatusLabel' FROM changes "
            f"WHERE registration_code = '{code}' AND event_code = '{self.event}' "
            "ORDER BY occurred_at, type DESC"
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def wait_changes(self, code: str, count: int) -> list[tuple[str, str | None, str | None]]:
        async def enough() -> list[tuple[str, str | None, str | None]] | None:
            found = await self.changes_of(code)
            return found if len(found) >= count else None

        found = await until(
            enough, f"{count} changes of {code}", alive=self.control.exited, every=0.2
        )
        assert found is not None
        return found

    async def polls_after(self, extra: int = 2) -> None:
        """Let `extra` more polls complete (so a repeat, if any, would be in the ledger)."""
        start = (await self.source())["totals"]["polls"]

        async def done() -> bool:
            return bool((await self.source())["totals"]["polls"] >= start + extra)

        await until(done, f"{extra} more polls", alive=self.control.exited, every=0.2)

    async def import_yaml(self, text: str) -> None:
        async with self.http.put(
            f"{self.control.url}/api/v1/config",
            data=text.encode(),
            headers=self.control.auth(**{"Content-Type": "application/yaml"}),
        ) as response:
            assert response.status == 200, await response.text()


def account_yaml(url: str, event: str, password: str = DEFAULT_PASSWORD) -> str:
    return ACCOUNT_YAML.format(url=url, password=password, event=event)


@pytest.fixture
async def world(broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[World]:
    sandbox = CertainSandbox(per_event=0)
    await sandbox.start()
    http = aiohttp.ClientSession()
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    event = f"POLL{os.getpid()}X{next(_EVENTS)}"
    (data_dir / "account.yaml").write_text(account_yaml(sandbox.url, event), encoding="utf-8")
    world = World(sandbox, http, broker, data_dir, None, event)  # type: ignore[arg-type]
    await world.admin("POST", "events", {"eventCode": event, "eventName": "Signal poll test"})
    await world.start_control()
    try:
        yield world
    finally:
        world.control.stop()
        await http.close()
        await sandbox.stop()


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
    assert "password" not in str(state).lower() and DEFAULT_PASSWORD not in str(state)


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
    assert (await world.source())["state"] == "polling"
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
