"""Console defects against a real operator API: a flow refused (409) after its mapping was saved
says the mapping did change; two quick toggles run one after the other instead of the second
cancelling the first mid-request; a worker that raises unexpectedly, in any screen, is reported
by the app and the console keeps running."""

from __future__ import annotations

from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from apiclient.client import ApiClient
from apiclient.rows import FlowRow
from console.messages import FlowChanged
from console.screens.assign_tags import AssignTagsModal
from console.screens.flow_detail import FlowDetailScreen
from console.screens.flows import FlowsScreen
from console.screens.modals import ConfirmModal, TypeToConfirmModal
from tests.console.console_helpers import MakeConsole, keys, settle, type_text
from tests.console.control_harness import TOKEN, Control

TEST_FLOW = "test-registered"
"""A TEST flow, active: switching it on or off asks nothing."""
FORM_FLOW = "test-form"
"""A TEST flow; its mapping (`form-fields`) is shared, so saving a changed one asks first."""


async def api_flow(control: Control, flow_id: str) -> FlowRow:
    async with ApiClient.for_console(control.url, TOKEN) as client:
        return await client.flow(flow_id)


async def api_mapping(control: Control, mapping_id: str) -> dict[str, Any]:
    async with ApiClient.for_console(control.url, TOKEN) as client:
        return await client.mapping(mapping_id)


async def open_flow(pilot: Pilot[Any], flow_id: str) -> FlowDetailScreen:
    await settle(pilot)
    table = pilot.app.screen.query_one(DataTable)
    table.move_cursor(row=table.get_row_index(flow_id))
    await keys(pilot, "enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, FlowDetailScreen)
    return screen


async def test_a_flow_refused_after_its_mapping_was_saved_says_the_mapping_changed(
    control: Control, make_console: MakeConsole
) -> None:
    mapping_before = await api_mapping(control, "form-fields")
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await open_flow(pilot, FORM_FLOW)
        opened = await api_flow(control, FORM_FLOW)
        # Someone else saves the flow after the console read it: its version moves on.
        async with ApiClient.for_console(control.url, TOKEN) as other:
            theirs = dict(opened.raw, name="Renamed elsewhere")
            await other.save_flow(FORM_FLOW, theirs, opened.raw.get("version"))
        editor.query_one("#name", Input).value = "Renamed in the console"
        editor.query_one("#mapping-fields", DataTable).focus()
        await keys(pilot, "ctrl+d", "ctrl+s")
        assert isinstance(app.screen, ConfirmModal)  # the shared mapping is asked about
        await keys(pilot, "y")
        await settle(pilot)
        assert on_top(app) is editor
        assert app.errors, "the refused save was not reported"
        _, what, error = app.errors[-1]
        assert what == "save the flow"
        assert "nothing was changed" not in error
        assert "mapping 'form-fields' was saved" in error
        assert "flow 'Renamed in the console' was not" in error
        assert "reopen it, then re-apply" in error
        title = str(editor.query_one("#mapping-fields", DataTable).border_title)
        assert "changed, saved with the flow" not in title
    mapping_after = await api_mapping(control, "form-fields")
    assert len(mapping_after["fields"]) == len(mapping_before["fields"]) - 1
    assert (await api_flow(control, FORM_FLOW)).name == "Renamed elsewhere"


def on_top(app: Any) -> object:
    """The screen on top, read afresh (not narrowed by an earlier isinstance check)."""
    return app.screen


def press_at_once(pilot: Pilot[Any], *presses: str) -> None:
    """Queue key presses back to back, as a quick typist's arrive: none waits for what the one
    before it started (Pilot's `press` waits for the app to go idle after each key)."""
    for key in presses:
        event = events.Key(key, key)
        event.set_sender(pilot.app)
        pilot.app.post_message(event)


def notes(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_two_quick_toggles_run_one_after_the_other(
    control: Control, make_console: MakeConsole
) -> None:
    """`a a` on a TEST flow switches it off and on again: the second press waits for the
    first change (and says so) and is decided on the flow as that change left it."""
    messages: list[object] = []
    app = make_console(control)
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FlowsScreen)
        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(TEST_FLOW))
        await pilot.pause()
        name = screen.flows[TEST_FLOW].name
        assert screen.flows[TEST_FLOW].active
        press_at_once(pilot, "a", "a")
        await settle(pilot)
        changed = [m.what for m in messages if isinstance(m, FlowChanged)]
        assert changed == ["deactivated", "activated"]
        shown = notes(app)
        assert f"still switching {name}… this change follows it" in shown
        assert shown.index(f"{name}: deactivated") < shown.index(f"{name}: activated")
        assert (await api_flow(control, TEST_FLOW)).active
        assert "on" in str(table.get_cell(TEST_FLOW, "active"))
        assert not app.errors


async def test_a_toggle_that_asks_waits_its_turn_then_asks(
    control: Control, make_console: MakeConsole
) -> None:
    """`a` then `t`: the flow is switched off first; only then does TEST → LIVE ask for the
    flow's id. A question answered no lets the next toggle run."""
    messages: list[object] = []
    app = make_console(control)
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FlowsScreen)
        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(TEST_FLOW))
        await pilot.pause()
        press_at_once(pilot, "a", "t")
        await settle(pilot)
        assert isinstance(app.screen, TypeToConfirmModal)
        assert [m.what for m in messages if isinstance(m, FlowChanged)] == ["deactivated"]
        assert not (await api_flow(control, TEST_FLOW)).active
        await type_text(pilot, TEST_FLOW)
        await keys(pilot, "enter")
        await settle(pilot)
        assert on_top(app) is screen
        assert [m.what for m in messages if isinstance(m, FlowChanged)] == [
            "deactivated",
            "now LIVE",
        ]
        stored = await api_flow(control, TEST_FLOW)
        assert stored.mode == "live" and not stored.active
        assert "LIVE" in str(table.get_cell(TEST_FLOW, "mode"))
        assert "off" in str(table.get_cell(TEST_FLOW, "active"))
        # Said no to, a question lets the next toggle run.
        await keys(pilot, "t", "n", "a", "y")
        await settle(pilot)
        stored = await api_flow(control, TEST_FLOW)
        assert stored.mode == "live" and stored.active
        assert not app.errors


async def test_a_worker_that_raises_in_a_dialog_is_reported_and_the_console_runs_on(
    control: Control, make_console: MakeConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tag dialog is no `BaseScreen`; its worker's failure still reaches the app."""

    async def broken(*args: object, **kwargs: object) -> dict[str, Any]:
        raise RuntimeError("assign_tags broke")

    app = make_console(control)
    monkeypatch.setattr(app.client, "assign_tags", broken)
    async with app.run_test(size=(100, 30)) as pilot:
        await keys(pilot, "3")
        await settle(pilot)
        await keys(pilot, "a")
        modal = app.screen
        assert isinstance(modal, AssignTagsModal)
        modal.query_one("#label", Input).value = "Waitlisted"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert [(what, error) for _, what, error in app.errors] == [
            ("assign save", "RuntimeError: assign_tags broke")
        ]
        assert "RuntimeError: assign_tags broke" in notes(app)
        assert app.is_running and app.return_code is None
        await keys(pilot, "escape", "1")
        await settle(pilot)
        assert isinstance(app.screen, FlowsScreen)
        assert app.screen.query_one(DataTable).row_count > 0


async def test_a_worker_that_raises_in_a_screen_is_reported_once_and_the_screen_goes_stale(
    control: Control, make_console: MakeConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> list[FlowRow]:
        raise RuntimeError("flows broke")

    app = make_console(control)
    monkeypatch.setattr(app.client, "flows", broken)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FlowsScreen)
        assert [(what, error) for _, what, error in app.errors] == [
            ("flows load", "RuntimeError: flows broke")
        ]
        assert notes(app).count("RuntimeError: flows broke") == 1
        assert screen.stale and not screen.loading_now
        assert app.is_running and app.return_code is None
        monkeypatch.undo()
        await keys(pilot, "ctrl+r")
        await settle(pilot)
        assert not screen.stale
        assert screen.query_one(DataTable).row_count > 0
