"""The console against a real `csignal control` process: embedded broker, control worker with its
DuckDB file and operator API, and a Marketo sandbox for Save & Test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from textual.widgets import DataTable, TextArea

from apiclient.client import ApiClient
from console.app import make_app
from console.messages import ConnectionTested
from simulators.certain.demo_account import SECRET_ENV, demo_account
from simulators.marketo.sandbox import Sandbox
from stream.broker import EmbeddedBroker
from tests.console.console_helpers import fixed_clock, keys, screen_text, settle
from tests.support.processes import start_control

pytestmark = pytest.mark.integration


@pytest.fixture
def real_control(
    module_broker: EmbeddedBroker, sandbox: Sandbox, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "account.yaml").write_text(yaml.safe_dump(demo_account(sandbox.url)))
    control = start_control(module_broker, data_dir, env={SECRET_ENV: "sandbox-secret"})
    try:
        yield control.url, control.token
    finally:
        control.stop()


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
    client = ApiClient.for_console(url, token)
    try:
        async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
            await settle(pilot)
            table = app.screen.query_one(DataTable)
            assert table.row_count == len(demo_account("http://x")["flows"])
            table.move_cursor(row=table.get_row_index("registered-to-nurture"))
            await keys(pilot, "a", "y")  # a LIVE flow: switching it off asks first
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
