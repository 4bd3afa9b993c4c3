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

from apiclient.errors import ApiError
from tests.e2e.chaos_support import (
    SANDBOX_SECRET,
    SECRET_ENV,
    Burst,
    _start_extra_worker,
    account_yaml,
    api_client,
    api_token,
    complete_changes,
    event_change,
    get_json,
    ledger_figures,
    marketo_repeats,
    registration_change,
    start_run_logged,
    start_sandbox,
)
from tests.e2e.test_e2e_chaos_verify import sending_marks
from tests.support.processes import ServiceProcess
from tests.support.waiting import until

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
    config = tmp_path / "account.yaml"
    config.write_text(account_yaml(sandbox.url), encoding="utf-8")
    run = start_run_logged(
        tmp_path / "data",
        ["--headless", "--config", str(config), "--status-every", "5"],
        "run.log",
        {SECRET_ENV: SANDBOX_SECRET},
    )
    extra: ServiceProcess | None = None
    try:
        await run.wait_for(r"Signal is running", within=180)
        client = api_client(run)
        async with client, aiohttp.ClientSession() as session:
            await client.post_changes([event_change(prefix)])

            async def event_routed() -> bool:
                query = f"SELECT count(*) FROM outcomes WHERE change_id = '{prefix}-event'"
                return int(await client.scalar(query) or 0) >= 2

            await until(event_routed, "the event's outcomes", within=180, every=0.5)
            burst = Burst(
                run.api_url,
                api_token(run),
                [registration_change(prefix, n) for n in range(CHANGES)],
            )
            await burst.run()
            assert len(burst.accepted) == CHANGES

            async def campaign_call_in_flight() -> bool:
                status = await get_json(session, f"{sandbox.url}/_sandbox/status")
                return status["inFlight"] > 0 and await sending_marks(client, prefix) > 0

            await until(
                campaign_call_in_flight, "a campaign call in flight", within=300, every=0.05
            )
            extra = await _start_extra_worker(run, tmp_path)

            async def delivered() -> bool:
                try:
                    return burst.accepted <= await complete_changes(client, prefix)
                except ApiError:
                    return False

            await until(delivered, "every change delivered", within=600, every=1.0)
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
