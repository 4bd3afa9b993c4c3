"""Home: the flow list with active and live/test toggles and today's delivered/failed counts.

Toggles run one at a time, in the order pressed: a toggle pressed while another change (or its
question) is under way waits its turn and is decided then, on the flow as that change left it, so
`a a` switches a flow on and off again; none is cancelled mid-request.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input

from apiclient.rows import FlowRow, FlowStats
from console import actions, fmt
from console.calls import api_worker
from console.messages import ApiFailed, FlowChanged, FlowsLoaded, FlowStatsLoaded
from console.screens.base import BaseScreen
from console.screens.modals import ConfirmModal, TextModal, TypeToConfirmModal
from console.widgets.table import SignalTable

SOURCE_SHORT = {
    "registration.create_update": "reg c/u",
    "registration.status_change": "status",
    "session_registration.status_change": "session",
    "event.create_update": "event",
}
WIDE = 120
"""From this width every column shows, the destination in a column of its own."""
NARROW = 100
"""From `NARROW` to `WIDE` the destination moves to the table's subtitle (the selected flow's)
so that Sent, Fail and the 12 h trend keep their columns; below `NARROW` the names and the
trend shorten too (8 h), so the table still fits 80 columns."""
NAME_WIDTH = {"wide": 26, "medium": 30, "narrow": 18}


class FilterInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("filter")]

    def action_clear(self) -> None:
        self.value = ""
        self.display = False
        self.screen.query_one(DataTable).focus()


class FlowsScreen(BaseScreen):
    CSS_PATH = Path(__file__).with_name("flows.tcss")
    SCOPE = "flows"
    TITLE_TEXT = "Flows"

    def __init__(self) -> None:
        super().__init__()
        self.flows: dict[str, FlowRow] = {}
        self.stats: dict[str, FlowStats] = {}
        self.filter_text = ""
        self.layout_name: str | None = None
        self.switching: str | None = None
        """The flow whose active or mode change (or its question) is under way, if any."""
        self.switch_queue: deque[Callable[[], None]] = deque()
        """Toggles pressed meanwhile, each run when the one before it has finished."""

    @property
    def narrow(self) -> bool:
        """The shortened layout: short names, 8 h trend (below `NARROW` columns)."""
        return self.layout_name == "narrow"

    @property
    def dest_in_subtitle(self) -> bool:
        return self.layout_name != "wide"

    def body(self) -> ComposeResult:
        table = SignalTable(id="flows", cursor_type="row", zebra_stripes=True)
        table.border_title = "flows"
        yield table
        search = FilterInput(placeholder="filter flows by name (esc clears)", id="filter")
        search.display = False
        yield search

    def on_mount(self) -> None:
        self._build_columns()
        self.query_one(DataTable).loading = True

    def _layout_for(self, width: int) -> str:
        if width >= WIDE:
            return "wide"
        return "medium" if width >= NARROW else "narrow"

    def on_resize(self) -> None:
        if self.layout_name != self._layout_for(self.size.width):
            self._build_columns()
            self._render_rows(full=True)

    def _build_columns(self) -> None:
        self.layout_name = self._layout_for(self.size.width)
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_column("Name", key="name", width=NAME_WIDTH[self.layout_name])
        table.add_column("Source", key="source", width=7)
        if not self.dest_in_subtitle:
            table.add_column("Destination", key="dest", width=26)
        table.add_column("Status", key="status", width=10)
        table.add_column("Act", key="active", width=5)
        table.add_column("Mode", key="mode", width=4)
        table.add_column("Sent", key="delivered", width=5)
        table.add_column("Fail", key="failed", width=4)
        table.add_column(
            "12h" if not self.narrow else "8h", key="trend", width=12 if not self.narrow else 8
        )

    # --- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        self.fetch()

    @api_worker("flows-load")
    async def fetch(self) -> None:
        client = self.console.client
        self.post_message(FlowsLoaded(await self.call_api("load flows", client.flows())))
        stats = client.flow_stats(self.console.clock())
        self.post_message(FlowStatsLoaded(await self.call_api("load today's counts", stats)))

    @on(FlowsLoaded)
    def flows_loaded(self, message: FlowsLoaded) -> None:
        self.flows = {f.id: f for f in message.flows}
        self.query_one(DataTable).loading = False
        self._render_rows()
        self.loaded()

    @on(FlowStatsLoaded)
    def stats_loaded(self, message: FlowStatsLoaded) -> None:
        self.stats = message.stats
        self._render_rows()

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        self.query_one(DataTable).loading = False
        self.console.report_error(message.what, message.error)
        if message.what == "load flows":
            self.loaded(ok=False)

    # --- rendering -------------------------------------------------------------------------

    def _cells(self, flow: FlowRow) -> dict[str, Any]:
        stats = self.stats.get(flow.id, FlowStats())
        trend = stats.hourly[-8:] if self.narrow else stats.hourly
        dest = "/".join(x for x in (flow.connection, flow.action) if x) or "—"
        cells: dict[str, Any] = {
            "name": fmt.cell(flow.name, NAME_WIDTH[self.layout_name or "wide"]),
            "source": SOURCE_SHORT.get(flow.source or "", "—"),
            "dest": fmt.cell(dest, 26),
            "status": fmt.status_text(flow.complete),
            "active": fmt.active_text(flow.active),
            "mode": fmt.mode_text(flow.mode),
            "delivered": Text(str(stats.delivered), justify="right"),
            "failed": Text(str(stats.failed), justify="right", style="red" if stats.failed else ""),
            "trend": fmt.spark_text(trend),
        }
        if self.dest_in_subtitle:
            cells.pop("dest")
        return cells

    def _visible(self) -> list[FlowRow]:
        needle = self.filter_text.lower()
        return [f for f in self.flows.values() if needle in f.name.lower() or needle in f.id]

    def _render_rows(self, full: bool = False) -> None:
        table = self.query_one(DataTable)
        visible = self._visible()
        keys = [f.id for f in visible]
        current = [str(k.value) for k in table.rows]
        with self.app.batch_update():
            if full or current != keys[: len(current)] or len(current) > len(keys):
                cursor = table.cursor_row
                table.clear()
                for flow in visible:
                    table.add_row(*fmt.cells(self._cells(flow).values()), key=flow.id)
                if visible:
                    table.move_cursor(row=min(cursor, len(visible) - 1))
            else:
                for flow in visible:
                    cells = self._cells(flow)
                    if flow.id not in current:
                        table.add_row(*fmt.cells(cells.values()), key=flow.id)
                        continue
                    for column, value in cells.items():
                        if str(table.get_cell(flow.id, column)) != str(value):
                            table.update_cell(flow.id, column, fmt.plain(value))
        title = f"flows [{len(visible)}]"
        if self.filter_text:
            title = f"flows /{self.filter_text}/ [{len(visible)} of {len(self.flows)}]"
        table.border_title = fmt.esc(title)
        self._subtitle()

    def _subtitle(self) -> None:
        table = self.query_one(DataTable)
        flow = self.selected()
        dest = ""
        if flow is not None and self.dest_in_subtitle:
            dest = "/".join(x for x in (flow.connection, flow.action) if x) or "no destination"
            dest = f"{fmt.esc(fmt.cell(dest, 40))} · "
        table.border_subtitle = f"{dest}Sent/Fail: today (UTC)"

    @on(DataTable.RowHighlighted)
    def row_highlighted(self) -> None:
        self._subtitle()

    # --- actions ---------------------------------------------------------------------------

    def selected(self) -> FlowRow | None:
        key = self.query_one(SignalTable).selected_key()
        return None if key is None else self.flows.get(key)

    def action_open_flow(self) -> None:
        flow = self.selected()
        if flow is not None:
            from console.screens.flow_detail import FlowDetailScreen

            self.app.push_screen(FlowDetailScreen(flow.id))

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_flow()

    def action_new_flow(self) -> None:
        from console.screens.flow_detail import FlowDetailScreen

        self.app.push_screen(FlowDetailScreen(None))

    def action_show_reasons(self) -> None:
        flow = self.selected()
        if flow is None:
            return
        if flow.complete:
            body = "Complete: the flow has everything it needs to run."
        else:
            body = "Incomplete — it never runs until these are fixed:\n\n" + "\n".join(
                f"• {r}" for r in flow.reasons
            )
        self.app.push_screen(TextModal(f"{flow.name}", body))

    # --- switching, one change at a time ---------------------------------------------------

    def _queue_switch(self, step: Callable[[], None]) -> None:
        """Run `step` now, or after the change under way and those queued before it; each step
        ends by starting a change, asking a question, or calling `_next_switch`."""
        self.switch_queue.append(step)
        if self.switching is None:
            self._next_switch()
        else:
            self.notify(f"still switching {self.switching}… this change follows it", timeout=3)

    def _next_switch(self) -> None:
        self.switching = None
        if self.switch_queue:
            self.switch_queue.popleft()()

    def _switch_active(self, flow: FlowRow, active: bool) -> None:
        self.switching = flow.name
        self.set_active(flow.id, active)

    def _switch_mode(self, flow: FlowRow, mode: str) -> None:
        self.switching = flow.name
        self.set_mode(flow.id, mode)

    def _ask(self, flow: FlowRow, modal: ModalScreen[bool], then: Callable[[], None]) -> None:
        """Ask; `then` runs on yes. Further toggles wait for the answer."""
        self.switching = flow.name

        def answer(ok: bool | None) -> None:
            if ok:
                then()
            else:
                self._next_switch()

        self.app.push_screen(modal, answer)

    def action_toggle_active(self) -> None:
        flow = self.selected()
        if flow is not None:
            self._queue_switch(partial(self._toggle_active, flow.id))

    def _toggle_active(self, flow_id: str) -> None:
        """Anything that starts or stops LIVE deliveries asks first (the safe answer focused);
        switching a TEST flow on or off does not, nor does it ask what an incomplete flow
        would not do anyway, beyond saying it will not run. Decided on the flow as it is when
        this toggle's turn comes."""
        flow = self.flows.get(flow_id)
        if flow is None:
            self._next_switch()
            return
        live = flow.mode == "live"
        if flow.active:
            if not live:
                self._switch_active(flow, False)
                return
            question = (
                f"Deactivate '{flow.name}' ({flow.id})? It is LIVE: its deliveries to "
                "Marketo stop until it is activated again; changes that arrive meanwhile are "
                "not sent."
            )
            self._confirm_active(flow, False, question, "Deactivate LIVE flow")
            return
        if not flow.complete:
            reasons = "\n".join(f"• {r}" for r in flow.reasons)
            question = (
                f"Flow '{flow.name}' is incomplete:\n{reasons}\n\n"
                "An incomplete flow never runs; control will refuse until it is complete. "
                "Try to activate it anyway?"
            )
            self._confirm_active(flow, True, question, "Activate incomplete flow")
            return
        if live:
            question = (
                f"Activate '{flow.name}' ({flow.id})? It is LIVE: real registrations of live "
                "events will be sent to Marketo from now on."
            )
            self._confirm_active(flow, True, question, "Activate LIVE flow")
            return
        self._switch_active(flow, True)

    def _confirm_active(self, flow: FlowRow, active: bool, question: str, title: str) -> None:
        """Ask; the flow is the one selected when the question opened, whatever is selected
        when it is answered."""
        modal = ConfirmModal(question, title=title)
        self._ask(flow, modal, partial(self._switch_active, flow, active))

    def action_toggle_mode(self) -> None:
        flow = self.selected()
        if flow is not None:
            self._queue_switch(partial(self._toggle_mode, flow.id))

    def _toggle_mode(self, flow_id: str) -> None:
        flow = self.flows.get(flow_id)
        if flow is None:
            self._next_switch()
            return
        if flow.mode == "live":
            question = (
                f"Switch '{flow.name}' to TEST? It stops taking live registrations and takes "
                "test registrations only."
            )
            modal: ModalScreen[bool] = ConfirmModal(question, title="LIVE → TEST")
            self._ask(flow, modal, partial(self._switch_mode, flow, "test"))
            return
        question = (
            f"Switch '{flow.name}' ({flow.id}) to LIVE? Real registrations of live events will "
            "be sent to Marketo."
        )
        modal = TypeToConfirmModal(question, flow.id, title="TEST → LIVE", flow_name=flow.name)
        self._ask(flow, modal, partial(self._switch_mode, flow, "live"))

    @api_worker("flows-mutate", exclusive=False)
    async def set_active(self, flow_id: str, active: bool) -> None:
        """Never exclusive: the switch queue starts one change at a time, and a change
        cancelled mid-request could be made by control with nobody told."""
        try:
            change = self.console.client.set_active(flow_id, active)
            flow = await self.call_api("change active", change)
            self.post_message(FlowChanged(flow, "activated" if active else "deactivated"))
        finally:
            self.call_later(self._next_switch)

    @api_worker("flows-mutate", exclusive=False)
    async def set_mode(self, flow_id: str, mode: str) -> None:
        try:
            flow = await self.call_api("change mode", self.console.client.set_mode(flow_id, mode))
            self.post_message(FlowChanged(flow, f"now {mode.upper()}"))
        finally:
            self.call_later(self._next_switch)

    @on(FlowChanged)
    def flow_changed(self, message: FlowChanged) -> None:
        self.flows[message.flow.id] = message.flow
        self._render_rows()
        self.notify(f"{message.flow.name}: {message.what}", timeout=3)
        self.action_refresh_now()

    # --- filter ----------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", FilterInput)
        box.display = True
        box.value = self.filter_text
        box.focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._render_rows()

    @on(Input.Submitted, "#filter")
    def filter_done(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.query_one(DataTable).focus()
