"""The connection and Certain source forms ask before esc drops unsaved edits, as the flow
editor does: save (Save & Test, then close), discard, or keep editing."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input

from apiclient.client import ApiClient
from console.screens.connections import ConnectionForm, ConnectionsScreen
from console.screens.modals import UnsavedModal
from console.screens.source_form import SourceForm
from tests.console.console_helpers import MakeConsole, keys, settle, type_text
from tests.console.control_harness import TOKEN, Control

CONNECTION = "demo-marketo"


def _on_top(pilot: Pilot[Any], kind: type[Screen[Any]]) -> bool:
    return isinstance(pilot.app.screen, kind)


async def _connection_name(control: Control) -> str:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        [row] = [c for c in await client.connections() if c.id == CONNECTION]
    finally:
        await client.close()
    return row.name


async def test_esc_asks_before_dropping_connection_edits(
    control: Control, make_console: MakeConsole
) -> None:
    before = await _connection_name(control)
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await keys(pilot, "2", "enter")
        form = app.screen
        assert isinstance(form, ConnectionForm)
        await keys(pilot, "escape")  # nothing edited: closes at once
        await settle(pilot)
        assert _on_top(pilot, ConnectionsScreen)

        await keys(pilot, "enter")
        form = app.screen
        assert isinstance(form, ConnectionForm)
        await keys(pilot, "end")
        await type_text(pilot, " renamed")
        await keys(pilot, "escape")
        await settle(pilot)
        assert _on_top(pilot, UnsavedModal)
        await keys(pilot, "k")
        assert app.screen is form
        assert form.query_one("#name", Input).value == before + " renamed"

        await keys(pilot, "escape")
        assert _on_top(pilot, UnsavedModal)
        await keys(pilot, "d")
        await settle(pilot)
        assert _on_top(pilot, ConnectionsScreen)
        assert await _connection_name(control) == before

        await keys(pilot, "enter")
        await keys(pilot, "end")
        await type_text(pilot, " saved")
        await keys(pilot, "escape")
        assert _on_top(pilot, UnsavedModal)
        await keys(pilot, "s")
        await settle(pilot, rounds=8)
        assert _on_top(pilot, ConnectionsScreen)
    assert await _connection_name(control) == before + " saved"


async def test_esc_asks_before_dropping_a_new_certain_source(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2", "c")
        form = app.screen
        assert isinstance(form, SourceForm)
        form.query_one("#name", Input).focus()
        await type_text(pilot, "ACME")
        await keys(pilot, "escape")
        await settle(pilot)
        assert _on_top(pilot, UnsavedModal)
        await keys(pilot, "escape")  # esc in the question keeps editing
        assert app.screen is form
        await keys(pilot, "escape", "d")
        await settle(pilot)
        assert _on_top(pilot, ConnectionsScreen)
