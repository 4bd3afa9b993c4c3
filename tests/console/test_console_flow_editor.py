"""Going LIVE, switching flows on and off, and the flow editor as an operator uses them over
SSH, keyboard only, against a real operator API: confirmations that can be typed and say why
an entry was refused, the mapping preview as a scrolling table, a mapping shared with other
flows named before it is saved, unsaved edits kept from a stray Esc, a visible focus, and the
flow list's columns at 100 and 80."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.coordinate import Coordinate
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static
from textual.widgets._select import SelectCurrent

from apiclient.client import ApiClient
from apiclient.rows import FlowRow
from console import actions
from console.screens.flow_detail import FieldForm, FlowDetailScreen
from console.screens.flows import FlowsScreen
from console.screens.help import help_text
from console.screens.mapping_preview import MappingPreviewModal
from console.screens.modals import ConfirmModal, TypeToConfirmModal, UnsavedModal
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import TOKEN, Control

LIVE_FLOW = "registered-to-nurture"
TEST_FLOW = "test-registered"


async def api_flow(control: Control, flow_id: str) -> FlowRow:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        return await client.flow(flow_id)
    finally:
        await client.close()


async def api_mapping(control: Control, mapping_id: str) -> dict[str, Any]:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        return await client.mapping(mapping_id)
    finally:
        await client.close()


def on_top(app: Any) -> object:
    """The screen on top, read afresh (not narrowed by an earlier isinstance check)."""
    return app.screen


async def goto_row(pilot: Pilot[Any], flow_id: str) -> None:
    table = pilot.app.screen.query_one(DataTable)
    table.move_cursor(row=table.get_row_index(flow_id))
    await pilot.pause()


async def open_flow(pilot: Pilot[Any], flow_id: str) -> FlowDetailScreen:
    await settle(pilot)
    await goto_row(pilot, flow_id)
    await keys(pilot, "enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, FlowDetailScreen)
    return screen


# --- going LIVE and switching on/off (flow list) ----------------------------------------------


async def test_going_live_takes_the_id_or_an_ascii_name_and_says_why_not(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await goto_row(pilot, TEST_FLOW)
        name = (await api_flow(control, TEST_FLOW)).name
        assert "→" in name
        await keys(pilot, "t")
        assert isinstance(app.screen, TypeToConfirmModal)
        assert f"Type the flow id {TEST_FLOW}" in screen_text(pilot)
        await type_text(pilot, "wrong")
        await keys(pilot, "enter")
        assert isinstance(app.screen, TypeToConfirmModal)
        shown = screen_text(pilot)
        assert f"✗ 'wrong' is not the flow id '{TEST_FLOW}'" in shown
        assert "Test registrations -> nurture" in shown
        assert "Test registrations -> nurture (test)" in shown  # the whole of what to type
        await keys(pilot, "ctrl+u", "enter")
        assert "nothing was typed" in screen_text(pilot)
        assert (await api_flow(control, TEST_FLOW)).mode == "test"
        # the name as an SSH keyboard types it: ASCII arrow, any case
        await type_text(pilot, "test REGISTRATIONS -> nurture (test)")
        await keys(pilot, "enter")
        assert not isinstance(app.screen, TypeToConfirmModal)
        assert (await api_flow(control, TEST_FLOW)).mode == "live"
        await keys(pilot, "t", "y")
        assert (await api_flow(control, TEST_FLOW)).mode == "test"
        # or the id, as replay asks
        await keys(pilot, "t")
        await type_text(pilot, TEST_FLOW)
        await keys(pilot, "enter")
        assert (await api_flow(control, TEST_FLOW)).mode == "live"


async def test_switching_a_live_flow_off_or_on_asks_a_test_flow_does_not(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await goto_row(pilot, LIVE_FLOW)
        await keys(pilot, "a")
        assert isinstance(app.screen, ConfirmModal)
        assert "It is LIVE: its deliveries to Marketo stop" in app.screen.question
        assert "Deactivate LIVE flow" in screen_text(pilot)
        await keys(pilot, "enter")  # the safe answer has the focus
        assert (await api_flow(control, LIVE_FLOW)).active
        await keys(pilot, "a", "n")
        assert (await api_flow(control, LIVE_FLOW)).active
        await keys(pilot, "a", "y")
        assert not (await api_flow(control, LIVE_FLOW)).active
        await keys(pilot, "a")
        assert isinstance(app.screen, ConfirmModal)
        assert "real registrations of live events will be sent" in app.screen.question
        await keys(pilot, "y")
        assert (await api_flow(control, LIVE_FLOW)).active
        await goto_row(pilot, TEST_FLOW)
        await keys(pilot, "a")
        assert isinstance(app.screen, FlowsScreen)
        assert not (await api_flow(control, TEST_FLOW)).active
        await keys(pilot, "a")
        assert isinstance(app.screen, FlowsScreen)
        assert (await api_flow(control, TEST_FLOW)).active


async def test_flow_list_keeps_sent_fail_and_trend_at_100_and_80_columns(
    fixed_control: Control, make_console: MakeConsole
) -> None:
    for size, trend in (((100, 30), "12h"), ((80, 24), "8h")):
        app = make_console(fixed_control)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            header = next(line for line in screen_text(pilot).splitlines() if "Name" in line)
            for column in ("Name", "Status", "Act", "Mode", "Sent", "Fail", trend):
                assert f" {column} " in header, (size, header)
            width = size[0]
            assert all(len(line) <= width for line in screen_text(pilot).splitlines())
            shown = screen_text(pilot)
            assert "demo-marketo/create_update_lead" in shown  # the selected flow's, below
            table = app.screen.query_one(DataTable)
            assert str(table.get_cell("attended-follow-up", "failed")) == "4"
            region = table.region
            fail_x = sum(c.get_render_width(table) for c in table.ordered_columns[:-2])
            assert fail_x + 4 < region.width, (size, fail_x)


# --- the flow editor --------------------------------------------------------------------------


async def test_preview_is_a_table_per_registration_that_scrolls_with_the_keyboard(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_flow(pilot, LIVE_FLOW)
        await keys(pilot, "ctrl+o")
        await settle(pilot)
        assert isinstance(app.screen, MappingPreviewModal)
        table = app.screen.query_one(DataTable)
        assert app.focused is table
        shown = screen_text(pilot)
        for column in ("Target field", "Sources", "Value", "Result"):
            assert column in shown
        assert "▸ " in shown and "email" in shown and "{" not in shown
        registrations = [k for k in table.rows if "-f" not in str(k.value)]
        assert len(registrations) == 5 and table.row_count > len(registrations)
        assert table.row_count > table.size.height  # more than one screen: it must scroll
        assert table.scroll_y == 0
        await keys(pilot, "pagedown", "pagedown")
        await pilot.wait_for_scheduled_animations()
        assert table.scroll_y > 0
        await keys(pilot, "end")
        await pilot.wait_for_scheduled_animations()
        assert table.scroll_y == table.max_scroll_y
        await keys(pilot, "home")
        await pilot.wait_for_scheduled_animations()
        assert table.scroll_y == 0
        await keys(pilot, "j", "j")
        assert table.cursor_row == 2
        detail = str(app.screen.query_one("#preview-row", Static).render())
        assert "registration.profile." in detail and " ← " in detail  # the row in full
        assert "not saved yet" not in screen_text(pilot)
        await keys(pilot, "escape")
        assert isinstance(app.screen, FlowDetailScreen)
        app.screen.query_one("#mapping-fields", DataTable).focus()
        await keys(pilot, "ctrl+d", "ctrl+o")
        await settle(pilot)
        assert isinstance(app.screen, MappingPreviewModal)
        assert "field changes not saved yet are not in it" in screen_text(pilot)


async def test_a_shared_mapping_is_named_and_asked_about_before_it_is_saved(
    control: Control, make_console: MakeConsole
) -> None:
    before = await api_mapping(control, "lead-basic")
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await open_flow(pilot, LIVE_FLOW)
        mapping_table = editor.query_one("#mapping-fields", DataTable)
        assert "shared with Attended → follow-up" in str(mapping_table.border_subtitle)
        mapping_table.focus()
        await keys(pilot, "ctrl+d", "ctrl+s")
        assert isinstance(app.screen, ConfirmModal)
        question = app.screen.question
        assert "Mapping 'lead-basic' is shared" in question
        assert "'Attended → follow-up'" in question
        assert "'Registered → nurture campaign'" not in question  # not the flow being edited
        await keys(pilot, "n")
        assert (await api_mapping(control, "lead-basic"))["fields"] == before["fields"]
        await keys(pilot, "ctrl+s", "y")
        await settle(pilot)
        assert not app.errors
    after = await api_mapping(control, "lead-basic")
    assert len(after["fields"]) == len(before["fields"]) - 1


async def test_mapping_table_cuts_long_targets_and_sources_visibly_at_80(
    control: Control, make_console: MakeConsole
) -> None:
    """Cut to their columns, a city and a country once both read
    `registration.profile.address.c` and a target lost its end without a mark."""
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, LIVE_FLOW)
        table = editor.query_one("#mapping-fields", DataTable)
        rows = {
            str(table.get_cell_at(Coordinate(r, 0))): str(table.get_cell_at(Coordinate(r, 1)))
            for r in range(table.row_count)
        }
        assert rows["city"] == "…address.city + …address.state"
        assert rows["country"] == "…profile.address.country"
        assert rows["email"] == "registration.profile.email"
        assert "certainRegistration…" in rows
        assert all(len(t) <= 20 and len(s) <= 30 for t, s in rows.items())


async def test_esc_with_unsaved_edits_asks_save_discard_or_keep(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, TEST_FLOW)
        original = (await api_flow(control, TEST_FLOW)).name
        await keys(pilot, "escape")  # nothing edited: closes at once
        assert isinstance(app.screen, FlowsScreen)
        editor = await open_flow(pilot, TEST_FLOW)
        editor.query_one("#name", Input).value = "Renamed test flow"
        await keys(pilot, "escape")
        assert isinstance(app.screen, UnsavedModal)
        assert "has edits that are not saved" in screen_text(pilot)
        await keys(pilot, "escape")  # keep editing
        assert on_top(app) is editor
        assert editor.query_one("#name", Input).value == "Renamed test flow"
        await keys(pilot, "escape", "d")  # discard
        assert isinstance(app.screen, FlowsScreen)
        assert (await api_flow(control, TEST_FLOW)).name == original
        # q (back) outside a text field asks the same; in one it is typed
        editor = await open_flow(pilot, TEST_FLOW)
        name = editor.query_one("#name", Input)
        name.focus()
        await keys(pilot, "end", "q")
        assert on_top(app) is editor and name.value == f"{original}q"
        editor.query_one("#af-registration_statuses").focus()
        await keys(pilot, "q")
        assert isinstance(app.screen, UnsavedModal)
        await keys(pilot, "d")
        assert isinstance(app.screen, FlowsScreen)
        editor = await open_flow(pilot, TEST_FLOW)
        editor.query_one("#name", Input).value = "Renamed test flow"
        await keys(pilot, "escape", "s")  # save, then close
        await settle(pilot)
        assert isinstance(app.screen, FlowsScreen)
        assert (await api_flow(control, TEST_FLOW)).name == "Renamed test flow"
        # a save that control refuses keeps the editor open, with the edits
        editor = await open_flow(pilot, TEST_FLOW)
        editor.query_one("#name", Input).value = ""
        await keys(pilot, "escape", "s")
        await settle(pilot)
        assert on_top(app) is editor
        assert app.errors


async def test_focus_is_visible_on_every_kind_of_field(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await open_flow(pilot, LIVE_FLOW)

        def look(selector: str) -> tuple[str, ...]:
            widget = editor.query_one(selector)
            target = widget.query_one(SelectCurrent) if isinstance(widget, Select) else widget
            styles = target.styles
            return (str(styles.background), str(styles.border), str(styles.text_style))

        fields = (
            "#name",
            "#mode",
            "#af-registration_statuses",
            "#filter-rows .rule-value",
            "#mapping-fields",
        )
        for selector in fields:
            editor.query_one("#dest-name").focus()
            await pilot.pause()
            plain = look(selector)
            editor.query_one(selector).focus()
            await pilot.pause()
            assert look(selector) != plain, selector


async def test_editor_keys_come_from_the_registry_and_follow_the_keymap(
    control: Control, make_console: MakeConsole, tmp_path: Path
) -> None:
    for screen in (FlowDetailScreen, FieldForm):
        for binding in screen.BINDINGS:
            assert getattr(binding, "id", None) in actions.BY_ID, (screen, binding)
    keymap = tmp_path / "keys.yaml"
    keymap.write_text("flow-add-field: f6\nfield-done: f7\n", encoding="utf-8")
    app = make_console(control, keymap_file=keymap)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_flow(pilot, LIVE_FLOW)
        assert not app.errors
        await keys(pilot, "f6")
        assert isinstance(app.screen, FieldForm)
        app.screen.query_one("#f-target", Input).value = "phone"
        await keys(pilot, "f7")
        assert isinstance(app.screen, FlowDetailScreen)
        table = app.screen.query_one("#mapping-fields", DataTable)
        assert "phone" in str(table.get_row_at(table.row_count - 1)[0])


def test_editor_dialogs_have_help_of_their_own() -> None:
    """A dialog's help lists its own keys under its own title, not the screen's behind it."""
    for scope, title, key in (
        ("field-form", "Mapping field", "Done"),
        ("unsaved", "Unsaved edits", "Keep editing"),
    ):
        text = help_text(scope, read_only=False)
        assert title in text and key in text and "Everywhere" not in text, scope
