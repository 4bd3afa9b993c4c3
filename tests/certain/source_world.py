"""A real control polling a Certain sandbox (in the test's process, over loopback HTTP), for
the tests of the Certain source: the sandbox's admin routes, control's ledger and source state.

Each world watches an event of its own (a fresh code: every control of the session archives
what the others publish on the shared broker's `certain-changes`, and the sandbox's registration
codes repeat from one sandbox to the next), created with two sessions before control starts.
"""

from __future__ import annotations

import asyncio
import itertools
import os
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

SESSIONS = (
    {"code": "KEYNOTE", "name": "Opening keynote"},
    {"code": "WORKSHOP", "name": "Workshop"},
)

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

    async def session(self, codes: str | list[str], session: str, status: str) -> None:
        """Assign registrations to a session, or move them (a list: one mass move)."""
        body: dict[str, Any] = {
            "eventCode": self.event,
            "sessionCode": session,
            "regSessionStatus": status,
        }
        if isinstance(codes, str):
            body["registrationCode"] = codes
        else:
            body["registrationCodes"] = codes
        answer = await self.admin("POST", "session-registrations", body)
        assert isinstance(codes, str) or answer["refused"] == [], answer

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
    await world.admin(
        "POST",
        "events",
        {"eventCode": event, "eventName": "Signal poll test", "sessions": list(SESSIONS)},
    )
    await world.start_control()
    try:
        yield world
    finally:
        world.control.stop()
        await http.close()
        await sandbox.stop()
