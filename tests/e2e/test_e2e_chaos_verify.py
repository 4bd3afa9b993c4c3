"""End to end, a campaign request in flight when its worker is SIGKILLed is verified in Marketo's
activity log by the worker that takes over, not sent again.

Real processes: `csignal sandbox` with a latency wide enough to kill the delivering worker while
its campaign call is in flight (the sandbox still performs a call whose client went away, as
Marketo does), `csignal run --headless` and a second `csignal pipeline` worker. The worker
holding the sandbox connection is killed once the ledger shows "sending" marks; the other one
takes the connection's partition over, finds the marks and asks Marketo's activities whether the
call ran. Each lead must end requested once, the interrupted call's leads recorded as verified.

When the activity log fails (an injected 611 on every activities.json call) the takeover sends
the call again, as before verification existed: at least once, every repeat counted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.chaos_support import (
    CAMPAIGN_LEADS_PER_CALL,
    _start_extra_worker,
    api_client,
    kill_delivering_worker,
    ledger_figures,
    marketo_repeats,
    registration_burst,
    route_event,
    sending_marks,
    set_sandbox_latency,
    start_account_run,
    start_sandbox,
    until_campaign_call_in_flight,
    until_complete,
    verification_figures,
)
from tests.support.processes import ServiceProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

LATENCY_MS = 2500.0
"""Every sandbox call of the burst takes this long until the kill: the window to kill a worker
with a call in flight."""
CHANGES = 250


@pytest.mark.parametrize("activities", ["answer", "fail"])
async def test_a_campaign_call_in_flight_at_a_worker_kill_is_verified_not_sent_again(
    tmp_path: Path, activities: str
) -> None:
    prefix = f"v{activities[0]}"
    sandbox = await asyncio.to_thread(start_sandbox, tmp_path, 0)
    run = start_account_run(tmp_path, sandbox)
    extra: ServiceProcess | None = None
    try:
        await run.wait_for(r"Signal is running", within=180)
        client = api_client(run)
        async with client, aiohttp.ClientSession() as session:
            if activities == "fail":
                fault = {"code": "611", "count": 10_000, "endpoint": "activities.list"}
                async with session.post(f"{sandbox.url}/_sandbox/faults", json=fault) as reply:
                    assert reply.status == 201
            await route_event(client, prefix)
            extra = await _start_extra_worker(run, tmp_path)
            await set_sandbox_latency(session, sandbox.url, LATENCY_MS)
            burst = await registration_burst(run, prefix, CHANGES)
            await until_campaign_call_in_flight(session, client, sandbox.url, prefix)
            victim = kill_delivering_worker(run, extra, sandbox.port)
            # Only the call the kill interrupts needs the window (the sandbox still performs
            # it after its latency); the takeover's calls need not wait for it.
            await set_sandbox_latency(session, sandbox.url, 0)
            in_flight = await sending_marks(client, prefix)
            await until_complete(client, burst, prefix)
            statuses, counted = await ledger_figures(client, prefix)
            verified, verify_calls = await verification_figures(
                client, session, sandbox.url, prefix
            )
            repeats, repeated, requested = await marketo_repeats(session, sandbox.url, prefix)
        figures = (
            f"killed the {victim} with {in_flight} leads marked sending; repeats to Marketo "
            f"{repeats} ({repeated} leads), counted by the ledger {counted}, verified {verified} "
            f"({verify_calls} activity calls), {statuses}"
        )
        print(figures)
        assert "none seen delivering" not in victim, figures
        assert 0 < in_flight <= CAMPAIGN_LEADS_PER_CALL, figures
        assert len(requested) == CHANGES, f"every lead requested: {figures}"
        assert verify_calls > 0, f"the takeover read the activity log: {figures}"
        if activities == "answer":
            assert repeats == 0, f"no lead requested twice: {figures}"
            assert verified == in_flight, f"the interrupted call's leads verified: {figures}"
            assert counted == 0, figures
        else:
            assert verified == 0, figures
            assert 0 < repeated <= in_flight, f"the interrupted call sent again: {figures}"
            assert counted is not None and counted >= repeated, f"every repeat counted: {figures}"
    finally:
        if extra is not None:
            extra.kill()
        if run.alive():
            await asyncio.to_thread(run.stop)
        run.kill()
        sandbox.stop()
