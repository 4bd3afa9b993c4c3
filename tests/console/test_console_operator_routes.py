"""The console against the operator routes it relies on: a resubmit-all that carries the
confirmed count, per-flow figures, mapping edits with versions."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable, Input

from apiclient.client import ApiClient
from apiclient.errors import RequestRefused
from apiclient.rows import RetryFilters
from console.screens.flow_detail import FieldForm, FlowDetailScreen
from console.screens.modals import TypeToConfirmModal
from tests.console.console_helpers import CLOCK, MakeConsole, keys, settle, type_text
from tests.console.control_harness import TOKEN, Control


async def test_resubmit_all_with_a_stale_count_is_refused(control: Control) -> None:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        with pytest.raises(RequestRefused) as refused:
            await client.retry_submit_matching(RetryFilters(status="abandoned"), 16)
        assert refused.value.status == 409
        [problem] = refused.value.problems
        assert problem.path == "expected_count" and "now 15 items match" in problem.message
        assert control.redriven == []
        result = await client.retry_submit_matching(RetryFilters(status="abandoned"), 15)
        assert (result.submitted, result.selected) == (15, 15)
    finally:
        await client.close()


async def test_queue_moving_under_the_prompt_stops_the_resubmit(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "4")
        await settle(pilot)
        await keys(pilot, "s", "s", "s")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 15
        await keys(pilot, "R")
        assert isinstance(app.screen, TypeToConfirmModal)
        other = ApiClient.for_console(control.url, TOKEN)
        try:
            first = str(next(iter(table.rows)).value).split("|")
            await other.retry_submit([(first[0], first[1])])
        finally:
            await other.close()
        sent_before = len(control.redriven)
        await type_text(pilot, "15")
        await keys(pilot, "enter")
        await settle(pilot)
        assert len(control.redriven) == sent_before
        assert any("now 14 items match" in error for _, _, error in app.errors)
        assert table.row_count == 14


async def test_flow_figures_come_from_the_figures_route(fixed_control: Control) -> None:
    client = ApiClient.for_console(fixed_control.url, TOKEN)
    try:
        stats = await client.flow_stats(CLOCK)
    finally:
        await client.close()
    assert set(stats) == {"registered-to-nurture", "attended-follow-up", "complete-form"}
    nurture = stats["registered-to-nurture"]
    assert (nurture.delivered, nurture.failed) == (9, 3)
    assert len(nurture.hourly) == 12 and sum(nurture.hourly) == 12
    assert sum(stats["complete-form"].hourly) == 24


async def _open_flow(pilot: Any, app: Any, flow_id: str) -> FlowDetailScreen:
    await settle(pilot)
    table = app.screen.query_one(DataTable)
    table.move_cursor(row=table.get_row_index(flow_id))
    await keys(pilot, "enter")
    await settle(pilot)
    assert isinstance(app.screen, FlowDetailScreen)
    return app.screen


async def _add_field(pilot: Any, app: Any, target: str, source: str) -> None:
    await keys(pilot, "ctrl+n")
    assert isinstance(app.screen, FieldForm)
    app.screen.query_one("#f-target", Input).value = target
    app.screen.query_one("#f-sources", Input).value = source
    await keys(pilot, "ctrl+s")


async def test_mapping_editor_saves_through_the_mapping_route(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_flow(pilot, app, "registered-to-nurture")
        await _add_field(pilot, app, "phone", "registration.profile.phone")
        await keys(pilot, "ctrl+s", "y")  # lead-basic is shared with other flows: asked first
        await settle(pilot)
        assert not app.errors
    assert control.store is not None
    audit = await control.acall(control.store.config_audit(kind="mapping"))
    changed = [a for a in audit if a.action == "update"]
    assert changed and changed[0].actor.startswith("console")
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        mapping = await client.mapping("lead-basic")
    finally:
        await client.close()
    assert mapping["fields"][-1]["target"] == "phone"


async def test_a_stale_mapping_edit_is_refused_and_keeps_the_other_save(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_flow(pilot, app, "registered-to-nurture")
        other = ApiClient.for_console(control.url, TOKEN)
        try:
            theirs = await other.mapping("lead-basic")
            await other.save_mapping(
                "lead-basic", {**theirs, "name": "Renamed elsewhere"}, theirs["version"]
            )
        finally:
            await other.close()
        await _add_field(pilot, app, "phone", "registration.profile.phone")
        await keys(pilot, "ctrl+s", "y")  # lead-basic is shared with other flows: asked first
        await settle(pilot)
        assert any("someone else changed mapping 'lead-basic'" in e for _, _, e in app.errors)
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        mapping = await client.mapping("lead-basic")
    finally:
        await client.close()
    assert mapping["name"] == "Renamed elsewhere"
    assert all(f["target"] != "phone" for f in mapping["fields"])
