"""The flow list end to end: toggles reach control, confirmations guard LIVE and incomplete
flows, read-only mode hides every change."""

from __future__ import annotations

from textual.widgets import DataTable, Input

from apiclient.client import ApiClient
from console.messages import FlowChanged, FlowsLoaded
from console.screens.modals import ConfirmModal, TextModal, TypeToConfirmModal
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import TOKEN, Control


async def api_flow(control: Control, flow_id: str):  # type: ignore[no-untyped-def]
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        return await client.flow(flow_id)
    finally:
        await client.close()


async def goto_row(pilot, flow_id: str) -> None:  # type: ignore[no-untyped-def]
    table = pilot.app.screen.query_one(DataTable)
    table.move_cursor(row=table.get_row_index(flow_id))
    await pilot.pause()


async def test_list_shows_flows_with_state_in_words(
    fixed_control: Control, make_console: MakeConsole
) -> None:
    messages: list[object] = []
    app = make_console(fixed_control)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await settle(pilot)
        [loaded] = [m for m in messages if isinstance(m, FlowsLoaded)]
        assert len(loaded.flows) == 9
        text = screen_text(pilot)
        assert "incomplete" in text and "○ off" in text and "● on" in text
        assert "LIVE" in text and "TEST" in text
        table = app.screen.query_one(DataTable)
        assert str(table.get_cell("attended-follow-up", "delivered")) == "14"
        assert str(table.get_cell("attended-follow-up", "failed")) == "4"


async def test_toggle_active_reaches_control(control: Control, make_console: MakeConsole) -> None:
    messages: list[object] = []
    app = make_console(control)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await settle(pilot)
        await goto_row(pilot, "registered-to-nurture")
        await keys(pilot, "a", "y")  # a LIVE flow: switching it off or on asks first
        assert not (await api_flow(control, "registered-to-nurture")).active
        assert any(isinstance(m, FlowChanged) and not m.flow.active for m in messages)
        table = app.screen.query_one(DataTable)
        assert "off" in str(table.get_cell("registered-to-nurture", "active"))
        await keys(pilot, "a", "y")
        assert (await api_flow(control, "registered-to-nurture")).active


async def test_incomplete_flow_asks_then_shows_refusal(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await goto_row(pilot, "half-built")
        await keys(pilot, "a")
        assert isinstance(app.screen, ConfirmModal)
        assert "incomplete" in screen_text(pilot)
        await keys(pilot, "n")
        assert not isinstance(app.screen, ConfirmModal)
        await keys(pilot, "a", "y")
        assert not (await api_flow(control, "half-built")).active
        assert app.errors and "incomplete" in app.errors[-1][2]
        await keys(pilot, "i")
        assert isinstance(app.screen, TextModal)
        assert "no activate-for tag" in screen_text(pilot)


async def test_going_live_needs_the_flow_name(control: Control, make_console: MakeConsole) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await goto_row(pilot, "test-registered")
        name = (await api_flow(control, "test-registered")).name
        await keys(pilot, "t")
        assert isinstance(app.screen, TypeToConfirmModal)
        await type_text(pilot, "wrong")
        await keys(pilot, "enter")
        assert isinstance(app.screen, TypeToConfirmModal)
        assert (await api_flow(control, "test-registered")).mode == "test"
        await keys(pilot, "escape")
        await keys(pilot, "t")
        app.screen.query_one(Input).value = name
        await keys(pilot, "enter")
        assert (await api_flow(control, "test-registered")).mode == "live"
        await keys(pilot, "t", "y")
        assert (await api_flow(control, "test-registered")).mode == "test"


async def test_read_only_hides_and_refuses_changes(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(pilot)
        assert " RO " in text
        assert "a Active" not in text and "Live/test" not in text
        await goto_row(pilot, "registered-to-nurture")
        await keys(pilot, "a", "t")
        assert not isinstance(app.screen, (ConfirmModal, TypeToConfirmModal))
        flow = await api_flow(control, "registered-to-nurture")
        assert flow.active and flow.mode == "live"
        await keys(pilot, "question_mark")
        assert "Active" not in screen_text(pilot)


async def test_filter_narrows_and_escape_clears(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "slash")
        await type_text(pilot, "test")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 2
        assert "/test/" in str(table.border_title)
        await keys(pilot, "escape")
        assert table.row_count == 9


async def test_control_going_away_marks_the_view_stale(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        control.call(control._stop())
        await keys(pilot, "ctrl+r")
        text = screen_text(pilot)
        assert "stale" in text
        assert app.errors and "is not reachable" in app.errors[-1][2]
        assert app.screen.query_one(DataTable).row_count == 9
