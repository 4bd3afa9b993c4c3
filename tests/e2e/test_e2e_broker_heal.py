"""End to end: the embedded broker of a real `csignal run --headless` is SIGKILLed; the run heals
(a new broker on the same port, control and the pipeline restarted) and delivers again: the API
answers and a change ingested after the heal gets its outcomes, its lead in the sandbox."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.chaos_support import (
    FLOWS,
    SANDBOX_SECRET,
    SECRET_ENV,
    account_yaml,
    api_client,
    event_change,
    registration_change,
    start_run_logged,
    start_sandbox,
)
from tests.support.processes import until_running

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(900)]

WITHIN_S = 240.0


async def test_killed_broker_heals_the_run(tmp_path: Path) -> None:
    sandbox = await asyncio.to_thread(start_sandbox, tmp_path, 0.0)
    config = tmp_path / "account.yaml"
    config.write_text(account_yaml(sandbox.url), encoding="utf-8")
    run = start_run_logged(
        tmp_path / "data",
        ["--headless", "--config", str(config), "--status-every", "1"],
        "run.log",
        {SECRET_ENV: SANDBOX_SECRET},
    )
    try:
        await run.wait_for(r"Signal is running", within=WITHIN_S)
        first = await run.wait_for(r"control pid (\d+), pipeline pid (\d+), broker pid (\d+)")
        old = {int(pid) for pid in first.groups()}
        broker_port = (await run.wait_for(r"broker: embedded at \S+:(\d+)")).group(1)
        async with api_client(run) as client:
            await client.post_changes([event_change("heal")])
        os.kill(int(first.group(3)), signal.SIGKILL)

        healed = await run.wait_for(
            r"healed: new embedded broker at \S+:(\d+) .*broker pid (\d+), control pid (\d+), "
            r"pipeline pid (\d+)",
            within=WITHIN_S,
        )
        assert healed.group(1) == broker_port, run.output
        assert not {int(pid) for pid in healed.groups()[1:]} & old
        await run.wait_for(r"broker restarts 1", within=WITHIN_S)
        assert "csignal run:" not in run.output  # the run did not stop

        async with api_client(run) as client:
            # The event may have been lost with the old broker: announced again, harmlessly.
            await client.post_changes([event_change("heal"), registration_change("heal", 1)])

            async def outcomes() -> list[list[object]]:
                try:
                    rows = (
                        await client.sql(
                            "SELECT flow_id, status FROM outcomes WHERE change_id = 'heal-1'"
                        )
                    ).rows
                except Exception:
                    return []
                # A delivery in flight is `queued` until Marketo answers: wait for final states.
                final = len(rows) >= len(FLOWS) and all(r[1] != "queued" for r in rows)
                return rows if final else []

            rows = await until_running(outcomes, "the new change's outcomes", run, within=WITHIN_S)
            assert dict((str(r[0]), str(r[1])) for r in rows)[FLOWS[0]] == "delivered", rows
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{sandbox.url}/_sandbox/leads") as response,
        ):
            emails = {lead.get("email") for lead in (await response.json())["leads"]}
        assert "heal.1@example.com" in emails
    except BaseException:
        run.kill()
        raise
    finally:
        sandbox.stop()
    code = await asyncio.to_thread(run.stop)
    assert code == 0, run.output
    run.assert_all_gone([*run.pids(), *(int(p) for p in re.findall(r"pid (\d+)", run.output))])
