"""SVG snapshots of the replay screen at 80×24 and 120×40: the form, and a dry run's report
with its sample payload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select

from tests.console.console_helpers import MakeConsole
from tests.console.control_harness import Control
from tests.console.test_console_replay import FLOW
from tests.console.test_console_snapshots import SIZES, snapshot_control, steps


@pytest.fixture
def replay_control(tmp_path: Path) -> Iterator[Control]:
    """A control of its own per test: each test changes a flow before it looks."""
    yield from snapshot_control(tmp_path)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dry_run", [False, True], ids=["form", "dry_run"])
def test_replay_screen(
    snap_compare: Any,
    replay_control: Control,
    make_console: MakeConsole,
    dry_run: bool,
    size: tuple[int, int],
) -> None:
    replay_control.call(_activate_for_cancelled_now(replay_control))

    async def run(pilot: Pilot[Any]) -> None:
        await steps(("7",))(pilot)
        if dry_run:
            screen = pilot.app.screen
            screen.query_one("#replay-flow", Select).value = FLOW
            screen.query_one("#replay-from", Input).value = "2026-11-28"
            screen.query_one("#replay-to", Input).value = "2026-11-28"
            await steps(("ctrl+d",))(pilot)

    app = make_console(replay_control)
    assert snap_compare(app, terminal_size=size, run_before=run)


async def _activate_for_cancelled_now(control: Control) -> None:
    assert control.config is not None
    flow = control.config.account.flow(FLOW)
    assert flow is not None
    flow = flow.model_copy(deep=True)
    flow.activate_for.registration_statuses.append("cancelled")
    await control.config.update_flow(FLOW, flow, "test")
