"""The console on a running system: an operator presses `a` on a flow in the flow list of
`csignal console` (driven by Pilot) while `csignal run --demo` is delivering, and the flow's
deliveries stop; pressing `a` again brings them back.

Everything is real: broker, control, pipeline, sandbox, simulated traffic, and the console
talking to control's operator API.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from apiclient.client import ApiClient
from console.app import make_app
from console.screens.modals import ConfirmModal
from tests.e2e.e2e_support import start_run
from tests.support.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(480)]

FLOW = "complete-form"
APPLY_WITHIN_S = 2.0
# Generous: on a loaded machine the demo may take a minute or more to deliver a form.
WAIT_S = 150.0


async def _delivered_after(client: ApiClient, flow_id: str, since: float) -> int:
    """Delivered outcomes of `flow_id` for changes received by control after `since` (epoch s)."""
    rows = (
        await client.sql(
            "SELECT count(*) FROM outcomes o JOIN changes c USING (change_id) "
            f"WHERE o.flow_id = '{flow_id}' AND o.status = 'delivered' "
            f"AND epoch(c.received_at) > {since}"
        )
    ).rows
    return int(rows[0][0])


async def _wait_for_delivery(client: ApiClient, since: float) -> None:
    async def delivered() -> bool:
        return await _delivered_after(client, FLOW, since) > 0

    await until(delivered, f"a delivery for {FLOW}", within=WAIT_S, every=0.5)


async def _active(client: ApiClient) -> bool:
    return next(f for f in await client.flows() if f.id == FLOW).active


async def _settle(pilot: Any) -> None:
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()


async def _press_active(pilot: Any, client: ApiClient, want: bool) -> None:
    table = pilot.app.screen.query_one(DataTable)
    table.move_cursor(row=table.get_row_index(FLOW))
    await pilot.press("a")

    # Switching a LIVE flow on or off stops or starts real sends: the console asks first.
    async def asked() -> bool:
        await pilot.pause()
        return isinstance(pilot.app.screen, ConfirmModal)

    await until(asked, "the console asking before it switches a LIVE flow", every=0)
    await pilot.press("y")

    async def toggled() -> bool:
        if await _active(client) is want:
            return True
        await _settle(pilot)
        return False

    await until(toggled, "the toggle reaching control", every=0)


async def test_toggling_a_flow_in_the_console_stops_and_resumes_its_deliveries(
    tmp_path: Path,
) -> None:
    # The demo's default feed: traffic goes into the Certain sandbox and control polls it,
    # so complete-form acts on registrations completed in Certain.
    run = start_run(tmp_path / "data", ["--demo", "--headless", "--rate", "20"])
    try:
        await run.wait_for(r"Signal is running")
        token = (run.data_dir / "api-token").read_text(encoding="utf-8").strip()
        async with ApiClient(run.api_url, token) as client:
            await _wait_for_delivery(client, since=0)

            app = make_app(run.api_url, token, refresh_s=0, watch_tty=False)
            async with app.run_test(size=(80, 24)) as pilot:
                await _settle(pilot)
                await _press_active(pilot, client, want=False)
                switched_off = time.time()
                # Changes received once the new configuration has been applied must not be
                # delivered for this flow; traffic keeps flowing meanwhile. A deliberate lower
                # bound: it lets 4 s of traffic arrive after the apply deadline, and no
                # condition could say that a delivery will never come.
                await asyncio.sleep(APPLY_WITHIN_S + 4)
                assert await _delivered_after(client, FLOW, switched_off + APPLY_WITHIN_S) == 0
                other = await client.sql(
                    "SELECT count(*) FROM changes WHERE epoch(received_at) > "
                    f"{switched_off + APPLY_WITHIN_S}"
                )
                assert int(other.rows[0][0]) > 0, "no traffic arrived while the flow was off"

                await _press_active(pilot, client, want=True)
                switched_on = time.time()
                await _wait_for_delivery(client, since=switched_on + APPLY_WITHIN_S)
        assert run.stop() == 0, run.output
    except BaseException:
        run.kill()
        raise
