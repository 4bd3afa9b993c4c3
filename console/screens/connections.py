"""Connections: the list, and the add/edit form with Save & Test.

The client secret is write-only: the form never receives it, shows only whether one is set and
where it comes from, and sends a new one only when the operator typed it. A secret is bound to the
identity URL and client id it was entered for: when a save changes either without a new secret,
control clears it and the form says so; Save & Test then tests nothing until one is entered.

Save & Test tests the settings on the form *before* saving them (control's candidate test), so
wrong credentials never go live: it saves only when the test passes, or when the operator
confirms "save anyway" after a failed one. Nothing is saved while the dialog is open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.validation import Function
from textual.widgets import Button, DataTable, Input, Label, LoadingIndicator, Static, Switch

from apiclient.errors import ApiError, RequestRefused
from apiclient.rows import ConnectionRow, SourceRow
from console import fmt, source_status
from console.calls import api_worker
from console.messages import (
    ApiFailed,
    ConnectionDeleted,
    ConnectionSaved,
    ConnectionsLoaded,
    ConnectionTested,
    SourcesLoaded,
    SourceTested,
)
from console.screens.base import BaseScreen
from console.screens.form_parts import (
    READ_ONLY_KEYS,
    CandidateFailed,
    is_url,
    secret_label,
    secret_text,
    test_text,
)
from console.screens.modals import ConfirmModal, TypeToConfirmModal
from console.screens.source_form import SourceForm, source_body
from console.widgets.table import SignalTable

CSS = Path(__file__).with_name("connections.tcss")


class ConnectionsScreen(BaseScreen):
    CSS_PATH = CSS
    SCOPE = "connections"
    TITLE_TEXT = "Connections"

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, ConnectionRow] = {}
        self.sources: dict[str, SourceRow] = {}
        self.results: dict[str, Text] = {}

    def body(self) -> ComposeResult:
        table = SignalTable(id="connections", cursor_type="row", zebra_stripes=True)
        table.border_title = "connections"
        table.add_column("Name", key="name", width=20)
        table.add_column("Secret", key="secret", width=9)
        table.add_column("Pri", key="primary", width=3)
        table.add_column("Service URL", key="url")
        yield table
        sources = SignalTable(id="sources", cursor_type="row", zebra_stripes=True)
        sources.border_title = "Certain sources"
        sources.add_column("Name", key="name", width=16)
        sources.add_column("State", key="state")
        sources.add_column("Lag", key="lag", width=4)
        sources.add_column("Last poll", key="last_poll", width=9)
        sources.add_column("Recs", key="records", width=5)
        yield sources
        yield Static(id="source-detail")
        yield Static(id="test-result")

    def on_mount(self) -> None:
        self.query_one("#connections", DataTable).loading = True

    def load(self) -> None:
        self.fetch()

    @api_worker("connections-load")
    async def fetch(self) -> None:
        connections = await self.call_api("load connections", self.console.client.connections())
        sources = await self.call_api("load Certain sources", self.console.client.sources())
        self.post_message(ConnectionsLoaded(connections))
        self.post_message(SourcesLoaded(sources))

    @on(SourcesLoaded)
    def sources_loaded(self, message: SourcesLoaded) -> None:
        table = self.query_one("#sources", SignalTable)
        self.sources = {s.id: s for s in message.sources}
        now = self.console.clock()
        cursor = table.cursor_row
        with self.app.batch_update():
            table.clear()
            for row in message.sources:
                table.add_row(
                    *fmt.cells(
                        [
                            fmt.cell(row.name, 16),
                            source_status.state_text(row),
                            source_status.lag_text(row),
                            source_status.last_poll_text(row, now),
                            source_status.records_text(row),
                        ]
                    ),
                    key=row.id,
                )
            if message.sources:
                table.move_cursor(row=min(cursor, len(message.sources) - 1))
        table.border_title = f"Certain sources [{len(self.sources)}]"
        self._show_source()

    @on(DataTable.RowHighlighted, "#sources")
    def source_highlighted(self) -> None:
        self._show_source()

    def _show_source(self) -> None:
        row = self.selected_source()
        detail = self.query_one("#source-detail", Static)
        if row is None:
            detail.update("No Certain source yet: c adds one." if not self.sources else "")
        else:
            detail.update(source_status.detail_text(row))

    def selected_source(self) -> SourceRow | None:
        key = self.query_one("#sources", SignalTable).selected_key()
        return None if key is None else self.sources.get(key)

    def _sources_focused(self) -> bool:
        focused = self.focused
        return focused is not None and focused.id == "sources"

    @on(ConnectionsLoaded)
    def connections_loaded(self, message: ConnectionsLoaded) -> None:
        table = self.query_one("#connections", SignalTable)
        table.loading = False
        self.rows = {c.id: c for c in message.connections}
        cursor = table.cursor_row
        with self.app.batch_update():
            table.clear()
            for row in message.connections:
                table.add_row(
                    *fmt.cells(
                        [
                            fmt.cell(row.name, 20),
                            secret_text(row),
                            "yes" if row.primary else "",
                            row.service_url,
                        ]
                    ),
                    key=row.id,
                )
            if message.connections:
                table.move_cursor(row=min(cursor, len(message.connections) - 1))
        table.border_title = f"connections [{len(self.rows)}]"
        self.loaded()

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        self.query_one("#connections", DataTable).loading = False
        self.console.report_error(message.what, message.error)
        if message.what in ("load connections", "load Certain sources"):
            self.loaded(ok=False)
        else:
            self.query_one("#test-result", Static).update(Text(f"✗ {message.error}", "red"))

    def selected(self) -> ConnectionRow | None:
        key = self.query_one("#connections", SignalTable).selected_key()
        return None if key is None else self.rows.get(key)

    def action_edit(self) -> None:
        if self._sources_focused():
            source = self.selected_source()
            if source is not None:
                self.app.push_screen(SourceForm(source))
            return
        row = self.selected()
        if row is not None:
            self.app.push_screen(ConnectionForm(row))

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_edit()

    def action_new_connection(self) -> None:
        self.app.push_screen(ConnectionForm(None))

    def action_new_source(self) -> None:
        self.app.push_screen(SourceForm(None))

    def action_delete_connection(self) -> None:
        if self._sources_focused():
            self.notify(
                "A Certain source is removed through the configuration (csignal config "
                "import), or stopped by switching Active off in its form",
                timeout=6,
            )
            return
        row = self.selected()
        if row is None:
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.delete(row.id)

        question = (
            f"Delete connection '{row.name}' ({row.id})? Its stored secret is forgotten; flows "
            "that use it must be changed first."
        )
        self.app.push_screen(
            TypeToConfirmModal(question, row.id, title="Delete connection"), confirmed
        )

    @api_worker("connection-delete")
    async def delete(self, connection_id: str) -> None:
        deleting = self.console.client.delete_connection(connection_id)
        await self.call_api("delete the connection", deleting)
        self.post_message(ConnectionDeleted(connection_id))

    @on(ConnectionDeleted)
    def deleted(self, message: ConnectionDeleted) -> None:
        self.notify(f"Deleted {message.connection_id}", timeout=3)
        self.action_refresh_now()

    def action_test_selected(self) -> None:
        if self._sources_focused():
            source = self.selected_source()
            if source is not None:
                self.query_one("#test-result", Static).update(Text(f"Testing {source.name}…"))
                self.run_source_test(source)
            return
        row = self.selected()
        if row is None:
            return
        self.query_one("#test-result", Static).update(Text(f"Testing {row.name}…"))
        self.run_test(row.id)

    @api_worker("connection-test")
    async def run_test(self, connection_id: str) -> None:
        testing = self.console.client.test_connection(connection_id)
        result = await self.call_api("test the connection", testing)
        self.post_message(ConnectionTested(connection_id, result))

    @api_worker("connection-test")
    async def run_source_test(self, source: SourceRow) -> None:
        """The stored settings, tested as a candidate: control sends the stored password."""
        testing = self.console.client.test_candidate_source(source_body(source.raw))
        result = await self.call_api("test the Certain source", testing)
        self.post_message(SourceTested(source.id, result))

    @on(SourceTested)
    def source_tested(self, message: SourceTested) -> None:
        row = self.sources.get(message.source_id)
        name = row.name if row else message.source_id
        text = Text(f"{name}: ").append_text(test_text(message.result))
        self.query_one("#test-result", Static).update(text)

    @on(ConnectionTested)
    def tested(self, message: ConnectionTested) -> None:
        row = self.rows.get(message.connection_id)
        name = row.name if row else message.connection_id
        text = Text(f"{name}: ").append_text(test_text(message.result))
        self.query_one("#test-result", Static).update(text)


class ConnectionForm(BaseScreen):
    """Add or edit one connection; stays open after a failed test so the operator can fix it."""

    CSS_PATH = CSS
    SCOPE = "connection-form"
    POLLS = False

    def __init__(self, row: ConnectionRow | None) -> None:
        super().__init__()
        self.row = row
        self._testing = False
        self.title_text = f"Connection {row.name}" if row else "New connection"

    def body(self) -> ComposeResult:
        raw = self.row.raw if self.row else {}
        url_check = Function(is_url, "must be an http(s) URL")
        with VerticalScroll(id="form") as form:
            form.border_title = "connection"
            yield Label("Id (stable key)")
            yield Input(
                raw.get("id", ""),
                id="id",
                disabled=self.row is not None,
                placeholder="e.g. marketo-prod",
            )
            yield Label("Connection name")
            yield Input(raw.get("name", ""), id="name", placeholder="Marketo production")
            yield Label("Service URL")
            yield Input(
                raw.get("service_url", ""),
                id="service_url",
                placeholder="https://123-ABC-456.mktorest.com",
                validators=[url_check],
                validate_on=["blur", "submitted"],
            )
            yield Label("Client Id")
            yield Input(raw.get("client_id") or "", id="client_id")
            yield Label(self._secret_label(), id="secret-label")
            yield Input(
                "",
                id="client_secret",
                password=True,
                placeholder="leave empty to keep" if self.row else "client secret",
            )
            yield Label("Access Token URL (blank: default)")
            yield Input(raw.get("access_token_url") or "", id="access_token_url")
            yield Label("Scope (blank: default)")
            yield Input(raw.get("scope") or "", id="scope")
            with Horizontal(classes="switches"):
                yield Switch(bool(raw.get("force_update")), id="force_update")
                yield Label("Force Update (trigger campaign)")
            with Horizontal(classes="switches"):
                yield Switch(bool(raw.get("primary")), id="primary")
                yield Label("Primary connection")
        with Horizontal(id="form-buttons"):
            yield Button("Save & Test ^t", id="save-test", variant="primary")
            yield Button("Save ^s", id="save")
            yield LoadingIndicator(id="busy")
        yield Static(id="result")

    def on_mount(self) -> None:
        self.query_one("#busy").display = False
        if self.console.read_only:
            for button in self.query(Button):
                button.display = False
        first = "#name" if self.row else "#id"
        self.query_one(first, Input).focus()

    def _secret_label(self) -> str:
        return secret_label(self.row)

    def values(self) -> tuple[dict[str, Any], str | None]:
        raw = {
            k: v for k, v in (self.row.raw if self.row else {}).items() if k not in READ_ONLY_KEYS
        }

        def text(name: str) -> str | None:
            value = self.query_one(f"#{name}", Input).value.strip()
            return value or None

        body = {
            **raw,
            "id": text("id") or "",
            "name": text("name") or "",
            "service_url": text("service_url") or "",
            "client_id": text("client_id"),
            "access_token_url": text("access_token_url"),
            "scope": text("scope"),
            "force_update": self.query_one("#force_update", Switch).value,
            "primary": self.query_one("#primary", Switch).value,
        }
        secret = self.query_one("#client_secret", Input).value or None
        return body, secret

    def _busy(self, busy: bool, note: str | Text = "") -> None:
        self.query_one("#busy").display = busy
        for button in self.query(Button):
            button.disabled = busy
        if note:
            self.query_one("#result", Static).update(note)

    def action_close(self) -> None:
        self.dismiss()

    def action_save(self) -> None:
        self._start(test=False)

    def action_save_and_test(self) -> None:
        self._start(test=True)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self._start(test=event.button.id == "save-test")

    def _start(self, test: bool) -> None:
        if self.console.read_only:
            return
        for box in self.query(Input):
            box.remove_class("error")
        body, secret = self.values()
        if not is_url(body["service_url"]):
            self.query_one("#service_url", Input).add_class("error")
            self.query_one("#result", Static).update(
                Text("✗ Service URL must be an http(s) URL", "red")
            )
            return
        self._testing = test
        if test:
            self._busy(True, "Testing before saving…")
            self.test_then_save(body, secret)
        else:
            self._busy(True, "Saving…")
            self.save(body, secret)

    @api_worker("connection-save")
    async def test_then_save(self, body: dict[str, Any], secret: str | None) -> None:
        """Test the form's settings; save them only when the test passes (a failed test asks
        whether to save anyway, `CandidateFailed`)."""

        def refused(error: ApiError) -> Message | None:
            if not isinstance(error, RequestRefused):
                return ApiFailed("test the connection", error.message)
            self.post_message(CandidateFailed(body, secret, None, error.message))
            self._mark_problems(error)
            return None

        testing = self.console.client.test_candidate_connection(body, secret)
        result = await self.call_api("test the connection", testing, failed=refused)
        if not result.ok:
            self.post_message(CandidateFailed(body, secret, result, result.message))
            return
        await self._save(body, secret)
        self.post_message(ConnectionTested(str(body.get("id", "")), result))

    @api_worker("connection-save")
    async def save(self, body: dict[str, Any], secret: str | None) -> None:
        await self._save(body, secret)

    async def _save(self, body: dict[str, Any], secret: str | None) -> None:
        """Save the form (a refusal marks the fields it names); the worker stops on failure."""

        def refused(error: ApiError) -> None:
            self.post_message(ApiFailed("save the connection", error.message))
            if isinstance(error, RequestRefused):
                self._mark_problems(error)

        version = self.row.raw.get("version") if self.row else None
        saving = self.console.client.save_connection(
            body, create=self.row is None, secret=secret, version=version
        )
        saved = await self.call_api("save the connection", saving, failed=refused)
        self.post_message(ConnectionSaved(saved))

    def _mark_problems(self, error: RequestRefused) -> None:
        """Mark the fields a refusal names (`client_id`, `service_url.host` → `#service_url`)."""
        for problem in error.problems:
            self.call_later(self._mark, problem.path.split(".")[0])

    @on(CandidateFailed)
    def candidate_failed(self, message: CandidateFailed) -> None:
        """Nothing was saved: say why, and let the operator save anyway on purpose."""
        why = message.reason
        self._busy(False, Text(f"✗ Not saved — the test failed: {why}", style="bold red"))
        if message.result is None:
            self.console.report_error("test the connection", why)
        question = (
            f"The connection test failed: {why}\n\nNothing was saved. Save these settings "
            "anyway? Deliveries through this connection fail until it is fixed."
        )

        def answer(ok: bool | None) -> None:
            if ok:
                self._testing = False
                self._busy(True, "Saving without a passing test…")
                self.save(message.body, message.secret)

        self.app.push_screen(ConfirmModal(question, title="Save anyway?"), answer)

    def _mark(self, name: str) -> None:
        for box in self.query(f"#{name}").results(Input):
            box.add_class("error")

    @on(ConnectionSaved)
    def saved(self, message: ConnectionSaved) -> None:
        self.row = message.connection
        self.query_one("#id", Input).disabled = True
        self.query_one("#client_secret", Input).value = ""
        self.query_one("#client_secret", Input).placeholder = "leave empty to keep"
        self.query_one("#secret-label", Label).update(self._secret_label())
        self.notify(f"Saved {message.connection.name}", timeout=2)
        cleared = message.connection.secret_cleared
        if cleared:
            self.query_one("#client_secret", Input).placeholder = "client secret"
            self.notify(cleared, title="Client secret cleared", severity="warning", timeout=10)
        if cleared:
            self._busy(False, Text(f"✓ Saved — {cleared}", style="bold yellow"))
        elif not self._testing:
            self._busy(False, "✓ Saved")

    @on(ConnectionTested)
    def tested(self, message: ConnectionTested) -> None:
        self._busy(False)
        text = test_text(message.result)
        if message.result.ok:
            text.append(" — saved")
        self.query_one("#result", Static).update(text)
        if message.result.ok:
            self.notify("Connection test passed; saved", timeout=2)
        else:
            self.notify(
                message.result.message, title="Connection test failed", severity="error", timeout=10
            )

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        self._busy(False)
        self.query_one("#result", Static).update(Text(f"✗ {message.error}", style="bold red"))
        self.console.report_error(message.what, message.error)
