"""End to end, every repeat after a crash of everything is counted, even when control had not
read the pipeline's delivered-keys records when the crash came.

Control keeps `signal-delivered` in its ledger within tens of milliseconds; the records it had
not read die with the embedded broker. To make that window as wide as the test needs, control
is frozen (SIGSTOP) while the pipeline goes on delivering a burst to the Marketo sandbox, then
every process of the run is SIGKILLed and the run started again on the same data dir. Nothing
of what was delivered meanwhile reached the ledger; recovery re-drives it all. The pipeline's
own journal of those records (`stream/pipeline/marks_journal.py`) is what remains: the pairs it
delivered are skipped as duplicates, and the call in flight at the kill, if any, is delivered
again and counted as a possible repeat.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.chaos_support import (
    CAMPAIGN_LEADS_PER_CALL,
    FLOWS,
    SANDBOX_SECRET,
    SECRET_ENV,
    Burst,
    account_yaml,
    api_client,
    api_token,
    event_change,
    kill_everything,
    ledger_figures,
    marketo_repeats,
    registration_change,
    start_run_logged,
    start_sandbox,
    until_complete,
)
from tests.support.waiting import until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

CHANGES = 1500
PREFIX = "lag"
WHILE_FROZEN = 300
"""Leads the pipeline must request for the campaign while control is frozen."""


async def requested_leads(session: aiohttp.ClientSession, sandbox_url: str) -> int:
    return len((await marketo_repeats(session, sandbox_url, PREFIX))[2])


async def test_repeats_after_a_crash_are_counted_when_control_lagged(tmp_path: Path) -> None:
    sandbox = await asyncio.to_thread(start_sandbox, tmp_path)
    config = tmp_path / "account.yaml"
    config.write_text(account_yaml(sandbox.url), encoding="utf-8")
    env = {SECRET_ENV: SANDBOX_SECRET}
    data_dir = tmp_path / "data"
    run = start_run_logged(
        data_dir, ["--headless", "--config", str(config), "--status-every", "5"], "run-1.log", env
    )
    runs = [run]
    try:
        await run.wait_for(r"Signal is running", within=180)
        client = api_client(run)
        async with client, aiohttp.ClientSession() as session:
            await client.post_changes([event_change(PREFIX)])

            async def event_routed() -> bool:
                query = f"SELECT count(*) FROM outcomes WHERE change_id = '{PREFIX}-event'"
                return int(await client.scalar(query) or 0) >= len(FLOWS)

            await until(event_routed, "the event's outcomes", within=120, every=0.5)
            burst = Burst(
                run.api_url,
                api_token(run),
                [registration_change(PREFIX, n) for n in range(CHANGES)],
            )
            await burst.run()
            assert len(burst.accepted) == CHANGES, "every change in the ledger before the crash"

            async def some_requested() -> bool:
                return await requested_leads(session, sandbox.url) >= 100

            await until(some_requested, "the first campaign requests", within=120, every=0.1)
            control = int(re.findall(r"control pid (\d+)", run.output)[-1])
            os.kill(control, signal.SIGSTOP)
            try:
                frozen_at = await requested_leads(session, sandbox.url)

                async def delivered_meanwhile() -> bool:
                    seen = await requested_leads(session, sandbox.url)
                    return seen >= min(CHANGES, frozen_at + WHILE_FROZEN)

                await until(delivered_meanwhile, "deliveries while control is frozen", within=120)
            finally:
                kill_everything(run)
            before_restart = await requested_leads(session, sandbox.url)
        assert before_restart - frozen_at >= min(WHILE_FROZEN, CHANGES - frozen_at)

        run = start_run_logged(data_dir, ["--headless", "--status-every", "5"], "run-2.log", env)
        runs.append(run)
        await run.wait_for(r"Signal is running", within=180)
        restarted = time.monotonic()
        client = api_client(run)
        async with client, aiohttp.ClientSession() as session:
            await until_complete(
                client, burst, PREFIX, "every accepted change recovered", within=300
            )
            recovery_s = time.monotonic() - restarted
            statuses, counted = await ledger_figures(client, PREFIX)
            repeats, repeated, requested = await marketo_repeats(session, sandbox.url, PREFIX)
        figures = (
            f"frozen at {frozen_at} leads requested, {before_restart} at the kill; repeats to "
            f"Marketo {repeats} ({repeated} leads), counted by the ledger {counted}, recovery "
            f"{recovery_s:.1f}s, {statuses}"
        )
        print(figures)
        assert len(requested) == CHANGES, figures
        assert repeated <= CAMPAIGN_LEADS_PER_CALL, f"at most the call in flight: {figures}"
        assert counted is not None and repeated <= counted, f"every repeat counted: {figures}"
    finally:
        for each in runs:
            if each.alive():
                await asyncio.to_thread(each.stop)
            each.kill()
        sandbox.stop()
