"""`csignal run` started under umask 0o022 keeps its data dir private (issue 11, item 6): the
directory 0700, the ledger, its WAL, the token, the account and every log 0600 — while it runs
and after it stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from apiclient.client import ApiClient
from tests.control.test_private_files import loose_umask, modes, open_to_others
from tests.e2e.e2e_support import start_run
from tests.support.changes import registration_json
from tests.support.processes import until_running

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(240)]

WITHIN_S = 120.0


async def test_run_creates_its_data_dir_owner_only_under_a_loose_umask(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with loose_umask():
        run = start_run(data_dir, ["--headless", "--status-every", "1"])
    try:
        await run.wait_for(r"Signal is running", within=WITHIN_S)
        token = (data_dir / "api-token").read_text(encoding="utf-8").strip()
        async with ApiClient(run.api_url, token) as client:
            await client.post_changes([registration_json("private-run")])

            async def archived() -> bool:
                return bool(await client.scalar("SELECT count(*) FROM changes") == 1)

            await until_running(archived, "the change in the ledger", run, within=WITHIN_S)
        await run.wait_for(r"\] changes \d+", within=WITHIN_S)  # status lines: all up
        present = modes(data_dir)
        expected = {"signal.duckdb", "api-token", "logs", "logs/control.log", "logs/pipeline.log"}
        assert expected <= set(present), present
        assert open_to_others(data_dir) == {}, present
    except BaseException:
        run.kill()
        raise
    code = await asyncio.to_thread(run.stop)
    assert code == 0, run.output
    assert open_to_others(data_dir) == {}, modes(data_dir)
    assert "made owner-only" not in run.output  # nothing was ever created open to others
