"""Navigation, the `:` command line, help and palette from the registry, and the flow editor."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette
from textual.widgets import DataTable, Input, Select, SelectionList

from apiclient.client import ApiClient
from console import actions
from console.screens.flow_detail import FieldForm, FlowDetailScreen
from console.screens.help import HelpScreen
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import TOKEN, Control


async def test_command_line_switches_screens_and_quits(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for command, mode in (("retry", "retry"), ("sql", "sql"), ("events", "catalog")):
            await keys(pilot, "colon") if mode != "catalog" else await keys(pilot, "escape")
            if app.focused is None or not isinstance(app.focused, Input):
                await keys(pilot, "colon")
            await type_text(pilot, command)
            await keys(pilot, "enter")
            assert app.current_mode == mode, command
        await keys(pilot, "colon")
        await type_text(pilot, "retry status:abandoned")
        await keys(pilot, "enter")
        await settle(pilot)
        assert "status:abandoned" in str(app.screen.query_one(DataTable).border_title)
        await keys(pilot, "q")
        assert app.current_mode == "flows"
        await keys(pilot, "colon")
        await type_text(pilot, "q")
        await keys(pilot, "enter")
    assert app.return_code == 0


async def test_help_and_palette_come_from_the_registry(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(pilot)
        for spec in actions.for_scope("flows"):
            assert spec.description in text
        await keys(pilot, "escape", "ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await type_text(pilot, "retry")
        await settle(pilot)
        assert "Retry queue" in screen_text(pilot)
        await keys(pilot, "enter")
        await settle(pilot)
        assert app.current_mode == "retry"
        await keys(pilot, "q", "q")
    assert app.return_code == 0


def test_every_binding_has_an_id_and_dangerous_ones_are_known() -> None:
    ids = [a.id for a in actions.ACTIONS]
    assert len(ids) == len(set(ids))
    assert actions.is_dangerous("flows", "toggle_active")
    assert actions.is_dangerous("retry", "resubmit")
    assert not actions.is_dangerous("metrics", "toggle_mode")
    assert set(actions.default_keymap()) == set(ids)


async def test_flow_editor_saves_incomplete_and_shows_why(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("half-built"))
        await keys(pilot, "enter")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, FlowDetailScreen)
        assert "incomplete (never runs)" in screen_text(pilot)
        editor.query_one("#af-registration_statuses", SelectionList).select("registered")
        editor.query_one("#action", Select).value = "create_update_lead"
        editor.query_one("#name", Input).value = "Half built, renamed"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        client = ApiClient.for_console(control.url, TOKEN)
        try:
            flow = await client.flow("half-built")
        finally:
            await client.close()
        assert flow.name == "Half built, renamed"
        assert flow.raw["activate_for"]["registration_statuses"] == ["registered"]
        assert not flow.complete and "no activate-for tag" not in flow.reasons
        assert "no mapping" in screen_text(pilot)
        editor.query_one("#mapping", Select).value = "lead-basic"
        await settle(pilot)
        await keys(pilot, "ctrl+f")
        await settle(pilot)
        fields = editor.query_one("#mapping-fields", DataTable)
        assert fields.row_count == 9
        assert "✓" in str(fields.get_cell("0", "known"))
        await keys(pilot, "ctrl+n")
        assert isinstance(app.screen, FieldForm)
        app.screen.query_one("#f-target", Input).value = "phone"
        app.screen.query_one("#f-sources", Input).value = "registration.profile.phone"
        await keys(pilot, "ctrl+s")
        assert fields.row_count == 10
        await keys(pilot, "ctrl+o")
        await settle(pilot)
        assert "Mapping preview" in screen_text(pilot)
        await keys(pilot, "escape")
        editor.query_one("#campaign-id", Input).value = "1001"
        await keys(pilot, "ctrl+s", "y")  # lead-basic is shared with other flows: asked first
        await settle(pilot)
        client = ApiClient.for_console(control.url, TOKEN)
        try:
            account = await client.account()
            flow = await client.flow("half-built")
        finally:
            await client.close()
        [mapping] = [m for m in account["mappings"] if m["id"] == "lead-basic"]
        assert mapping["fields"][-1]["target"] == "phone"
        assert flow.complete, flow.reasons
        assert "✓ complete" in screen_text(pilot)


def test_console_command_parses_its_options() -> None:
    from stream.cli import build_parser

    args = build_parser().parse_args(["console", "--api", "http://127.0.0.1:7000", "--read-only"])
    assert args.api == "http://127.0.0.1:7000" and args.read_only
    assert args.handler.__module__ == "stream.commands.console"


async def test_console_exits_when_its_terminal_is_gone(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app._check_tty()
        await pilot.pause()
    assert app.return_code == 0


async def test_debug_screen_lists_recent_errors(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "6")
        from textual.widgets import TextArea

        app.screen.query_one(TextArea).text = "SELECT * FROM nowhere"
        await keys(pilot, "ctrl+j")
        await settle(pilot)
        await keys(pilot, "f12")
        text = screen_text(pilot)
        assert control.url in text and "nowhere" in text


async def test_flow_editor_refuses_to_overwrite_a_newer_version(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "enter")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, FlowDetailScreen)
        client = ApiClient.for_console(control.url, TOKEN)
        try:
            await client.set_mode("registered-to-nurture", "test")
            editor.query_one("#name", Input).value = "Overwritten"
            await keys(pilot, "ctrl+s")
            await settle(pilot)
            flow = await client.flow("registered-to-nurture")
        finally:
            await client.close()
        assert flow.name != "Overwritten" and flow.mode == "test"
        assert "someone else saved this flow" in screen_text(pilot)


async def test_new_flow_is_saved_incomplete(control: Control, make_console: MakeConsole) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "n")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, FlowDetailScreen)
        editor.query_one("#flow-id", Input).value = "fresh-flow"
        editor.query_one("#name", Input).value = "Fresh flow"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert "incomplete (never runs)" in screen_text(pilot)
        await keys(pilot, "escape")
        await settle(pilot)
        await keys(pilot, "ctrl+r")
        assert app.screen.query_one(DataTable).get_row_index("fresh-flow") >= 0
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        flow = await client.flow("fresh-flow")
    finally:
        await client.close()
    assert flow.mode == "test" and not flow.active and not flow.complete


async def test_refresh_interval_steps_and_shows(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control, refresh_s=5.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "every 5s" in screen_text(pilot)
        await keys(pilot, "minus")
        assert app.refresh_s == 10.0
        await keys(pilot, "plus", "plus")
        assert app.refresh_s == 2.0
        assert "every 2s" in screen_text(pilot)
        await keys(pilot, "p")
        assert "paused" in screen_text(pilot)


async def test_keymap_file_remaps_keys_and_reports_mistakes(
    control: Control, make_console: MakeConsole, tmp_path: Path
) -> None:
    from console.keymap import default_keymap_yaml, load_keymap

    defaults = tmp_path / "defaults.yaml"
    defaults.write_text(default_keymap_yaml())
    assert load_keymap(defaults) == (actions.default_keymap(), [])
    path = tmp_path / "keys.yaml"
    path.write_text("flow-active: x\nno-such-action: z\n")
    app = make_console(control, keymap_file=path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.errors and "no-such-action" in app.errors[-1][2]
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("registered-to-nurture"))
        await keys(pilot, "a")
        client = ApiClient.for_console(control.url, TOKEN)
        try:
            assert (await client.flow("registered-to-nurture")).active
            await keys(pilot, "x", "y")  # a LIVE flow: switching it off asks first
            assert not (await client.flow("registered-to-nurture")).active
        finally:
            await client.close()
        await keys(pilot, "question_mark")
        assert "x              Active" in screen_text(pilot)
