"""End to end, a replay outlives the control that runs it: a real `csignal run` (embedded broker,
control with its DuckDB ledger, pipeline) delivers a burst to the Marketo sandbox, an operator
replays the flow for the event, and control is SIGKILLed while the replay is publishing. The run
restarts control, which resumes the replay after the last chunk it saved: every change of the
scope is replayed, each lead gets exactly one campaign request from the replay (the chunk
published again after the restart is skipped as duplicates), and the replay's progress says
done with the whole scope published.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from apiclient.errors import ApiError
from tests.e2e.chaos_support import (
    FLOWS,
    SANDBOX_SECRET,
    SECRET_ENV,
    Burst,
    account_yaml,
    api_client,
    api_token,
    complete_changes,
    event_change,
    marketo_repeats,
    registration_change,
    start_run_logged,
    start_sandbox,
)
from tests.support.waiting import until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

CHANGES = 2500
"""More than a replay keeps awaiting outcomes at once (1,000), so it is publishing for a while."""
PREFIX = "rr"


def control_pid(output: str) -> int:
    pids = re.findall(r"control (?:pid|restarted \(pid) (\d+)", output)
    return int(pids[-1])


async def test_a_replay_survives_a_sigkill_of_control(tmp_path: Path) -> None:
    sandbox = await asyncio.to_thread(start_sandbox, tmp_path)
    config = tmp_path / "account.yaml"
    config.write_text(account_yaml(sandbox.url), encoding="utf-8")
    run = start_run_logged(
        tmp_path / "data",
        ["--headless", "--config", str(config), "--status-every", "5"],
        "run.log",
        {SECRET_ENV: SANDBOX_SECRET},
    )
    try:
        await run.wait_for(r"Signal is running", within=180)
        changes = [registration_change(PREFIX, n) for n in range(CHANGES)]
        client = api_client(run)
        async with client:
            await client.post_changes([event_change(PREFIX)])
            burst = Burst(run.api_url, api_token(run), changes)
            await burst.run()
            assert len(burst.accepted) == CHANGES

            async def delivered() -> bool:
                return len(await complete_changes(client, PREFIX)) >= CHANGES

            await until(delivered, "the burst delivered", within=300, every=1.0)
            started = await client.replay_start({"flow_id": FLOWS[0], "event_code": "SUMMIT26"})
            replay_id = str(started["id"])

            async def publishing_midway() -> dict[str, Any] | None:
                progress = await client.replay(replay_id)
                assert progress["state"] in ("publishing", "awaiting_outcomes"), progress
                return progress if progress["published"] >= 500 else None

            before = await until(publishing_midway, "the replay half published", every=0.02)
            assert before is not None
        killed = control_pid(run.output)
        os.kill(killed, signal.SIGKILL)
        await run.wait_for(r"control restarted \(pid", within=120)
        assert before["published"] < CHANGES, "killed while the replay was publishing"

        client = api_client(run)
        async with client, aiohttp.ClientSession() as session:

            async def finished() -> dict[str, Any] | None:
                try:
                    progress = await client.replay(replay_id)
                except (ApiError, aiohttp.ClientError):
                    return None  # control is starting again
                return progress if progress["finished"] else None

            done = await until(finished, "the replay done after the restart", within=300, every=1)
            assert done is not None
            assert done["state"] == "done", done
            assert done["resumes"] == 1, done
            assert (done["published"], done["in_scope"], done["delivered"]) == (
                CHANGES,
                CHANGES,
                CHANGES,
            ), done["summary"]
            assert done["failed"] == 0 and done["pending"] == 0, done["summary"]

            extra, leads, requested = await marketo_repeats(session, sandbox.url, PREFIX)
            assert len(requested) == CHANGES
            assert (extra, leads) == (CHANGES, CHANGES), (
                "each lead exactly twice: delivered once, replayed once"
            )
            stored = await client.sql(
                f"SELECT publishing, resumes FROM replays WHERE id = '{replay_id}'"
            )
            assert [tuple(r) for r in stored.rows] == [("published", 1)]
    finally:
        if run.alive():
            await asyncio.to_thread(run.stop)
        run.kill()
        sandbox.stop()
