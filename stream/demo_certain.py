"""The Certain side of `csignal run --demo`: a Certain sandbox, the demo account's Certain source
pointing at it, and simulated traffic made *in* the sandbox, so the demo runs the chain a real
install runs: Certain (sandbox) → control's poller → pipeline → Marketo (sandbox).

The source polls every `POLL_INTERVAL_S` (the interval the issue's latency figure is quoted at)
with a request budget that covers the sandbox's events at that interval. The sandbox's API
password is drawn per run and handed to control through `POST/PUT /api/v1/sources`, so it is
kept like any source password (control's secret store, never exported or logged). An account
already in the data dir keeps its flows; only the demo source is (re)pointed at this run's
sandbox, whose port is new at every start.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from apiclient.client import ApiClient
from apiclient.errors import ApiError, RequestRefused
from simulators.certain.sandbox import CertainSandbox
from simulators.certain.sandbox_driver import DriveResult, drive_paced
from simulators.certain.sandbox_seed import DEFAULT_USER
from simulators.certain.traffic import ACCOUNT_CODE, generate

SOURCE_ID = "demo-certain"
POLL_INTERVAL_S = 2.0
REQUEST_BUDGET_PER_MINUTE = 1200
"""Event list, and per event its registrations, session registrations (and, when they moved,
the session list): about a dozen calls per poll at 30 polls a minute."""
CHUNK_S = 600.0
"""Traffic is generated ten minutes at a time, as for the ingest path."""
RETRY_S = 2.0


class DemoError(Exception):
    """The demo's Certain side cannot be set up; the message says why."""


class CertainDemo:
    def __init__(self, say: Callable[[str], None], *, rate: float, seed: int | None) -> None:
        self._say = say
        self._rate = rate
        self._seed = seed if seed is not None else random.SystemRandom().randrange(1, 10**9)
        self._password = secrets.token_urlsafe(18)
        self.sandbox = CertainSandbox(user=DEFAULT_USER, password=self._password)
        self.driven = DriveResult()

    @property
    def url(self) -> str:
        return self.sandbox.url

    async def start(self) -> None:
        await self.sandbox.start("127.0.0.1", 0)
        self._say(f"Certain sandbox: {self.url} (admin at {self.url}/_sandbox/status)")

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.sandbox.stop()

    def source(self) -> dict[str, Any]:
        """The demo account's Certain source, as `POST /api/v1/sources` takes it."""
        return {
            "id": SOURCE_ID,
            "name": "Certain sandbox (demo)",
            "host": self.url,
            "account_code": ACCOUNT_CODE,
            "username": DEFAULT_USER,
            "events": "all",
            "poll_interval_s": POLL_INTERVAL_S,
            "start": "now",
            "request_budget_per_minute": REQUEST_BUDGET_PER_MINUTE,
            "active": True,
        }

    async def connect(self, client: ApiClient) -> None:
        """Create the demo source, or point the one kept from an earlier run at this sandbox
        (with this run's password)."""
        body = self.source()
        try:
            existing = {s.id: s for s in await client.sources()}
            kept = existing.get(SOURCE_ID)
            if kept is None:
                await client.save_source(body, create=True, password=self._password)
            else:
                version = kept.raw.get("version")
                await client.save_source(
                    body,
                    create=False,
                    password=self._password,
                    version=version if isinstance(version, int) else None,
                )
        except RequestRefused as error:
            raise DemoError(f"saving Certain source {SOURCE_ID!r} was refused: {error}") from None
        except ApiError as error:
            raise DemoError(f"saving Certain source {SOURCE_ID!r} failed: {error}") from None
        self._say(
            f"Certain source {SOURCE_ID} polls the sandbox every {POLL_INTERVAL_S:g}s "
            f"(account {ACCOUNT_CODE}, all active events)"
        )

    async def drive(self, stop: asyncio.Event) -> None:
        """Simulated registrants and staff, acting in the sandbox until `stop`."""
        self._say(
            f"simulator: {self._rate:g} changes/s into the Certain sandbox, seed {self._seed}"
        )
        rounds = 0
        while not stop.is_set():
            items = await asyncio.to_thread(
                generate, self._seed + rounds, self._rate, CHUNK_S, datetime.now(UTC)
            )
            try:
                done = await drive_paced(items, self.url, account=ACCOUNT_CODE, stop=stop)
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                self._say(f"simulator: {error}; retrying in {RETRY_S:g}s")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY_S):
                        await stop.wait()
                continue
            self.driven.merge(done)
            rounds += 1

    def status_parts(self) -> list[str]:
        """For the run's status line: what the sandbox holds and how often it was polled."""
        registrations = sum(
            len(e.registrations)
            for a in self.sandbox.state.accounts.values()
            for e in a.events.values()
        )
        return [
            f"certain registrations {registrations}",
            f"certain calls {len(self.sandbox.calls)}",
        ]
