"""`csignal run --demo` imports the demo account into an empty data dir only: a second run over
the same data dir keeps what the operator changed, says so on the terminal, and points the kept
demo connection at its own sandbox so deliveries go on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from apiclient.client import ApiClient
from tests.e2e.e2e_support import RunProcess, start_run
from tests.support.processes import until_running

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(300)]

ARGS = ["--demo", "--headless", "--rate", "10", "--status-every", "1"]
EDITED = "registered-to-nurture"


def client(run: RunProcess) -> ApiClient:
    token = (run.data_dir / "api-token").read_text(encoding="utf-8").strip()
    return ApiClient(run.api_url, token)


async def delivered(api: ApiClient) -> int:
    return int(await api.scalar("SELECT count(*) FROM outcomes WHERE status = 'delivered'") or 0)


async def flow(api: ApiClient, flow_id: str) -> dict[str, Any]:
    found = [f.raw for f in await api.flows() if f.id == flow_id]
    assert found, f"no flow {flow_id!r}"
    return found[0]


async def test_a_second_demo_run_keeps_the_operators_account(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    first = start_run(data_dir, ARGS)
    try:
        await first.wait_for(r"Signal is running", within=120)
        assert "imported the demo account" in first.output
        async with client(first) as api:
            await api.set_active(EDITED, False)
            assert (await flow(api, EDITED))["active"] is False
            audited = await api.scalar("SELECT count(*) FROM config_audit")
    except BaseException:
        first.kill()
        raise
    assert first.stop() == 0, first.output
    (tmp_path / "run.log").rename(tmp_path / "first-run.log")

    second = start_run(data_dir, ARGS)
    try:
        sandbox_url = (await second.wait_for(r"Marketo sandbox: (http://\S+)")).group(1)
        await second.wait_for(r"Signal is running", within=120)
        output = second.output
        assert f"keeping the account in {data_dir.resolve()}: 8 flows, 1 connection (" in output
        assert "start with an empty --data-dir for a fresh demo" in output
        assert "imported the demo account" not in output
        assert f"connection demo-marketo now points at this run's sandbox ({sandbox_url})" in output
        async with client(second) as api:
            assert (await flow(api, EDITED))["active"] is False, "the operator's edit was reverted"
            connection = await api.call("GET", "/connections/demo-marketo")
            assert connection["service_url"].rstrip("/") == sandbox_url.rstrip("/")
            assert connection["secret_set"] is True
            # Two audit rows more: the connection's and the Certain source's new URLs; no
            # import over the operator's flows.
            assert await api.scalar("SELECT count(*) FROM config_audit") == audited + 2
            certain_url = re.search(r"Certain sandbox: (http://\S+)", output)
            assert certain_url is not None
            [source] = await api.sources()
            assert source.host.rstrip("/") == certain_url.group(1).rstrip("/")
            assert source.password_set
            before = await delivered(api)

            async def more_delivered() -> bool:
                return await delivered(api) > before

            await until_running(more_delivered, "deliveries to the new sandbox", second, within=90)
    except BaseException:
        second.kill()
        raise
    assert second.stop() == 0, second.output
