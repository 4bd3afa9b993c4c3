"""Data cannot drive the operator's terminal through the console: a status label an attendee
wrote with terminal escapes (`ESC ] 0 ; title BEL` retitles the window, `ESC [ 31m` colours it)
or a right-to-left override shows escaped (`\\x1b`, `\\u202e`) on the SQL screen, in its errors,
in detail panels, the activity feed and the mapping preview — against a real operator API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input, Static, TextArea

from apiclient.client import ApiClient
from console import fmt
from console.screens.assign_tags import AssignTagsModal
from console.screens.mapping_preview import MappingPreviewModal, preview_rows
from console.screens.metrics import feed_line
from console.screens.modals import TextModal
from console.screens.retry import ItemDetail, RetryScreen
from console.screens.sql import SqlScreen
from stream.store.rows import ChangeRow, RetryItem
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle
from tests.console.control_harness import TOKEN, Control, registration_template
from tests.support.clock import FIXED

LABEL = "Reg\x1b]0;PWNED1\x07\x1b[31mRED"
SHOWN = "Reg\\x1b]0;PWNED1\\x07\\x1b[31mRED"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2028")


def _hostile_change(control: Control, change_id: str, label: str) -> None:
    body = registration_template()
    body["changeId"] = change_id
    body["registration"] = {**body["registration"], "registrationStatusLabel": label}
    row = ChangeRow(
        change_id=change_id,
        type=body["type"],
        account_code=body["accountCode"],
        event_code=body.get("eventCode"),
        registration_code=body["registration"]["registrationCode"],
        is_test=False,
        occurred_at=FIXED - timedelta(hours=1),
        received_at=FIXED - timedelta(hours=1),
        payload=json.dumps(body),
        source="api",
    )
    assert control.store is not None
    control.call(control.store.archive_changes([row]))


def _rendered(table: DataTable[Any]) -> str:
    """Every character the table hands the terminal, line by line."""
    return "\n".join(
        "".join(segment.text for segment in table.render_line(y)) for y in range(table.size.height)
    )


def _no_raw(text: str) -> None:
    found = [hex(ord(c)) for c in RAW if c in text]
    assert not found, f"raw control characters reach the terminal: {found}"


async def test_sql_cells_show_terminal_escapes_from_the_data_escaped(
    control: Control, make_console: MakeConsole
) -> None:
    _hostile_change(control, "hostile-1", LABEL)
    app = make_console(control)
    async with app.run_test(size=(120, 30)) as pilot:
        await keys(pilot, "6")
        assert isinstance(app.screen, SqlScreen)
        app.screen.query_one("#query", TextArea).text = (
            "SELECT payload->>'$.registration.registrationStatusLabel' AS label, "
            "chr(27) || ']0;TITLE' || chr(7) AS title, 'a' || chr(8238) || 'b' AS bidi "
            "FROM changes WHERE change_id = 'hostile-1'"
        )
        await keys(pilot, "ctrl+j")
        await settle(pilot)
        table = app.screen.query_one("#results", DataTable)
        assert table.row_count == 1
        label = table.get_cell_at(Coordinate(0, 0))
        assert isinstance(label, Text) and label.plain == SHOWN
        assert table.get_cell_at(Coordinate(0, 1)).plain == "\\x1b]0;TITLE\\x07"
        assert table.get_cell_at(Coordinate(0, 2)).plain == "a\\u202eb"
        # Select the field, as an operator would, and read what the terminal is sent.
        await keys(pilot, "escape", "right", "left")
        assert table.cursor_coordinate == Coordinate(0, 0)
        shown = _rendered(table)
        _no_raw(shown)
        assert SHOWN in shown and "\\x1b]0;TITLE\\x07" in shown
        _no_raw(screen_text(pilot))


async def test_sql_error_quoting_the_data_shows_it_escaped(
    control: Control, make_console: MakeConsole
) -> None:
    _hostile_change(control, "hostile-2", LABEL)
    app = make_console(control)
    async with app.run_test(size=(120, 30)) as pilot:
        await keys(pilot, "6")
        app.screen.query_one("#query", TextArea).text = (
            "SELECT CAST(payload->>'$.registration.registrationStatusLabel' AS INTEGER) "
            "FROM changes WHERE change_id = 'hostile-2'"
        )
        await keys(pilot, "ctrl+j")
        await settle(pilot)
        status = app.screen.query_one("#sql-status", Static).render()
        text = status.plain if isinstance(status, Text) else str(status)
        assert SHOWN in text, text
        _no_raw(text)
        assert app.errors and SHOWN in app.errors[-1][2]
        _no_raw(app.errors[-1][2])


async def test_detail_panel_shows_the_data_escaped_and_keeps_its_lines(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await app.push_screen(TextModal(f"status {LABEL}", f"label   {LABEL}\nline two\u2028x"))
        await settle(pilot)
        body = app.screen.query_one("#body", Static).render()
        text = body.plain if isinstance(body, Text) else str(body)
        assert text == f"label   {SHOWN}\nline two\\u2028x"
        title = str(app.screen.query_one("#dialog").border_title)
        assert "\x1b" not in title and "\\x1b" in title
        _no_raw(screen_text(pilot))


def test_activity_feed_line_shows_the_data_escaped() -> None:
    line = feed_line(
        {
            "time": "2026-01-01T10:00:00+00:00",
            "registration_code": "R\x1b[2J1",
            "event_code": "EV\u202eT",
            "flow_name": "flow\x9b1m",
            "status": "failed",
            "detail": f"status '{LABEL}' resolves no tags",
        }
    )
    _no_raw(line.plain)
    assert "R\\x1b[2J1" in line.plain and "EV\\u202eT" in line.plain
    assert f"status '{SHOWN}' resolves no tags" in line.plain


HOSTILE_PREVIEW: dict[str, Any] = {
    "previews": [
        {
            "registration_code": "R\x1b]0;x\x071",
            "event_code": "EV\u2029",
            "outcome": {"status": "data_failure", "reason": f"bad {LABEL}"},
            "fields": [
                {
                    "target": "status",
                    "sources": [{"path": "registration.label", "value": LABEL}],
                    "value": LABEL,
                }
            ],
        }
    ]
}


def test_mapping_preview_rows_show_the_data_escaped() -> None:
    rows = preview_rows(HOSTILE_PREVIEW)
    # As the modal adds them: `fmt.cells` makes the string cells plain Text.
    texts = [c.plain for _, cells in rows for c in fmt.cells(cells)]
    for text in texts:
        _no_raw(text)
    joined = "\n".join(texts)
    assert "▸ R\\x1b]0;x\\x071" in joined and "EV\\u2029" in joined
    assert f"bad {SHOWN}" in joined


async def test_mapping_preview_highlighted_row_shows_the_data_escaped(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await app.push_screen(MappingPreviewModal(HOSTILE_PREVIEW, "flow"))
        await settle(pilot)
        await keys(pilot, "down")
        row = app.screen.query_one("#preview-row", Static).render()
        text = row.plain if isinstance(row, Text) else str(row)
        assert f"= {SHOWN} ←" in text, text
        _no_raw(text)
        _no_raw(screen_text(pilot))


async def test_retry_detail_and_its_tag_form_show_the_label_escaped_and_save_it_exact(
    control: Control, make_console: MakeConsole
) -> None:
    """A retry item failing because its (hostile) status label resolves no tags: the detail
    shows the label escaped, `t` opens the tag form with the label escaped in its box, and
    saving it assigns the tags to the label exactly as the data has it."""
    assert control.store is not None
    body = registration_template()
    body = {
        **body,
        "changeId": "rq-hostile",
        "eventCode": "SUMMIT26",
        "registration": {**body["registration"], "registrationStatusLabel": LABEL},
    }
    at = datetime.now(UTC) - timedelta(hours=1)
    change = ChangeRow(
        change_id="rq-hostile",
        type=body["type"],
        account_code=body["accountCode"],
        event_code=body["eventCode"],
        registration_code=body["registration"]["registrationCode"],
        is_test=False,
        occurred_at=at,
        received_at=at,
        payload=json.dumps(body),
        source="api",
    )
    item = RetryItem(
        change_id="rq-hostile",
        flow_id="registered-to-nurture",
        flow_name="Registered to nurture",
        integration="demo-marketo",
        status="abandoned",
        category="data",
        reason=f"status '{LABEL}' in event resolves no tags",
        attempts=1,
        updated_at=at + timedelta(minutes=5),
        created_at=at + timedelta(minutes=1),
        last_error=f"no tag for {LABEL}",
    )
    control.call(control.store.archive_changes([change]))
    control.call(control.store.record_outcomes([], [item]))
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await keys(pilot, "4")
        await settle(pilot)
        assert isinstance(app.screen, RetryScreen)
        await keys(pilot, "slash")
        app.screen.query_one(Input).value = "rq-hostile"
        await keys(pilot, "enter")
        await settle(pilot)
        assert app.screen.query_one(DataTable).row_count == 1
        _no_raw(screen_text(pilot))
        await keys(pilot, "enter")
        await settle(pilot)
        assert isinstance(app.screen, ItemDetail)
        shown = app.screen.query_one("#body", Static).render()
        text = shown.plain if isinstance(shown, Text) else str(shown)
        assert f"status '{SHOWN}' in event resolves no tags" in text
        assert "\n" in text and "\\x0a" not in text  # its lines kept
        _no_raw(text)
        _no_raw(screen_text(pilot))
        await keys(pilot, "t")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, AssignTagsModal)
        assert modal.query_one("#label", Input).value == SHOWN
        _no_raw(screen_text(pilot))
        modal.query_one("#tags", Input).value = "registered"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, AssignTagsModal)
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        tags = await client.tags()
    finally:
        await client.close()
    assert tags["assignments"]["registration_statuses"][LABEL] == ["registered"]
