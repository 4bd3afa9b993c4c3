"""The flow editor's filter rules at 80×24 against a real operator API: existing filters load
into rows and save back unchanged, a rule added and removed with the keyboard, a bad rule named
by its path before anything is sent (and the row focused), and the JSON text only for a rule
rows cannot hold."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Select, TextArea

from apiclient.client import ApiClient
from console.screens.flow_detail import FlowDetailScreen
from console.widgets.filter_editor import FilterEditor, RuleEditor
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import TOKEN, Control
from tests.console.test_console_flow_editor import LIVE_FLOW, TEST_FLOW, api_flow, open_flow

VIP_FLOW = "vip-session-attended"


async def filters_text(pilot: Pilot[Any]) -> str:
    """The screen with the filters scrolled into view (they sit below the fold at 80×24)."""
    pilot.app.screen.query_one(FilterEditor).scroll_visible(animate=False)
    await settle(pilot)
    return screen_text(pilot)


def rules(editor: FlowDetailScreen) -> list[RuleEditor]:
    return editor.query_one(FilterEditor).editors()


async def put_filters(control: Control, flow_id: str, filters: list[Any]) -> None:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        flow = await client.flow(flow_id)
        await client.save_flow(flow_id, {**flow.raw, "filters": filters}, flow.raw["version"])
    finally:
        await client.close()


async def test_existing_filters_load_as_rows_and_save_unchanged(
    control: Control, make_console: MakeConsole
) -> None:
    before = {f: (await api_flow(control, f)).raw for f in (LIVE_FLOW, VIP_FLOW)}
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, LIVE_FLOW)
        rows = [r.row for r in rules(editor)]
        assert [(r.field, r.op, r.text) for r in rows] == [
            ("event.tags", "contains", "signal_marketo"),
            ("registration.profile.address.country", "in", "US, CA, DE, GB"),
        ]
        editor.query_one("#name", Input).value += " (edited)"  # a change elsewhere
        await keys(pilot, "ctrl+s")  # the LIVE flow stays live: nothing to confirm
        await settle(pilot)
        assert not app.errors
        await keys(pilot, "escape")
        editor = await open_flow(pilot, VIP_FLOW)
        [vip] = rules(editor)
        assert vip.row.text == "vip" and vip.query_one(".rule-op", Select).disabled
        editor.query_one("#name", Input).value += " (edited)"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert not app.errors
    for flow_id, raw in before.items():
        after = (await api_flow(control, flow_id)).raw
        assert after["filters"] == raw["filters"], flow_id
        assert after["version"] > raw["version"], flow_id


async def test_a_rule_added_and_removed_with_the_keyboard(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, TEST_FLOW)
        assert rules(editor) == []
        assert "no rules" in await filters_text(pilot)
        await keys(pilot, "f4")
        [rule] = rules(editor)
        assert app.focused is rule.query_one(".rule-field", Select)
        rule.query_one(".rule-field", Select).value = "registration.profile.address.country"
        rule.query_one(".rule-op", Select).value = "in"
        rule.query_one(".rule-value", Input).focus()
        await type_text(pilot, "US, FR")
        await keys(pilot, "f4")
        second = rules(editor)[1]
        second.query_one(".rule-field", Select).value = "@attendee_type"
        second.query_one(".rule-value", Input).focus()
        await type_text(pilot, "vip")
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert not app.errors
        assert (await api_flow(control, TEST_FLOW)).raw["filters"] == [
            {"field": "registration.profile.address.country", "op": "in", "value": ["US", "FR"]},
            {"attendee_type_tags": ["vip"]},
        ]
        rules(editor)[0].query_one(".rule-value", Input).focus()
        await keys(pilot, "f9", "ctrl+s")
        await settle(pilot)
        assert (await api_flow(control, TEST_FLOW)).raw["filters"] == [
            {"attendee_type_tags": ["vip"]}
        ]


async def test_a_bad_rule_is_named_by_its_path_and_nothing_is_sent(
    control: Control, make_console: MakeConsole
) -> None:
    before = (await api_flow(control, TEST_FLOW)).raw
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, TEST_FLOW)
        await keys(pilot, "f4", "ctrl+s")
        [rule] = rules(editor)
        assert "✗ filters[0].field: choose a field (or remove the rule)" in screen_text(pilot)
        focused: object = app.focused
        assert focused is rule.query_one(".rule-field", Select)
        rule.query_one(".rule-field", Select).value = "@attendee_type"
        rule.query_one(".rule-value", Input).value = "vip, gold"
        await keys(pilot, "ctrl+s")
        shown = screen_text(pilot)
        assert "✗ filters[0].attendee_type_tags[1]: unknown attendee-type tag 'gold'" in shown
        focused = app.focused
        assert focused is rule.query_one(".rule-value", Input)
        rule.query_one(".rule-field", Select).value = "event.eventType"
        rule.query_one(".rule-op", Select).value = "equals"
        rule.query_one(".rule-value", Input).value = ""
        await keys(pilot, "ctrl+s")
        assert "✗ filters[0].value: operator equals expects a value" in screen_text(pilot)
        assert (await api_flow(control, TEST_FLOW)).raw["version"] == before["version"]
        # control's own refusal is named by path too: an event tag the account lacks
        rule.query_one(".rule-field", Select).value = "event.tags"
        rule.query_one(".rule-op", Select).value = "contains"
        rule.query_one(".rule-value", Input).value = "no_such_tag"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert app.errors
        assert "filters[0].value" in app.errors[-1][2] and "no_such_tag" in app.errors[-1][2]
        assert (await api_flow(control, TEST_FLOW)).raw["version"] == before["version"]


async def test_json_only_for_a_rule_rows_cannot_hold(
    control: Control, make_console: MakeConsole
) -> None:
    odd = {"field": "registration.profile.organization", "op": "in", "value": ["Acme, Inc", "B"]}
    await put_filters(control, TEST_FLOW, [odd])
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, TEST_FLOW)
        filters = editor.query_one("#filters", TextArea)
        assert filters.display and not editor.query_one("#filter-rows").display
        shown = await filters_text(pilot)
        assert "shown as JSON: filters[0]: an item a comma-separated list" in shown
        await keys(pilot, "f4")  # no rows to add to while the JSON is shown
        assert rules(editor) == []
        filters.text = '[{"field": "event.eventType",'
        await settle(pilot)
        await keys(pilot, "ctrl+s")
        assert app.focused is filters
        assert "✗ filters: not valid JSON at line 1" in screen_text(pilot)
        filters.text = '{"field": "x"}'
        await settle(pilot)
        assert "expected a JSON list of rules ([...]), got an object" in screen_text(pilot)
        await keys(pilot, "f10")  # still JSON: the text is not a list
        assert filters.display
        filters.text = '[{"field": "event.eventType", "op": "equals", "value": "webinar"}]'
        await settle(pilot)
        assert "✗ filters" not in screen_text(pilot)
        await keys(pilot, "f10")
        assert not filters.display
        [rule] = rules(editor)
        assert (rule.row.field, rule.row.op, rule.row.text) == (
            "event.eventType",
            "equals",
            "webinar",
        )
        await keys(pilot, "ctrl+s")
        await settle(pilot)
    assert (await api_flow(control, TEST_FLOW)).raw["filters"] == [
        {"field": "event.eventType", "op": "equals", "value": "webinar"}
    ]


async def test_read_only_rows_cannot_change(control: Control, make_console: MakeConsole) -> None:
    app = make_console(control, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_flow(pilot, LIVE_FLOW)
        await keys(pilot, "f4")
        assert len(rules(editor)) == 2
        assert all(r.query_one(".rule-value", Input).disabled for r in rules(editor))
