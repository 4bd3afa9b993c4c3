"""Marketo pickers in the flow editor at 80×24, against a real operator API and the Marketo
sandbox: a campaign, a program and its statuses picked from the connection fill their fields
and save; when Marketo is down the picker says why the list is missing and the field stays
typeable; a flow saved untouched keeps its program exactly."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, OptionList

from console.screens.asset_picker import AssetPicker
from console.screens.flow_detail import FlowDetailScreen
from console.widgets.program_fields import StatusRow
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import Control
from tests.console.test_console_flow_editor import TEST_FLOW, api_flow, on_top, open_flow

PROGRAM_FLOW = "program-status"


async def pick(pilot: Pilot[Any], name: str) -> None:
    """In the open picker, choose the item called `name` with the keyboard."""
    picker = pilot.app.screen
    assert isinstance(picker, AssetPicker)
    await settle(pilot)
    index = next(n for n, item in enumerate(picker.items) if item["name"] == name)
    picker.query_one(OptionList).highlighted = index
    await keys(pilot, "enter")


def status_input(editor: FlowDetailScreen, tag: str) -> Input:
    row = next(r for r in editor.query(StatusRow) if r.tag == tag)
    return row.query_one(Input)


async def test_a_campaign_picked_from_the_connection_is_saved(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, TEST_FLOW)
        field = editor.query_one("#campaign-id", Input)
        field.focus()
        await keys(pilot, "f2")
        assert isinstance(app.screen, AssetPicker)
        await settle(pilot)
        assert "Attended Event  1002" in screen_text(pilot)
        assert "Weekly Newsletter" not in screen_text(pilot)  # a batch campaign
        await pick(pilot, "Attended Event")
        assert on_top(app) is editor and field.value == "1002"
        assert app.focused is field
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert not app.errors
    destination = (await api_flow(control, TEST_FLOW)).raw["destination"]
    assert destination["campaign"]["campaign_id"] == 1002


async def test_a_program_and_its_statuses_picked_and_saved(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, PROGRAM_FLOW)
        assert status_input(editor, "registered").value == "Registered"
        editor.query_one("#program-id", Input).focus()
        await keys(pilot, "f2")
        await pick(pilot, "Customer Roadshow")
        assert editor.query_one("#program-id", Input).value == "1045"
        status_input(editor, "registered").focus()
        await keys(pilot, "f2")
        picker = app.screen
        assert isinstance(picker, AssetPicker) and picker.program_id == 1045
        await settle(pilot)
        assert [i["name"] for i in picker.items][:3] == ["Not in Program", "Invited", "Waitlisted"]
        await pick(pilot, "Waitlisted")
        assert status_input(editor, "registered").value == "Waitlisted"
        await keys(pilot, "escape")  # edits unsaved: asks
        await keys(pilot, "s")
        await settle(pilot)
        assert not app.errors
    program = (await api_flow(control, PROGRAM_FLOW)).raw["destination"]["program"]
    assert program["program_id"] == 1045
    assert program["statuses"] == {"registered": "Waitlisted", "attended": "Attended"}


async def test_marketo_down_says_why_and_the_field_stays_typeable(
    control: Control, make_console: MakeConsole
) -> None:
    assert control.sandbox is not None
    control.sandbox.start_outage(600)
    try:
        app = make_console(control)
        async with app.run_test(size=(80, 24)) as pilot:
            editor = await open_flow(pilot, PROGRAM_FLOW)
            field = editor.query_one("#program-id", Input)
            field.focus()
            await keys(pilot, "f2")
            assert isinstance(app.screen, AssetPicker)
            await settle(pilot)
            shown = screen_text(pilot)
            assert "✗ the list is missing:" in shown
            assert "The field stays typeable" in shown
            await keys(pilot, "escape")
            assert on_top(app) is editor and app.focused is field
            field.value = ""
            await type_text(pilot, "1046")
            editor.query_one("#name", Input).focus()
            await keys(pilot, "f2")  # not a field a picker fills: says which ones are
            assert on_top(app) is editor
            field.value = ""
            status_input(editor, "attended").focus()
            await keys(pilot, "f2")  # statuses need a program first
            assert on_top(app) is editor
            field.value = "1046"
            await keys(pilot, "ctrl+s")
            await settle(pilot)
    finally:
        control.sandbox.end_outage()
    program = (await api_flow(control, PROGRAM_FLOW)).raw["destination"]["program"]
    assert program["program_id"] == 1046


async def test_untouched_program_saves_as_it_was(
    control: Control, make_console: MakeConsole
) -> None:
    before = (await api_flow(control, PROGRAM_FLOW)).raw
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, PROGRAM_FLOW)
        assert not editor.unsaved()
        editor.query_one("#name", Input).value = "Renamed program flow"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
    after = (await api_flow(control, PROGRAM_FLOW)).raw
    assert after["name"] == "Renamed program flow"
    assert after["destination"] == before["destination"]
    assert after["filters"] == before["filters"]
