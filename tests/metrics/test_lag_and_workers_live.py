"""Consumer lag and live workers as an operator reads them, from real services: `csignal
control` and `csignal pipeline` as processes on an embedded broker of this module (the fixed
group names), delivering to the Marketo sandbox.

A worker killed with SIGKILL drops out of the count (its heartbeats stop; the broker's group
listing would keep it), changes ingested meanwhile show as lag on `certain-changes` in the
summary and in /metrics, and a new worker brings the count back to 1 and the lag to 0.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from apiclient.client import ApiClient
from stream.broker import EmbeddedBroker
from tests.retry.retry_helpers import SECRET, SECRET_VAR, account_yaml, event_dict
from tests.retry.retry_helpers import registration_dict as reg
from tests.support.clock import recent
from tests.support.fixtures import MakeSandbox
from tests.support.processes import (
    ControlProcess,
    ServiceProcess,
    start_control,
    start_pipeline,
    until_running,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

WITHIN_S = 120.0
"""Generous: a loaded machine starts a worker (and lets the broker admit it) slowly."""

LAG_LINE = re.compile(r'^signal_consumer_lag\{group="([^"]+)",topic="([^"]+)"\} (\d+)$', re.M)


@dataclass
class Services:
    control: ControlProcess
    api: ApiClient
    http: aiohttp.ClientSession
    broker: EmbeddedBroker
    workdir: Path
    pipeline: ServiceProcess | None = None

    def start_pipeline(self, name: str) -> None:
        config_key = self.control.data_dir / "config-key"
        self.pipeline = start_pipeline(self.broker, self.workdir, name=name, config_key=config_key)

    async def status(self) -> dict[str, Any]:
        body = await self.api.metrics_summary("live", "1h")
        status: dict[str, Any] = body["processing_status"]
        return status

    async def scrape(self) -> dict[tuple[str, str], int]:
        async with self.http.get(
            f"{self.control.url}/metrics", headers=self.control.auth()
        ) as response:
            assert response.status == 200
            text = await response.text()
        return {(t, g): int(n) for g, t, n in LAG_LINE.findall(text)}

    async def recorded(self) -> int:
        """Changes with a final outcome for every flow (this account has two)."""
        rows = await self.control.sql(
            self.http,
            "SELECT count(*) FROM (SELECT change_id FROM outcomes WHERE status <> 'queued' "
            "GROUP BY change_id HAVING count(DISTINCT flow_id) = 2)",
        )
        return int(rows[0][0])

    async def until(self, check: Any, what: str) -> Any:
        running = [p for p in (self.control, self.pipeline) if p is not None and p.alive()]
        return await until_running(check, what, *running, within=WITHIN_S, every=0.25)


@pytest.fixture
async def services(
    tmp_path: Path, module_broker: EmbeddedBroker, make_sandbox: MakeSandbox
) -> AsyncIterator[Services]:
    sandbox = await make_sandbox(client_secret=SecretStr(SECRET))
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    (data_dir / "account.yaml").write_text(account_yaml(sandbox.url), encoding="utf-8")
    control = await asyncio.to_thread(
        start_control, module_broker, data_dir, env={SECRET_VAR: SECRET}
    )
    api = ApiClient(control.url, control.token)
    http = aiohttp.ClientSession()
    made = Services(control, api, http, module_broker, tmp_path)
    try:
        yield made
    finally:
        await http.close()
        await api.close()
        if made.pipeline is not None:
            made.pipeline.stop()
        control.stop()


async def test_lag_rises_while_no_worker_runs_and_workers_count_follows_kill_and_restart(
    services: Services,
) -> None:
    s = services
    status = await s.status()
    assert set(status) >= {"consumer_lag", "consumer_lag_by_topic", "workers_alive"}
    # Unknown (None) until control reads the heartbeat topic, then 0: no worker started yet.
    await s.until(lambda: _is(s.status(), "workers_alive", 0), "no live worker counted")

    s.start_pipeline("first")
    await s.until(lambda: _is(s.status(), "workers_alive", 1), "one live worker")

    now = recent()
    first = [event_dict(change_id="evt-lag", occurred_at=now)]
    first += [reg(f"a{i}", occurred_at=now) for i in range(20)]
    assert (await s.api.post_changes(first)).accepted == len(first)
    await s.until(lambda: _recorded_at_least(s, len(first)), "the first changes' outcomes recorded")
    await s.until(lambda: _is(s.status(), "consumer_lag", 0), "lag back to 0")

    assert s.pipeline is not None
    s.pipeline.kill()
    await s.until(lambda: _is(s.status(), "workers_alive", 0), "the killed worker dropped")

    later = [reg(f"b{i}", occurred_at=recent()) for i in range(30)]
    assert (await s.api.post_changes(later)).accepted == len(later)

    async def waiting_on_changes() -> bool:
        by_topic = (await s.status())["consumer_lag_by_topic"] or {}
        return int(by_topic.get("certain-changes", 0)) >= len(later)

    await s.until(waiting_on_changes, "lag of certain-changes covering the new changes")
    scraped = await s.scrape()
    assert scraped[("certain-changes", "signal-pipeline")] >= len(later), scraped
    # Control archives them all the same: its own lag on the topic goes to 0.
    await s.until(
        lambda: _scraped(s, ("certain-changes", "signal-control"), 0), "control archived them"
    )
    status = await s.status()
    assert status["workers_alive"] == 0
    assert status["consumer_lag_by_topic"]["certain-changes"] >= len(later), status

    s.start_pipeline("second")
    await s.until(lambda: _is(s.status(), "workers_alive", 1), "the new worker counted")
    await s.until(
        lambda: _recorded_at_least(s, len(first) + len(later)), "every change's outcome recorded"
    )
    await s.until(lambda: _is(s.status(), "consumer_lag", 0), "lag back to 0 after the restart")
    scraped = await s.scrape()
    assert set(scraped) == {
        ("certain-changes", "signal-pipeline"),
        ("certain-changes", "signal-control"),
        ("signal-deliveries", "signal-pipeline"),
        ("signal-outcomes", "signal-control"),
    }
    assert set(scraped.values()) == {0}, scraped

    # A clean stop says so in its last beat: the count drops without waiting for beats to stop.
    s.pipeline.stop()
    await s.until(lambda: _is(s.status(), "workers_alive", 0), "the stopped worker dropped")


async def _is(status: Any, name: str, value: int) -> bool:
    got = (await status)[name]
    return bool(got == value)


async def _recorded_at_least(s: Services, count: int) -> bool:
    return await s.recorded() >= count


async def _scraped(s: Services, key: tuple[str, str], value: int) -> bool:
    return (await s.scrape()).get(key) == value
