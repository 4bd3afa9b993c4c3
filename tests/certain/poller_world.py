"""The Certain source's poller in the test's own process: a real `SourcePoller` reading a real
Certain sandbox over loopback HTTP, writing to a real DuckDB ledger through a real config
service, its published records collected in a list.

No control process and no broker: a test calls `poll()` when it wants a poll, so what happened
between two polls is exactly what the test did. That makes the poller's promises (each change
once, none lost) checkable at the scale of thousands of records in seconds, where a control
process polling on its own clock needs a minute. The end-to-end tests keep the real processes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from simulators.certain.sandbox import CertainSandbox
from simulators.certain.sandbox_seed import DEFAULT_ACCOUNT, DEFAULT_PASSWORD, DEFAULT_USER
from stream.certain.events import ChangeEvent
from stream.certain.parsing import parse_change
from stream.control.certain_poller import PollResult, SourcePoller
from stream.control.config_service import ConfigService
from stream.control.secret_store import SecretStore
from stream.store import Store

SOURCE_ID = "acme"
ENV = {"SIGNAL_DEMO_MARKETO_SECRET": "demo-secret-not-used"}


def source_entry(url: str, events: str = "all", **more: Any) -> dict[str, Any]:
    """The account's Certain source pointing at the sandbox (as YAML/JSON data)."""
    entry: dict[str, Any] = {
        "id": SOURCE_ID,
        "name": "Certain sandbox",
        "host": url,
        "account_code": DEFAULT_ACCOUNT,
        "username": DEFAULT_USER,
        "password": DEFAULT_PASSWORD,
        "events": events if events == "all" else [events],
        "poll_interval_s": 2,
        "request_budget_per_minute": 6000,
    }
    return entry | more


def plain_account(url: str, events: str = "all") -> dict[str, Any]:
    """An account with nothing but the source: every change is archived, none routed here."""
    return {"account": DEFAULT_ACCOUNT, "certain_sources": [source_entry(url, events)]}


@dataclass
class PollerWorld:
    sandbox: CertainSandbox
    http: aiohttp.ClientSession
    store: Store
    config: ConfigService
    poller: SourcePoller
    published: list[tuple[bytes, bytes]] = field(default_factory=list)
    after_publish: list[Callable[[], None]] = field(default_factory=list)
    """Called after each publish (a test cuts a poll off at a chosen page with one)."""

    async def poll(self) -> PollResult:
        return await self.poller.poll_once()

    async def publish(self, records: Any) -> None:
        self.published.extend(records)
        for hook in self.after_publish:
            hook()

    def restart(self) -> None:
        """A poller started afresh over the same ledger (as after a crash): no state in memory."""
        self.poller = SourcePoller(
            self.config.certain_source(SOURCE_ID),
            store=self.store,
            config=self.config,
            publish=self.publish,
            session=self.http,
        )

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(
            method, f"{self.sandbox.url}/_sandbox/{path}", json=body
        ) as response:
            answer = await response.json()
            assert response.status < 300, answer
            return answer

    def changes(self) -> list[ChangeEvent]:
        """Every published change, in publishing order."""
        out: list[ChangeEvent] = []
        for _, value in self.published:
            parsed = parse_change(json.loads(value))
            assert isinstance(parsed, ChangeEvent), parsed
            out.append(parsed)
        return out

    def published_ids(self) -> Counter[str]:
        return Counter(change.change_id for change in self.changes())

    async def ledger(self, sql: str) -> list[list[Any]]:
        result = await self.store.query(sql, max_rows=100_000)
        return [list(row) for row in result.rows]


@asynccontextmanager
async def poller_world(
    tmp_path: Path,
    account: Callable[[str], dict[str, Any]] = plain_account,
    *,
    sandbox: CertainSandbox | None = None,
    host: str | None = None,
) -> AsyncIterator[PollerWorld]:
    """A sandbox (seeded with the simulator's events and no registrations unless given), a
    ledger and config service in `tmp_path`, and a poller for the account's source; `host`
    points the source at another server instead (one that misbehaves on purpose)."""
    sandbox = sandbox or CertainSandbox(per_event=0)
    await sandbox.start()
    http = aiohttp.ClientSession()
    store = await Store.open(tmp_path / "signal.duckdb", reader_threads=1, threads=1)
    config = ConfigService(store, SecretStore(tmp_path / "secrets.json"), env=ENV, debounce_s=0)
    path = tmp_path / "account.yaml"
    path.write_text(json.dumps(account(host or sandbox.url)), encoding="utf-8")
    try:
        await config.start(path)
        world = PollerWorld(sandbox, http, store, config, None)  # type: ignore[arg-type]
        world.restart()
        yield world
    finally:
        await config.stop()
        await store.close()
        await http.close()
        await sandbox.stop()
