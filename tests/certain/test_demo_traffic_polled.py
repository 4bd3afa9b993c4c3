"""The demo's traffic through the Certain sandbox, as `csignal run --demo` runs it by default:
the simulator acts in the sandbox (`SandboxPlanner` → admin routes), the Certain source polls
it, and the demo account's flows meet what the poller found.

The complete-form flow selects `registration.create_update` changes by the standard property
Complete (or the tagged custom property): the sandbox must hold the properties the traffic set,
else no polled change carries them and the flow never activates (the demo showed no form post
through Certain).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.models import Source
from simulators.certain.demo_account import demo_account
from simulators.certain.sandbox_driver import SandboxPlanner, perform
from simulators.certain.traffic import ACCOUNT_CODE, generate
from stream.core.catalog import EventCatalog
from stream.core.evaluate import evaluate
from stream.core.results import Mapped
from tests.certain.poller_world import poller_world, source_entry

CHUNK = 40
"""Traffic steps between two polls: enough that a poll sees creates and moves together."""


def demo_with_source(url: str) -> dict[str, Any]:
    account = demo_account("http://127.0.0.1:1")
    account["certain_sources"] = [source_entry(url)]
    return account


async def test_demo_traffic_polled_from_the_sandbox_reaches_every_registration_flow(
    tmp_path: Path,
) -> None:
    async with poller_world(tmp_path, demo_with_source) as world:
        await world.poll()
        items = generate(11, 10.0, 24.0, datetime.now(UTC))
        planner = SandboxPlanner(ACCOUNT_CODE)
        for start in range(0, len(items), CHUNK):
            ops, _ = planner.plan(items[start : start + CHUNK])
            done = await perform(world.http, world.sandbox.url, ops)
            assert all(status != 400 for _, status, _ in done.refused), done.refused
            await world.poll()

        changes = world.changes()
        account = world.config.account
        events = [c for c in changes if c.type is Source.EVENT_CREATE_UPDATE]
        catalog = EventCatalog().apply_all(events)
        mapped = Counter(
            flow.id
            for change in changes
            for flow in account.flows
            if isinstance(evaluate(change, flow, account, catalog), Mapped)
        )
        registration_flows = {
            f.id
            for f in account.flows
            if f.source in (Source.REGISTRATION_CREATE_UPDATE, Source.REGISTRATION_STATUS_CHANGE)
        }
        assert registration_flows <= set(mapped), mapped
        assert mapped["complete-form"] >= 5, mapped

        # What the traffic made complete in the sandbox, a polled change carried.
        complete_in_sandbox = {
            reg.code
            for event in world.sandbox.state.accounts[ACCOUNT_CODE].events.values()
            for reg in event.registrations.values()
            if reg.properties.get("complete") is True
        }
        complete_polled = {
            c.registration_code
            for c in changes
            if c.registration is not None and c.registration.properties.complete
        }
        assert complete_in_sandbox, "the traffic completes some registrations"
        assert complete_in_sandbox <= complete_polled
