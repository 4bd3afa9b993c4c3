"""The console against a real `csignal control` process: embedded broker, control worker with its
DuckDB file and operator API, and a Marketo sandbox for Save & Test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from textual.widgets import DataTable, TextArea

from console.app import make_app
from console.client import ConsoleClient
from console.messages import ConnectionTested
from stream.broker import EmbeddedBroker, die_with_parent, free_port
from stream.certain.demo_account import SECRET_ENV, demo_account
from stream.marketo.sandbox import Sandbox, SandboxConfig
from tests.console.console_helpers import fixed_clock, keys, screen_text, settle

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def console_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
async def marketo() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(SandboxConfig())
    await sandbox.start("127.0.0.1", 0)
    yield sandbox
    await sandbox.stop()


@pytest.fixture
def real_control(
    console_broker: EmbeddedBroker, marketo: Sandbox, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "account.yaml").write_text(yaml.safe_dump(demo_account(marketo.url)))
    port = free_port()
    env = {
        **os.environ,
        "SIGNAL_BROKER": console_broker.url,
        "SIGNAL_DATA_DIR": str(data_dir),
        "SIGNAL_API": f"127.0.0.1:{port}",
        SECRET_ENV: "sandbox-secret",
    }
    log_path = tmp_path / "control.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream", "control"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )
    try:
        deadline = time.monotonic() + 60
        while "operator API listening on" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        token = (data_dir / "api-token").read_text().strip()
        yield f"http://127.0.0.1:{port}", token
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def test_console_drives_a_real_control(real_control: tuple[str, str]) -> None:
    url, token = real_control
    messages: list[object] = []
    app = make_app(
        url,
        token,
        clock=fixed_clock,
        refresh_s=0,
        watch_tty=False,
        keymap_file=Path("/nonexistent"),
    )
    client = ConsoleClient(url, token)
    try:
        async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
            await settle(pilot)
            table = app.screen.query_one(DataTable)
            assert table.row_count == len(demo_account("http://x")["flows"])
            table.move_cursor(row=table.get_row_index("registered-to-nurture"))
            await keys(pilot, "a")
            assert not (await client.flow("registered-to-nurture")).active
            await keys(pilot, "2")
            await settle(pilot)
            await keys(pilot, "t")
            await settle(pilot)
            [tested] = [m for m in messages if isinstance(m, ConnectionTested)]
            assert tested.result.ok, tested.result.message
            await keys(pilot, "6")
            app.screen.query_one(
                TextArea
            ).text = "SELECT object_id FROM config_audit WHERE object = 'flow' ORDER BY 1"
            await keys(pilot, "ctrl+j")
            await settle(pilot)
            assert "registered-to-nurture" in screen_text(pilot)
            await keys(pilot, "escape", "4")
            await settle(pilot)
            assert "0 of 0" in str(app.screen.query_one(DataTable).border_subtitle)
            await keys(pilot, "5")
            await settle(pilot)
            assert "Changes processed" in screen_text(pilot)
            assert not [e for e in app.errors if "metrics" in e[1]]
    finally:
        await client.close()
    async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as response:
        assert response.status == 200
