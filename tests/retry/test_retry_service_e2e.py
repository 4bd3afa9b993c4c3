"""The retry queue and replays through the real services: `csignal control` (demo retry schedule)
and `csignal pipeline` as processes on an embedded broker, the Marketo sandbox with an outage,
and the operator acting through `csignal retry`, `csignal replay` and the operator API.

The services compare with the real clock (retry schedule, catalog order), so every change is
dated relative to now."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from apiclient.client import ApiClient
from simulators.marketo.sandbox import Sandbox
from stream.broker import EmbeddedBroker
from tests.retry.retry_helpers import SECRET, SECRET_VAR, account_yaml, event_dict
from tests.retry.retry_helpers import registration_dict as reg
from tests.support.clock import now as clock_now
from tests.support.clock import recent
from tests.support.processes import (
    ControlProcess,
    ServiceProcess,
    run_csignal,
    start_control,
    start_pipeline,
    until_running,
)
from tests.support.topics import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
T = TypeVar("T")


@dataclass
class Services:
    control: ControlProcess
    pipeline: ServiceProcess
    sandbox: Sandbox
    api: ApiClient
    broker: EmbeddedBroker

    async def csignal(self, *args: str) -> tuple[int, str, str]:
        env = {**self.control.env, "SIGNAL_API_TOKEN": self.control.token}
        return await run_csignal(*args, env=env)

    async def scalar(self, sql: str) -> Any:
        return await self.api.scalar(sql)

    async def wait(self, check: Callable[[], Awaitable[T]], what: str, within: float = 60.0) -> T:
        """Poll `check` while both services run; their log tails name what went wrong."""
        return await until_running(
            check, what, self.control, self.pipeline, within=within, every=0.2
        )


@pytest.fixture
async def services(
    tmp_path: Path, module_broker: EmbeddedBroker, sandbox: Sandbox
) -> AsyncIterator[Services]:
    """Signal's own services use fixed topic names and groups: a broker of this module's own."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    (data_dir / "account.yaml").write_text(account_yaml(sandbox.url), encoding="utf-8")
    pipeline = start_pipeline(module_broker, tmp_path, config_key=data_dir / "config-key")
    try:
        control = await asyncio.to_thread(
            start_control,
            module_broker,
            data_dir,
            args=["--retry-schedule", "demo"],
            env={SECRET_VAR: SECRET, "SIGNAL_ACTOR": "ops-ana"},
        )
    except BaseException:
        pipeline.kill()
        raise
    api = ApiClient(control.url, control.token)
    try:
        yield Services(control, pipeline, sandbox, api, module_broker)
    finally:
        await api.close()
        pipeline.stop()
        control.stop()


async def pipeline_has(services: Services, change_id: str, event_code: str) -> None:
    """Wait until the pipeline worker applied a configuration snapshot whose catalog holds the
    event change `change_id` (control publishes it; the worker logs each snapshot it applies)."""

    def carries(value: bytes) -> bool:
        entry = json.loads(value)["catalog"]["events"].get(event_code) or {}
        return bool(entry.get("changeId") == change_id)

    async def published() -> int | None:
        records = await read_topic(
            services.broker.bootstrap_servers,
            "signal-config",
            until=lambda rs: any(carries(r.value) for r in rs),
            within=1.0,
        )
        return next((json.loads(r.value)["version"] for r in records if carries(r.value)), None)

    version = await services.wait(published, f"a snapshot with {change_id}")
    assert version is not None

    async def applied() -> bool:
        found = re.findall(r"configuration snapshot (\d+) applied", services.pipeline.log())
        return any(int(v) >= version for v in found)

    await services.wait(applied, f"the pipeline applying snapshot {version} or later")


async def test_outage_abandon_resubmit_and_replay_through_the_services(
    services: Services,
) -> None:
    s = services
    now = clock_now()
    summit = event_dict(occurred_at=recent(days=1))
    assert (await s.api.post_changes([summit])).accepted == 1
    # The registration is routed against the catalog the worker holds: send it once the event
    # has reached the worker (on a loaded machine the snapshot may come long after).
    await pipeline_has(s, summit["changeId"], summit["eventCode"])
    assert (await s.api.post_changes([reg("w0", occurred_at=now)])).accepted == 1

    async def status_of(cid: str) -> str | None:
        value = await s.scalar(
            f"SELECT status FROM outcomes WHERE change_id = '{cid}' AND flow_id = 'nurture'"
        )
        return None if value is None else str(value)

    async def warm() -> bool:
        return await status_of("w0") == "delivered"

    await s.wait(warm, "the warm-up delivery", 150)

    # an outage outlasts the three demo retries: the item ends abandoned
    s.sandbox.start_outage(3600)
    await s.api.post_changes([reg("c1", occurred_at=now)])

    async def abandoned() -> bool:
        value = await s.scalar(
            "SELECT status || ':' || attempts FROM retry_queue "
            "WHERE change_id = 'c1' AND flow_id = 'nurture'"
        )
        return bool(value == "abandoned:4")

    await s.wait(abandoned, "c1 abandoned after 3 retries", 150)
    attempts = await s.api.sql(
        "SELECT attempt, status, category, reason FROM outcome_attempts "
        # each attempt's queued row (its delivery in flight) is left out
        "WHERE change_id = 'c1' AND flow_id = 'nurture' AND status <> 'queued' "
        "ORDER BY processed_at"
    )
    assert [r[0] for r in attempts.rows] == [1, 2, 3, 4], attempts.rows
    assert s.sandbox.state.find("email", "r-c1@example.com") == []
    code, out, err = await s.csignal("retry", "list", "--status", "abandoned")
    assert code == 0, err
    assert "c1" in out and "abandoned" in out

    # recovery; one resubmit from the command line delivers it once
    s.sandbox.end_outage()
    code, out, err = await s.csignal("retry", "submit", "c1/nurture")
    assert code == 0, err
    assert out.startswith("submitted 1;")

    async def resolved() -> bool:
        value = await s.scalar(
            "SELECT status FROM retry_queue WHERE change_id = 'c1' AND flow_id = 'nurture'"
        )
        return bool(value == "resolved")

    await s.wait(resolved, "c1 resolved after the resubmit", 60)
    assert await status_of("c1") == "delivered"
    assert len(s.sandbox.state.find("email", "r-c1@example.com")) == 1
    code, out, _ = await s.csignal("retry", "submit", "c1/nurture")
    assert code == 0 and "submitted 0;" in out and "1 already resolved" in out
    actors = await s.api.sql(
        "SELECT actor, object_id FROM config_audit WHERE object = 'retry_queue' ORDER BY seq"
    )
    assert [tuple(r) for r in actors.rows] == [("ops-ana", "c1/nurture")] * 2

    # a replay of the event: the dry run sends nothing, the replay re-sends both registrations
    calls_before = len(s.sandbox.calls())
    code, out, err = await s.csignal("replay", "nurture", "--event", "SUMMIT26", "--dry-run")
    assert code == 0, err
    assert "would send: 2" in out and "nothing was sent" in out
    assert len(s.sandbox.calls()) == calls_before
    code, out, err = await s.csignal("replay", "nurture", "--event", "SUMMIT26")
    assert code == 0, err
    match = re.search(r"(rp-[0-9a-f]+): done: published (\d+) · (\d+) delivered, 0 failed", out)
    assert match is not None, out
    replay_id, published, delivered = match.group(1), int(match.group(2)), int(match.group(3))
    assert (published, delivered) == (2, 2), "done only once every published change answered"

    async def replayed() -> bool:
        progress = await s.csignal("replay", "--status", replay_id, "--format", "json")
        return '"delivered": 2' in progress[1]

    await s.wait(replayed, "both replayed outcomes", 60)
    rows = await s.api.sql(
        "SELECT change_id, status, replayed FROM outcome_attempts "
        f"WHERE replay_id = '{replay_id}' AND status <> 'queued' ORDER BY change_id"
    )
    assert [tuple(r) for r in rows.rows] == [("c1", "delivered", True), ("w0", "delivered", True)]

    # an untagged status is a data failure; tagging it in the event setup and resubmitting sends it
    await s.api.post_changes([reg("u1", status="Waitlist", occurred_at=now)])

    async def held() -> bool:
        value = await s.scalar(
            "SELECT status || ':' || category FROM retry_queue WHERE change_id = 'u1'"
        )
        return bool(value == "pending:data")

    await s.wait(held, "u1 held as a data failure", 60)
    reason = str(await s.scalar("SELECT reason FROM retry_queue WHERE change_id = 'u1'"))
    assert "Waitlist" in reason and "resolves no tags" in reason
    tagged = event_dict(
        change_id="evt-2",
        occurred_at=now,
        statuses=[
            {"label": "New", "classification": "Accepted", "tags": []},
            {"label": "Waitlist", "classification": "Pending", "tags": ["registered"]},
        ],
    )
    await s.api.post_changes([tagged])

    async def settled() -> bool:
        value = await s.scalar("SELECT status FROM retry_queue WHERE change_id = 'u1'")
        return value in ("pending", "resolved")

    # an operator who resubmits before the new setup reached the worker sees the item come back
    # held: wait until the worker has applied it, then one resubmit delivers
    await pipeline_has(s, "evt-2", "SUMMIT26")
    code, out, err = await s.csignal(
        "retry", "submit", "--all-matching", "--category", "data", "--status", "pending"
    )
    assert code == 0, err
    assert out.startswith("submitted 1;"), out
    await s.wait(settled, "u1 settled after a resubmit")
    assert await status_of("u1") == "delivered"
    assert len(s.sandbox.state.find("email", "r-u1@example.com")) == 1
