"""Connections: the list, and the add/edit form with Save & Test.

The client secret is write-only: the form never receives it, shows only whether one is set and
where it comes from, and sends a new one only when the operator typed it. A secret is bound to the
identity URL and client id it was entered for: when a save changes either without a new secret,
control clears it and the form says so; Save & Test then tests nothing until one is entered.

Save & Test tests the settings on the form *before* saving them, so wrong credentials never go
live (`console.screens.candidate_form`, shared with the Certain source form).

The list says per connection whether deliveries to it flow: its circuit breaker as the pipeline
workers report it (`/healthz`), in words, with an open breaker's probe time on the console's
clock. A breaker control cannot report shows as unknown, never as flowing. A passing test of a
connection's saved settings (`t`, or Save & Test of an unchanged form) closes an open breaker.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.validation import Function
from textual.widgets import DataTable, Input, Label, Static, Switch

from apiclient.errors import ApiError
from apiclient.rows import BreakerRow, ConnectionRow, SourceRow, TestResult
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
from console.screens.candidate_form import CandidateForm, Problems
from console.screens.form_parts import (
    READ_ONLY_KEYS,
    is_url,
    secret_label,
    secret_text,
    test_text,
)
from console.screens.modals import TypeToConfirmModal
from console.screens.source_form import SourceForm, source_body
from console.widgets.table import SignalTable

CSS = Path(__file__).with_name("connections.tcss")
DELIVERIES_WIDTH = 21
"""Wide enough for "paused until HH:MM:SS"."""
OTHER_COLUMNS = 20 + 9 + 3 + DELIVERIES_WIDTH + 2 * 4
"""The columns before Service URL, each with its padding."""


def url_text(url: str, width: int) -> str:
    """The service URL in `width` cells: whole when it fits, else its host first (the scheme
    and a trailing slash say nothing about which instance it is)."""
    if len(url) > width:
        url = url.split("://", 1)[-1].rstrip("/")
    return fmt.cell(url, width)


def deliveries_text(breaker: BreakerRow | None, breakers_known: bool, now: datetime) -> Text:
    """Whether deliveries to a connection flow, in words: its circuit breaker's state, an open
    one's probe time on the console's clock (`now`'s zone). `breakers_known` False: control
    could not say (it does not read the workers' heartbeats), which is not healthy. A known
    list without the connection: no live worker has called it yet."""
    if not breakers_known:
        return Text("unknown", style="dim")
    if breaker is None:
        return Text("no calls yet", style="dim")
    if breaker.state == "closed":
        return Text("flowing", style="green")
    if breaker.state == "open":
        if breaker.retry_at is None:
            return Text("paused", style="bold red")
        until = breaker.retry_at.astimezone(now.tzinfo).strftime("%H:%M:%S")
        return Text(f"paused until {until}", style="bold red")
    if breaker.state == "half_open":
        return Text("probing", style="yellow")
    return Text("unknown", style="dim")


class ConnectionsScreen(BaseScreen):
    CSS_PATH = CSS
    SCOPE = "connections"
    TITLE_TEXT = "Connections"

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, ConnectionRow] = {}
        self.sources: dict[str, SourceRow] = {}
        self.results: dict[str, Text] = {}
        self.breakers: dict[str, BreakerRow] | None = None
        self._rendered_url_width = 0

    def body(self) -> ComposeResult:
        table = SignalTable(id="connections", cursor_type="row", zebra_stripes=True)
        table.border_title = "connections"
        table.add_column("Name", key="name", width=20)
        table.add_column("Secret", key="secret", width=9)
        table.add_column("Pri", key="primary", width=3)
        table.add_column("Deliveries", key="deliveries", width=DELIVERIES_WIDTH)
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
        try:
            breakers = await self.console.client.connection_breakers()
        except ApiError:
            breakers = None  # shown as unknown; the lists above loaded, so nothing to report
        self.post_message(ConnectionsLoaded(connections, breakers))
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
        self.query_one("#connections", SignalTable).loading = False
        self.rows = {c.id: c for c in message.connections}
        self.breakers = message.breakers
        self._render_connections()
        self.loaded()

    def on_resize(self) -> None:
        if self.rows and self._url_width() != self._rendered_url_width:
            self._render_connections()

    def _url_width(self) -> int:
        """What the Service URL column has left: the table takes no horizontal scroll bar at
        80 columns (the border and the other columns with their padding come first)."""
        return max(12, self.size.width - 2 - OTHER_COLUMNS - 2)

    def _render_connections(self) -> None:
        table = self.query_one("#connections", SignalTable)
        known = self.breakers is not None
        now = self.console.clock()
        url_width = self._rendered_url_width = self._url_width()
        cursor = table.cursor_row
        with self.app.batch_update():
            table.clear()
            for row in self.rows.values():
                table.add_row(
                    *fmt.cells(
                        [
                            fmt.cell(row.name, 20),
                            secret_text(row),
                            "yes" if row.primary else "",
                            deliveries_text(self.breaker_of(row.id), known, now),
                            url_text(row.service_url, url_width),
                        ]
                    ),
                    key=row.id,
                )
            if self.rows:
                table.move_cursor(row=min(cursor, len(self.rows) - 1))
        table.border_title = f"connections [{len(self.rows)}]"

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        self.query_one("#connections", DataTable).loading = False
        self.console.report_error(message.what, message.error)
        if message.what in ("load connections", "load Certain sources"):
            self.loaded(ok=False)
        else:
            self.query_one("#test-result", Static).update(Text(f"✗ {message.error}", "red"))

    def breaker_of(self, connection_id: str) -> BreakerRow | None:
        return None if self.breakers is None else self.breakers.get(connection_id)

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
            self.app.push_screen(ConnectionForm(row, self.breaker_of(row.id)))

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


class ConnectionForm(CandidateForm[ConnectionRow]):
    """Add or edit one connection (Save & Test and "save anyway": `CandidateForm`)."""

    CSS_PATH = CSS
    SCOPE = "connection-form"
    WHAT = "connection"
    SECRET_ID = "client_secret"
    SECRET_LABEL_ID = "secret-label"
    SECRET_NOUN = "Client secret"
    IF_SAVED_ANYWAY = "Deliveries through this connection fail until it is fixed."

    def __init__(self, row: ConnectionRow | None, breaker: BreakerRow | None = None) -> None:
        """`breaker`: the connection's circuit breaker as the list last showed it."""
        super().__init__(row)
        self.title_text = f"Connection {row.name}" if row else "New connection"
        self.breaker = breaker

    def on_mount(self) -> None:
        super().on_mount()
        if self.breaker is not None and self.breaker.state in ("open", "half_open"):
            state = deliveries_text(self.breaker, True, self.console.clock())
            note = Text("Deliveries ", style="bold").append_text(state)
            note.append(" (circuit breaker): a passing Save & Test closes it.")
            self.query_one("#result", Static).update(note)

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
            yield Label(self.secret_label(), id="secret-label")
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
        yield from self.form_buttons()

    def secret_label(self) -> str:
        return secret_label(self.row)

    def values(self) -> tuple[dict[str, Any], str | None, Problems]:
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
        problems: Problems = []
        if not is_url(body["service_url"]):
            problems.append(("service_url", "Service URL must be an http(s) URL"))
        return body, secret, problems

    def test_candidate(self, body: dict[str, Any], secret: str | None) -> Awaitable[TestResult]:
        return self.console.client.test_candidate_connection(body, secret)

    def save_candidate(self, body: dict[str, Any], secret: str | None) -> Awaitable[ConnectionRow]:
        return self.console.client.save_connection(
            body, create=self.row is None, secret=secret, version=self.version
        )

    def tested_message(self, key: str, result: TestResult) -> Message:
        return ConnectionTested(key, result)

    def saved_message(self, row: ConnectionRow) -> Message:
        return ConnectionSaved(row)

    def cleared_note(self, row: ConnectionRow) -> str | None:
        return row.secret_cleared

    @on(ConnectionSaved)
    def saved(self, message: ConnectionSaved) -> None:
        self.show_saved(message.connection)

    @on(ConnectionTested)
    def tested(self, message: ConnectionTested) -> None:
        self.show_tested(message.result)
