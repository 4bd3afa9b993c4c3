"""Tag assignments edited from the console against a real operator API: from Tags & Events
(`a`) and from a retry item whose status resolves no tags (`T` on the row, `t` in its detail);
unknown tags refused beside the field; and the retry screen's resolved items and footer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from apiclient.client import ApiClient
from console.screens.assign_tags import AssignTagsModal
from console.screens.retry import ItemDetail, RetryScreen
from stream.store.rows import ChangeRow, OutcomeRow, RetryItem
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import TOKEN, Control, registration_template

FLOW = "registered-to-nurture"
UNTAGGED = "Need photo"


async def _tags(control: Control) -> dict[str, Any]:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        return await client.tags()
    finally:
        await client.close()


async def _item(control: Control, change_id: str) -> dict[str, Any]:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        return await client.retry_item(change_id, FLOW)
    finally:
        await client.close()


def _add_item(
    control: Control,
    change_id: str,
    status: str,
    outcomes: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> None:
    """An archived registration change whose status is `UNTAGGED`, a retry item for it, and
    the outcome rows given (attempts in order)."""
    assert control.store is not None
    body = registration_template()
    body = {
        **body,
        "changeId": change_id,
        "eventCode": "SUMMIT26",  # a live event of the catalog (the template's is a test event)
        "registration": {**body["registration"], "registrationStatusLabel": UNTAGGED},
    }
    at = datetime.now(UTC) - timedelta(hours=1)
    change = ChangeRow(
        change_id=change_id,
        type=body["type"],
        account_code=body["accountCode"],
        event_code=body.get("eventCode"),
        registration_code=body["registration"]["registrationCode"],
        is_test=False,
        occurred_at=at,
        received_at=at,
        payload=json.dumps(body),
        source="api",
    )
    rows = [
        OutcomeRow(
            change_id=change_id,
            flow_id=FLOW,
            flow_name="Registered to nurture",
            mode="live",
            occurred_at=at,
            processed_at=at + timedelta(minutes=n + 1),
            attempt=n + 1,
            event_code=body.get("eventCode"),
            **outcome,
        )
        for n, outcome in enumerate(outcomes)
    ]
    item = RetryItem(
        change_id=change_id,
        flow_id=FLOW,
        flow_name="Registered to nurture",
        integration="demo-marketo",
        status=status,  # type: ignore[arg-type]
        category="data",
        reason=f"status '{UNTAGGED}' in event resolves no tags",
        attempts=1,
        updated_at=at + timedelta(minutes=5),
        created_at=at + timedelta(minutes=1),
        last_error="no tag",
    )
    control.call(control.store.archive_changes([change]))
    control.call(control.store.record_outcomes(rows, [item]))


async def _search(pilot: Pilot[Any], text: str) -> RetryScreen:
    await keys(pilot, "4")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, RetryScreen)
    await keys(pilot, "slash")
    await type_text(pilot, text)
    await keys(pilot, "enter")
    await settle(pilot)
    assert screen.query_one(DataTable).row_count == 1
    return screen


async def test_assign_a_tag_from_tags_and_events(
    control: Control, make_console: MakeConsole
) -> None:
    before = await _tags(control)
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        await keys(pilot, "3")
        await settle(pilot)
        table = app.screen.query_one("#tags", DataTable)
        table.focus()
        names = [str(k.value) for k in table.rows]
        table.move_cursor(row=names.index("registered"))
        await keys(pilot, "a")
        modal = app.screen
        assert isinstance(modal, AssignTagsModal)
        assert modal.query_one("#tags", Input).value == "registered"
        modal.query_one("#label", Input).focus()
        await type_text(pilot, UNTAGGED)
        await settle(pilot)
        assert "has no tag at account level" in screen_text(pilot)
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, AssignTagsModal)
    after = await _tags(control)
    assert after["assignments"]["registration_statuses"][UNTAGGED] == ["registered"]
    assert after["version"] == before["version"] + 1
    assert control.store is not None
    [entry, *_] = control.call(control.store.config_audit(kind="assignments"))
    assert entry.actor.startswith("console:")


async def test_an_unknown_tag_is_refused_beside_the_field(
    control: Control, make_console: MakeConsole
) -> None:
    before = await _tags(control)
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        await keys(pilot, "3")
        await settle(pilot)
        await keys(pilot, "a")
        modal = app.screen
        assert isinstance(modal, AssignTagsModal)
        modal.query_one("#label", Input).value = UNTAGGED
        await settle(pilot)
        modal.query_one("#tags", Input).value = "registered, regstered"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert app.screen is modal, "a refused assignment keeps the dialog open"
        error = str(modal.query_one("#error", Static).render())
        assert "unknown tag 'regstered'" in error
        assert modal.query_one("#tags", Input).has_class("error")
        await keys(pilot, "escape")
        assert not isinstance(app.screen, AssignTagsModal)
    assert await _tags(control) == before


async def test_tag_this_status_from_a_retry_item(
    control: Control, make_console: MakeConsole
) -> None:
    _add_item(control, "rq-photo", "abandoned")
    detail = await _item(control, "rq-photo")
    assert detail["preview"]["outcome"]["status"] == "data_failure"
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await _search(pilot, "rq-photo")
        await keys(pilot, "enter")
        await settle(pilot)
        assert isinstance(app.screen, ItemDetail)
        shown = screen_text(pilot)
        assert f"'{UNTAGGED}'" in shown and "t tags it" in shown
        assert "t tag this status" in shown
        await keys(pilot, "t")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, AssignTagsModal)
        assert modal.query_one("#label", Input).value == UNTAGGED
        assert "resolves no tags" in str(modal.query_one("#context", Static).render())
        modal.query_one("#tags", Input).value = "registered"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, RetryScreen)
        notes = " ".join(n.message for n in app._notifications)
        assert f"registration status '{UNTAGGED}': tagged registered" in notes
        assert "press r to resubmit" in notes
    tags = await _tags(control)
    assert tags["assignments"]["registration_statuses"][UNTAGGED] == ["registered"]
    fixed = await _item(control, "rq-photo")
    assert fixed["preview"]["outcome"]["status"] != "data_failure"


async def test_tag_key_on_a_row_that_needs_no_tag_says_so(
    control: Control, make_console: MakeConsole
) -> None:
    _add_item(control, "rq-other", "abandoned")
    control.call(_tag_it(control))
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await _search(pilot, "rq-other")
        await keys(pilot, "T")
        await settle(pilot)
        assert isinstance(app.screen, RetryScreen)
        notes = " ".join(n.message for n in app._notifications)
        assert "does not fail for an untagged status" in notes


async def _tag_it(control: Control) -> None:
    assert control.config is not None
    await control.config.assign_tags("registration_statuses", UNTAGGED, ["registered"], "test")


async def test_a_resolved_item_shows_its_final_outcome_and_the_footer_has_r(
    control: Control, make_console: MakeConsole
) -> None:
    failed = {"status": "failed", "category": "data", "reason": "resolves no tags"}
    delivered = {"status": "delivered", "marketo_lead_id": 4242, "lead_result": "created"}
    _add_item(control, "rq-done", "resolved", [failed, delivered])
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _search(pilot, "rq-done")
        footer = screen_text(pilot).splitlines()[-1]
        assert "R Resubmit all matching" in footer
        [key] = [str(k.value) for k in screen.query_one(DataTable).rows]
        assert str(screen.query_one(DataTable).get_cell(key, "reason")).startswith("was: ")
        await keys(pilot, "enter")
        await settle(pilot)
        assert isinstance(app.screen, ItemDetail)
        shown = screen_text(pilot)
        assert "outcome     delivered" in shown and "lead 4242 (created)" in shown
        assert "reason      was: " in shown


async def test_a_read_only_console_does_not_open_the_tag_form(
    control: Control, make_console: MakeConsole
) -> None:
    _add_item(control, "rq-photo", "abandoned")
    before = await _tags(control)
    app = make_console(control, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await keys(pilot, "3")
        await settle(pilot)
        await keys(pilot, "a")
        assert not isinstance(app.screen, AssignTagsModal)
        await _search(pilot, "rq-photo")
        await keys(pilot, "enter")
        await settle(pilot)
        assert isinstance(app.screen, ItemDetail)
        await keys(pilot, "t")
        await settle(pilot)
        assert isinstance(app.screen, RetryScreen)
        notes = " ".join(n.message for n in app._notifications)
        assert "read-only console: tag assignments cannot be changed" in notes
    assert await _tags(control) == before
