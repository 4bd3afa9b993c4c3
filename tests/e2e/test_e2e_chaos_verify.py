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
from typing import Any

import aiohttp
import pytest

from apiclient.errors import ApiError
from tests.e2e.chaos_support import (
    CAMPAIGN_LEADS_PER_CALL,
    FLOWS,
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
    kill_delivering_worker,
    ledger_figures,
    marketo_repeats,
    registration_change,
    start_run_logged,
    start_sandbox,
    verification_figures,
)
from tests.support.processes import ServiceProcess
from tests.support.waiting import until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

LATENCY_MS = 2500.0
"""Every sandbox call takes this long: the window to kill a worker with a call in flight."""
CHANGES = 250


async def sending_marks(client: Any, prefix: str) -> int:
    try:
        value = await client.scalar(
            "SELECT count(*) FROM delivery_marks "
            f"WHERE state = 'sending' AND change_id LIKE '{prefix}-%'"
        )
    except ApiError:
        return 0
    return int(value or 0)


@pytest.mark.parametrize("activities", ["answer", "fail"])
async def test_a_campaign_call_in_flight_at_a_worker_kill_is_verified_not_sent_again(
    tmp_path: Path, activities: str
) -> None:
    prefix = f"v{activities[0]}"
    sandbox = await asyncio.to_thread(start_sandbox, tmp_path, LATENCY_MS)
    config = tmp_path / "account.yaml"
    config.write_text(account_yaml(sandbox.url), encoding="utf-8")
    data_dir = tmp_path / "data"
    run = start_run_logged(
        data_dir,
        ["--headless", "--config", str(config), "--status-every", "5"],
        "run.log",
        {SECRET_ENV: SANDBOX_SECRET},
    )
    extra: ServiceProcess | None = None
    try:
        await run.wait_for(r"Signal is running", within=180)
        client = api_client(run)
        async with client, aiohttp.ClientSession() as session:
            if activities == "fail":
                fault = {"code": "611", "count": 10_000, "endpoint": "activities.list"}
                async with session.post(f"{sandbox.url}/_sandbox/faults", json=fault) as reply:
                    assert reply.status == 201
            await client.post_changes([event_change(prefix)])

            async def event_routed() -> bool:
                query = f"SELECT count(*) FROM outcomes WHERE change_id = '{prefix}-event'"
                return int(await client.scalar(query) or 0) >= len(FLOWS)

            await until(event_routed, "the event's outcomes", within=180, every=0.5)
            extra = await _start_extra_worker(run, tmp_path)
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
            victim = kill_delivering_worker(run, extra, sandbox.port)
            in_flight = await sending_marks(client, prefix)

            async def recovered() -> bool:
                try:
                    return burst.accepted <= await complete_changes(client, prefix)
                except ApiError:
                    return False

            await until(recovered, "every change delivered", within=600, every=1.0)
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
