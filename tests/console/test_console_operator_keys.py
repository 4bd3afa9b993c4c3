"""Keys an operator tried and found wanting: esc out of a replay text box, the retry queue's page
hints, g/G in the help panel, ctrl+e in a text box."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Select

from console.screens.replay import ReplayScreen
from tests.console.console_helpers import MakeConsole, keys, settle, type_text
from tests.console.control_harness import Control


async def _goto(pilot: Pilot[Any], key: str) -> None:
    await settle(pilot)
    await keys(pilot, key)
    await settle(pilot)


async def test_esc_leaves_a_replay_text_box_then_the_screen(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await _goto(pilot, "7")
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        event = screen.query_one("#replay-event", Input)
        event.focus()
        await type_text(pilot, "SUMMIT")
        await keys(pilot, "escape")
        await settle(pilot)
        assert isinstance(app.focused, Select)
        assert event.value == "SUMMIT"
        await keys(pilot, "q")
        await settle(pilot)
        assert not isinstance(app.screen, ReplayScreen)
        assert event.value == "SUMMIT"

        await _goto(pilot, "7")
        assert isinstance(app.screen, ReplayScreen)
        app.screen.query_one("#replay-from", Input).focus()
        await keys(pilot, "escape", "escape")
        await settle(pilot)
        assert not isinstance(app.screen, ReplayScreen)
