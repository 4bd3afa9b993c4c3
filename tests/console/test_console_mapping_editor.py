"""Creating and deleting mappings from the flow editor at 80×24, against a real operator API: a
new mapping (empty or a copy of the flow's, its id checked before anything is sent), deleting an
unused one after a question, and the refusals that name the flows using a mapping — the
console's own, and control's when a flow started using it after the editor was opened."""

from __future__ import annotations

from typing import Any

from textual.widgets import Checkbox, Input, Select, Static

from apiclient.client import ApiClient
from apiclient.errors import RequestRefused
from console.screens.mapping_form import MappingForm
from console.screens.modals import ConfirmModal
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import TOKEN, Control
from tests.console.test_console_flow_editor import TEST_FLOW, on_top, open_flow


async def mappings(control: Control) -> dict[str, dict[str, Any]]:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        return {m["id"]: m for m in await client.mappings()}
    finally:
        await client.close()


async def test_create_a_copy_and_delete_it_again(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, TEST_FLOW)
        source = editor.query_one("#mapping", Select).value
        assert isinstance(source, str)
        fields = (await mappings(control))[source]["fields"]
        await keys(pilot, "f7")
        assert isinstance(app.screen, MappingForm)
        await type_text(pilot, source)  # an id that exists: named before anything is sent
        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, MappingForm)
        assert f"✗ id: a mapping {source!r} exists already" in screen_text(pilot)
        app.screen.query_one("#m-id", Input).value = "has space"
        await settle(pilot)
        assert "✗ id: 'has space' is not an identifier" in screen_text(pilot)
        app.screen.query_one("#m-id", Input).value = "lead-variant"
        app.screen.query_one("#m-name", Input).value = "Lead variant"
        assert app.screen.query_one("#m-copy", Checkbox).value
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert on_top(app) is editor and not app.errors
        stored = (await mappings(control))["lead-variant"]
        assert stored["name"] == "Lead variant" and stored["used_by"] == []
        assert [f["target"] for f in stored["fields"]] == [f["target"] for f in fields]
        assert editor.query_one("#mapping", Select).value == "lead-variant"

        await keys(pilot, "f8")
        assert isinstance(app.screen, ConfirmModal)
        assert "Delete mapping 'lead-variant'? No flow uses it." in app.screen.question
        await keys(pilot, "n")
        assert "lead-variant" in await mappings(control)
        await keys(pilot, "f8", "y")
        await settle(pilot)
        assert "lead-variant" not in await mappings(control)
        assert editor.query_one("#mapping", Select).is_blank()
        assert not app.errors


async def test_an_empty_mapping_and_a_cancelled_dialog(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, TEST_FLOW)
        await keys(pilot, "f7")
        await type_text(pilot, "nothing")
        await keys(pilot, "escape")
        assert app.screen is editor
        assert "nothing" not in await mappings(control)
        await keys(pilot, "f7")
        form = app.screen
        assert isinstance(form, MappingForm)
        form.query_one("#m-copy", Checkbox).value = False
        form.query_one("#m-id", Input).value = "blank-one"
        await keys(pilot, "enter")
        await settle(pilot)
        stored = (await mappings(control))["blank-one"]
        assert stored["fields"] == [] and stored["name"] == "blank-one"


async def test_deleting_a_mapping_in_use_is_refused_naming_the_flows(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, TEST_FLOW)
        editor.query_one("#mapping", Select).value = "lead-basic"
        await settle(pilot)
        await keys(pilot, "f8")
        assert app.screen is editor  # no question: refused at once
        reasons = str(editor.query_one("#reasons", Static).render())
        assert "mapping 'lead-basic' cannot be deleted" in reasons
        assert "'Registered → nurture campaign'" in reasons
        assert "choose another mapping for them first" in reasons
        assert "lead-basic" in await mappings(control)


async def test_control_refuses_when_a_flow_took_the_mapping_after_the_editor_opened(
    control: Control, make_console: MakeConsole
) -> None:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        await client.create_mapping({"id": "spare", "name": "Spare", "fields": []})
        app = make_console(control)
        async with app.run_test(size=(80, 24)) as pilot:
            editor = await open_flow(pilot, TEST_FLOW)
            flow = await client.flow("complete-form")
            body = {**flow.raw, "destination": {**flow.raw["destination"], "mapping": "spare"}}
            await client.save_flow("complete-form", body, flow.raw.get("version"))
            editor.query_one("#mapping", Select).value = "spare"
            await settle(pilot)
            await keys(pilot, "f8")
            assert isinstance(app.screen, ConfirmModal)
            await keys(pilot, "y")
            await settle(pilot)
            assert on_top(app) is editor
            reasons = str(editor.query_one("#reasons", Static).render())
            assert "used_by: mapping 'spare' is used by 1 flow(s)" in reasons
            assert f"'{flow.name}' (complete-form)" in reasons
        try:
            await client.delete_mapping("spare")
        except RequestRefused as error:
            assert error.status == 409
        else:
            raise AssertionError("control deleted a mapping a flow uses")
        assert "spare" in await mappings(control)
    finally:
        await client.close()


async def test_read_only_console_neither_creates_nor_deletes(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, TEST_FLOW)
        await keys(pilot, "f7")
        assert app.screen is editor
        await keys(pilot, "f8")
        assert app.screen is editor
    assert set(await mappings(control)) == {"lead-basic", "form-fields", "event-owner"}
