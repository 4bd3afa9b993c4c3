"""Keys an operator tried and found wanting: esc out of a replay text box, the retry queue's page
hints, g/G in the help panel, ctrl+e in a text box."""

from __future__ import annotations

from typing import Any

import pytest
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from console.screens import retry
from console.screens.erase_person import ErasePerson
from console.screens.help import HelpScreen
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


async def test_retry_page_hints_only_when_there_is_another_page(
    control: Control, make_console: MakeConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await _goto(pilot, "4")
        subtitle = str(app.screen.query_one(DataTable).border_subtitle)
        total = int(subtitle.split(" of ")[1].split()[0])
        assert 10 < total <= retry.PAGE_SIZE
        assert "next" not in subtitle and "previous" not in subtitle

        monkeypatch.setattr(retry, "PAGE_SIZE", 10)
        await keys(pilot, "ctrl+r")
        await settle(pilot)
        subtitle = str(app.screen.query_one(DataTable).border_subtitle)
        assert subtitle.startswith(f"1–10 of {total}")
        assert "] next" in subtitle and "previous" not in subtitle
        await keys(pilot, "right_square_bracket")
        await settle(pilot)
        subtitle = str(app.screen.query_one(DataTable).border_subtitle)
        assert subtitle.startswith(f"11–20 of {total}")
        assert subtitle.endswith("category [ previous ] next")


async def test_g_and_shift_g_scroll_the_help_panel(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await _goto(pilot, "4")
        await keys(pilot, "question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        box = app.screen.query_one("#help", VerticalScroll)
        assert box.max_scroll_y > 0 and box.scroll_y == 0
        await keys(pilot, "G")
        await settle(pilot)
        assert box.scroll_y == box.max_scroll_y
        await keys(pilot, "g")
        await settle(pilot)
        assert box.scroll_y == 0
        assert isinstance(app.screen, HelpScreen)


async def test_ctrl_e_in_a_text_box_ends_the_line_and_help_says_so(
    control: Control, make_console: MakeConsole
) -> None:
    """A text box keeps ctrl+e (end of line, as in every shell): erasing a person is a dangerous
    dialog that must not open while typing; help says where ctrl+e erases."""
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await _goto(pilot, "7")
        box = app.screen.query_one("#replay-event", Input)
        box.focus()
        await type_text(pilot, "SUMMIT")
        await keys(pilot, "home", "ctrl+e")
        await settle(pilot)
        assert not isinstance(app.screen, ErasePerson)
        assert box.cursor_position == len("SUMMIT")
        await keys(pilot, "f1")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help Static", Static).render())
        assert "Erase a person" in text
        assert "A text box takes ? and ctrl+e (end of line): f1 opens help there." in text
        await keys(pilot, "escape", "escape")
        await settle(pilot)
        await keys(pilot, "ctrl+e")
        await settle(pilot)
        assert isinstance(app.screen, ErasePerson)
