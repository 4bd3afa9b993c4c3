"""The retry queue and replays through the real services: `csignal control` (demo retry schedule)
and `csignal pipeline` as processes on an embedded broker, the Marketo sandbox with an outage,
and the operator acting through `csignal retry`, `csignal replay` and the operator API."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stream.apiclient import ApiClient
from stream.broker import EmbeddedBroker, die_with_parent, free_port
from stream.marketo.sandbox import Sandbox, SandboxConfig
from tests.retry.retry_helpers import SECRET, SECRET_VAR, account_yaml, event_dict
from tests.retry.retry_helpers import registration_dict as reg

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    log_path: Path

    def tail(self) -> str:
        return self.log_path.read_bytes()[-3000:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Services:
    control: Proc
    pipeline: Proc
    sandbox: Sandbox
    api: ApiClient
    env: dict[str, str]

    async def csignal(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stream",
            *args,
            cwd=REPO,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def scalar(self, sql: str) -> Any:
        return await self.api.scalar(sql)

    async def wait(self, check: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await check():
                return
            for proc in (self.control, self.pipeline):
                if proc.process.poll() is not None:
                    raise AssertionError(f"a service exited:\n{proc.tail()}")
            await asyncio.sleep(0.2)
        raise AssertionError(
            f"{what} not seen within {within:g} s\ncontrol:\n{self.control.tail()}\n"
            f"pipeline:\n{self.pipeline.tail()}"
        )


@pytest.fixture(scope="module")
def service_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> Proc:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )
    return Proc(process, log_path)


@pytest.fixture
async def services(tmp_path: Path, service_broker: EmbeddedBroker) -> AsyncIterator[Services]:
    sandbox = Sandbox(SandboxConfig())
    await sandbox.start("127.0.0.1", 0)
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    (data_dir / "account.yaml").write_text(account_yaml(sandbox.url), encoding="utf-8")
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL_")}
    env = {
        **base,
        "SIGNAL_BROKER": service_broker.url,
        "SIGNAL_DATA_DIR": str(data_dir),
        "SIGNAL_API": f"127.0.0.1:{port}",
        SECRET_VAR: SECRET,
        "SIGNAL_ACTOR": "ops-ana",
    }
    control = _spawn(["control", "--retry-schedule", "demo"], env, tmp_path / "control.log")
    pipeline = _spawn(
        ["pipeline", "--data-dir", str(tmp_path / "pipeline")],
        {k: v for k, v in env.items() if k != "SIGNAL_DATA_DIR"},
        tmp_path / "pipeline.log",
    )
    deadline = time.monotonic() + 90
    while "operator API listening on" not in control.tail():
        if control.process.poll() is not None or time.monotonic() > deadline:
            pipeline.stop()
            raise AssertionError(f"control did not start:\n{control.tail()}")
        await asyncio.sleep(0.1)
    token = (data_dir / "api-token").read_text().strip()
    api = ApiClient(f"http://127.0.0.1:{port}", token)
    try:
        yield Services(control, pipeline, sandbox, api, {**env, "SIGNAL_API_TOKEN": token})
    finally:
        await api.close()
        pipeline.stop()
        control.stop()
        await sandbox.stop()


async def test_outage_abandon_resubmit_and_replay_through_the_services(
    services: Services,
) -> None:
    s = services
    now = datetime.now(UTC)
    result = await s.api.post_changes([event_dict(), reg("w0", occurred_at=now)])
    assert result.accepted == 2

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
        "WHERE change_id = 'c1' AND flow_id = 'nurture' ORDER BY processed_at"
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
    match = re.search(r"(rp-[0-9a-f]+): done - scanned (\d+), published (\d+)", out)
    assert match is not None, out
    replay_id, scanned, published = match.group(1), int(match.group(2)), int(match.group(3))
    assert (scanned, published) == (3, 2)

    async def replayed() -> bool:
        progress = await s.csignal("replay", "--status", replay_id, "--format", "json")
        return '"delivered": 2' in progress[1]

    await s.wait(replayed, "both replayed outcomes", 60)
    rows = await s.api.sql(
        "SELECT change_id, status, replayed FROM outcome_attempts "
        f"WHERE replay_id = '{replay_id}' ORDER BY change_id"
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

    # the new setup reaches the worker within about 2 s; an operator who resubmits sooner sees
    # the item come back held, and resubmits again
    for _ in range(5):
        await asyncio.sleep(2.0)
        code, out, err = await s.csignal(
            "retry", "submit", "--all-matching", "--category", "data", "--status", "pending"
        )
        assert code == 0, err
        assert out.startswith("submitted 1;"), out
        await s.wait(settled, "u1 settled after a resubmit", 60)
        if await status_of("u1") == "delivered":
            break
    assert await status_of("u1") == "delivered"
    assert len(s.sandbox.state.find("email", "r-u1@example.com")) == 1
