"""End to end, a worker joining the group while another is in the middle of a deliver batch
makes no campaign request run twice and loses none.

Real processes: `csignal sandbox` with every call taking 2.5 s, so one batch of 250 leads (an
upsert and three campaign calls, one at a time) takes about 10 s; `csignal run --headless`; and
a second `csignal pipeline` started once the first campaign call is in flight. Its joining
begins a rebalance while the busy worker still has campaign calls to make. On a real cluster a
member that does not rejoin within the rebalance timeout (3 s) is dropped and its partition
handed on while it still works, the new owner starting again from the last committed offset;
so the busy worker withdraws the calls it had not sent (`deliver_stage.Fence`) and queues their
requests again on `signal-deliveries`, and whoever owns the partition then delivers them. (The
embedded broker waits for the busy member instead: there the new owner would not have sent the
calls twice anyway, but the withdrawing and queueing again are the same.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.chaos_support import (
    _start_extra_worker,
    api_client,
    ledger_figures,
    marketo_repeats,
    registration_burst,
    route_event,
    start_account_run,
    start_sandbox,
    until_campaign_call_in_flight,
    until_complete,
)
from tests.support.processes import ServiceProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

LATENCY_MS = 2500.0
CHANGES = 250


async def test_a_worker_joining_mid_batch_makes_no_lead_requested_twice(tmp_path: Path) -> None:
    prefix = "rb"
    sandbox = await asyncio.to_thread(start_sandbox, tmp_path, LATENCY_MS)
    run = start_account_run(tmp_path, sandbox)
    extra: ServiceProcess | None = None
    try:
        await run.wait_for(r"Signal is running", within=180)
        client = api_client(run)
        async with client, aiohttp.ClientSession() as session:
            await route_event(client, prefix)
            burst = await registration_burst(run, prefix, CHANGES)
            await until_campaign_call_in_flight(session, client, sandbox.url, prefix)
            extra = await _start_extra_worker(run, tmp_path)
            await until_complete(client, burst, prefix)
            statuses, counted = await ledger_figures(client, prefix)
            traced = await client.scalar(
                "SELECT count(*) FROM outcomes o JOIN api_calls c USING (request_id) "
                f"WHERE o.change_id LIKE '{prefix}-%' AND o.status = 'delivered' "
                "AND c.endpoint LIKE '%campaign%'"
            )
            repeats, repeated, requested = await marketo_repeats(session, sandbox.url, prefix)
        logs = (run.data_dir / "logs" / "pipeline.log").read_text(errors="replace")
        withdrawn = (logs + extra.log()).count("withdrawn before their call went out")
        figures = (
            f"repeats to Marketo {repeats} ({repeated} leads), counted by the ledger {counted}, "
            f"batches with calls withdrawn {withdrawn}, {statuses}"
        )
        print(figures)
        assert len(requested) == CHANGES, f"every lead requested: {figures}"
        assert repeats == 0, f"no lead requested twice: {figures}"
        assert counted == 0, figures
        # Each delivery names Marketo's request id of the campaign call that completed it.
        assert traced == CHANGES, f"{traced} deliveries traced to their campaign call: {figures}"

    finally:
        if extra is not None:
            extra.kill()
        if run.alive():
            await asyncio.to_thread(run.stop)
        run.kill()
        sandbox.stop()
