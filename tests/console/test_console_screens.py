"""Connections (Save & Test), SQL, the retry queue, metrics and tags & events, end to end
against a real operator API and Marketo sandbox."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Static, TextArea

from apiclient.client import ApiClient
from console.messages import ConnectionTested, Resubmitted, SqlFinished
from console.screens.connections import ConnectionForm
from console.screens.form_parts import CandidateFailed
from console.screens.modals import ConfirmModal, TextModal, TypeToConfirmModal
from console.screens.retry import ItemDetail
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import TOKEN, Control


async def test_save_and_test_good_then_bad_secret(
    control: Control, make_console: MakeConsole
) -> None:
    messages: list[object] = []
    app = make_console(control)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await keys(pilot, "2")
        await settle(pilot)
        assert "Marketo sandbox" in screen_text(pilot)
        await keys(pilot, "enter")
        assert isinstance(app.screen, ConnectionForm)
        assert app.screen.query_one("#client_secret", Input).value == ""
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        [good] = [m for m in messages if isinstance(m, ConnectionTested)]
        assert good.result.ok
        assert "✓ Connected in" in screen_text(pilot)
        app.screen.query_one("#client_secret", Input).value = "not-the-secret"
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        [bad] = [m for m in messages if isinstance(m, CandidateFailed)]
        assert bad.result is not None and not bad.result.ok
        assert isinstance(app.screen, ConfirmModal), "a failed test saves nothing unasked"
        await keys(pilot, "n")
        text = screen_text(pilot)
        assert "✗" in text and isinstance(app.screen, ConnectionForm)
        assert "not-the-secret" not in text


async def test_new_connection_with_a_bad_url_is_marked(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "2", "n")
        form = app.screen
        assert isinstance(form, ConnectionForm)
        form.query_one("#id", Input).value = "mkto-2"
        form.query_one("#name", Input).value = "Second"
        form.query_one("#service_url", Input).value = "not a url"
        await keys(pilot, "ctrl+s")
        assert form.query_one("#service_url", Input).has_class("error")
        form.query_one("#service_url", Input).value = control.sandbox.url  # type: ignore[union-attr]
        form.query_one("#client_id", Input).value = "sandbox-client"
        form.query_one("#client_secret", Input).value = "sandbox-secret"
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        assert "✓ Connected in" in screen_text(pilot)
        client = ApiClient.for_console(control.url, TOKEN)
        try:
            saved = {c.id: c for c in await client.connections()}
        finally:
            await client.close()
        assert saved["mkto-2"].secret_set and saved["mkto-2"].secret_source == "stored"


async def test_sql_query_and_a_refused_statement(
    control: Control, make_console: MakeConsole
) -> None:
    messages: list[object] = []
    app = make_console(control)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await keys(pilot, "6")
        await keys(pilot, "ctrl+j")
        await settle(pilot)
        [done] = [m for m in messages if isinstance(m, SqlFinished)]
        assert done.result.columns == ["flow_name", "status", "n"]
        assert app.screen.query_one("#results", DataTable).row_count == 6
        app.screen.query_one("#query", TextArea).text = "DELETE FROM changes"
        await keys(pilot, "ctrl+j")
        await settle(pilot)
        status = str(app.screen.query_one("#sql-status", Static).render())
        assert "refused" in status and "DELETE" in status
        assert app.screen.query_one("#query", TextArea).has_class("error")
        assert app.screen.query_one("#query", TextArea).text == "DELETE FROM changes"


async def test_retry_queue_pages_filters_and_resubmits(
    control: Control, make_console: MakeConsole
) -> None:
    messages: list[object] = []
    app = make_console(control)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await keys(pilot, "4")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 45 and "1–45 of 45" in str(table.border_subtitle)
        await keys(pilot, "i")
        assert "integration:demo-marketo" in str(table.border_title)
        assert table.row_count == 45
        await keys(pilot, "i")
        assert "integration" not in str(table.border_title)
        await keys(pilot, "s", "s", "s")
        assert "status:abandoned" in str(table.border_title)
        assert table.row_count == 15
        abandoned = [str(k.value) for k in table.rows][:2]
        await keys(pilot, "space", "space", "r")
        assert isinstance(app.screen, ConfirmModal)
        assert "Resubmit 2 items" in screen_text(pilot)
        await keys(pilot, "y")
        await settle(pilot)
        assert any(isinstance(m, Resubmitted) and m.result.submitted == 2 for m in messages)
        assert table.row_count == 13
        client = ApiClient.for_console(control.url, TOKEN)
        try:
            for key in abandoned:
                change_id, flow_id = key.split("|")
                item = (await client.retry_item(change_id, flow_id))["item"]
                assert item["status"] != "abandoned" and item["resubmitted_by"]
        finally:
            await client.close()
        await keys(pilot, "R")
        assert isinstance(app.screen, TypeToConfirmModal)
        await type_text(pilot, "12")
        await keys(pilot, "enter")
        assert isinstance(app.screen, TypeToConfirmModal)
        app.screen.query_one(Input).value = "13"
        await keys(pilot, "enter")
        await settle(pilot)
        assert table.row_count == 0
        await keys(pilot, "s", "s", "slash")
        await type_text(pilot, "rq-044")
        await keys(pilot, "enter")
        assert table.row_count == 1
        await keys(pilot, "enter")
        await settle(pilot)
        assert isinstance(app.screen, ItemDetail)
        text = screen_text(pilot)
        assert "rq-044" in text and "would send now" in text


async def test_metrics_tabs_mode_and_period(control: Control, make_console: MakeConsole) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "5")
        await settle(pilot)
        text = screen_text(pilot)
        assert "Changes processed        54" in text
        assert "Leads created            29" in text
        await keys(pilot, "m")
        await settle(pilot)
        assert "Changes processed         0" in screen_text(pilot)
        await keys(pilot, "m", "d", "d")
        await settle(pilot)
        assert "period  1h  24h  7d " in screen_text(pilot)
        await keys(pilot, "l")
        assert "Validation errors" in screen_text(pilot)
        await keys(pilot, "l")
        await settle(pilot)
        text = screen_text(pilot)
        assert "54 outcomes · following new outcomes" in text
        assert "delivered" in text


async def test_catalog_flags_untagged_items_flows_need(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "3")
        await settle(pilot)
        events = app.screen.query_one("#events", DataTable)
        assert events.row_count == 5
        events.focus()
        await keys(pilot, "enter")
        await settle(pilot)
        assert isinstance(app.screen, TextModal)
        text = screen_text(pilot)
        assert "UNTAGGED" in text and "Need photo" in text


async def test_feed_follows_then_pauses_when_scrolled_back(
    control: Control, make_console: MakeConsole
) -> None:
    from datetime import UTC, datetime, timedelta

    from textual.widgets import RichLog

    from stream.store.rows import OutcomeRow

    def outcomes(start: int, count: int) -> list[OutcomeRow]:
        now = datetime.now(UTC)
        return [
            OutcomeRow(
                change_id=f"new-{i}",
                flow_id="attended-follow-up",
                flow_name="Attended Follow Up",
                mode="live",
                status="delivered",
                occurred_at=now - timedelta(seconds=3),
                processed_at=now - timedelta(seconds=1),
                registration_code=f"N{i:05d}",
                event_code="SUMMIT26",
                lead_result="created",
            )
            for i in range(start, start + count)
        ]

    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "5", "l", "l")
        await settle(pilot)
        log = app.screen.query_one("#feed-log", RichLog)
        assert "54 outcomes · following" in screen_text(pilot)
        assert control.store is not None
        await control.acall(control.store.record_outcomes(outcomes(0, 3)))
        await keys(pilot, "ctrl+r")
        await settle(pilot)
        assert "57 outcomes · following" in screen_text(pilot)
        assert log.is_vertical_scroll_end
        log.scroll_home(animate=False)
        await pilot.pause()
        await control.acall(control.store.record_outcomes(outcomes(3, 2)))
        await keys(pilot, "ctrl+r")
        await settle(pilot)
        assert "paused (2 new) — end to follow" in screen_text(pilot)
        assert log.scroll_y == 0
        await keys(pilot, "end")
        assert "59 outcomes · following" in screen_text(pilot)


async def test_deleting_a_connection_needs_its_id_and_control_guards_used_ones(
    control: Control, make_console: MakeConsole
) -> None:
    client = ApiClient.for_console(control.url, TOKEN)
    await client.save_connection(
        {"id": "spare", "name": "Spare", "service_url": "https://spare.mktorest.com"},
        create=True,
    )
    app = make_console(control)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await keys(pilot, "2")
            await settle(pilot)
            table = app.screen.query_one(DataTable)
            assert table.row_count == 2
            await keys(pilot, "d")
            assert isinstance(app.screen, TypeToConfirmModal)
            app.screen.query_one(Input).value = "demo-marketo"
            await keys(pilot, "enter")
            await settle(pilot)
            assert {c.id for c in await client.connections()} == {"demo-marketo", "spare"}
            assert app.errors and "delete" in app.errors[-1][1]
            table.move_cursor(row=table.get_row_index("spare"))
            await keys(pilot, "d")
            app.screen.query_one(Input).value = "spare"
            await keys(pilot, "enter")
            await settle(pilot)
            assert {c.id for c in await client.connections()} == {"demo-marketo"}
            assert table.row_count == 1
    finally:
        await client.close()
