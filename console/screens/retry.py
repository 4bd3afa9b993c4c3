"""The retry queue: server-side pages, filters, search, multi-select and resubmit.

Never the whole queue: one page at a time from the API with the filter applied there, honest
totals in the border, and resubmits act on the keys captured when the prompt opened.

A resolved item's detail leads with its final outcome (the error it had is history, marked
"was" in the list). A data failure whose status resolves no tags is fixed by tagging the status:
`T` on the row (or `t` in its detail) opens the account-level tag form for that status, and `r`
then resubmits.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from apiclient.errors import ApiError
from apiclient.rows import RetryFilters, RetryPage, RetryRow
from console import actions, fmt
from console.calls import api_worker
from console.messages import ApiFailed, QueuePageLoaded, Resubmitted, RetryItemLoaded
from console.screens.assign_tags import AssignTagsModal, describe
from console.screens.base import BaseScreen
from console.screens.modals import ConfirmModal, TypeToConfirmModal
from console.widgets.table import SignalTable

MODAL_CSS = Path(__file__).with_name("modals.tcss")
PAGE_SIZE = 100
RESUBMIT_ALL = "resubmit all matching"
NARROW = 100
STATUSES = (None, "pending", "retrying", "abandoned", "resolved")
CATEGORIES = (None, "data", "technical")


FAILED_STATUSES = frozenset({"failed", "data_failure", "parked", "queued"})
UNTAGGED_FIELDS = {
    "registration.registrationStatusLabel": "registration_statuses",
    "session.regSessionStatus": "session_registration_statuses",
    "event.eventStatus": "event_statuses",
}
"""The field a "resolves no tags" data failure names → the assignment kind that fixes it."""


def final_outcome(detail: dict[str, Any]) -> str | None:
    """A resolved item's final outcome, from its last recorded attempt; None when not resolved."""
    item = detail.get("item") or {}
    if item.get("status") != "resolved":
        return None
    attempts = detail.get("attempts") or []
    last = attempts[-1] if attempts else None
    if not last or last.get("status") in FAILED_STATUSES:
        return f"resolved {item.get('updated_at')}; no later outcome recorded"
    parts = [str(last.get("status")), str(last.get("processed_at") or "")]
    if last.get("marketo_lead_id") is not None:
        lead = f"lead {last['marketo_lead_id']}"
        parts.append(f"{lead} ({last['lead_result']})" if last.get("lead_result") else lead)
    if last.get("reason"):
        parts.append(str(last["reason"]))
    if last.get("replay_id"):
        parts.append(f"replay {last['replay_id']}")
    return "  ".join(p for p in parts if p)


def untagged_status(detail: dict[str, Any]) -> tuple[str, str, str] | None:
    """(assignment kind, status label, event code) when the item fails today because its
    status resolves no tags, else None."""
    preview = detail.get("preview") or {}
    outcome = preview.get("outcome") or {}
    kind = UNTAGGED_FIELDS.get(str(outcome.get("field")))
    if outcome.get("status") != "data_failure" or kind is None:
        return None
    value: Any = detail.get("change") or {}
    for part in str(outcome["field"]).split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    return kind, value.strip(), str(preview.get("event_code") or "")


def item_text(detail: dict[str, Any]) -> str:
    """An item's detail as an operator reads it: state (a resolved item's final outcome first),
    attempts, then what it would send."""
    item = detail.get("item") or {}
    final = final_outcome(detail)
    was = "was: " if final else ""
    lines = [
        f"flow        {item.get('flow_name') or item.get('flow_id')}  ({item.get('flow_id')})",
        f"change      {item.get('change_id')}",
        f"status      {item.get('status')}  category {item.get('category')}  "
        f"attempts {item.get('attempts')}",
    ]
    if final:
        lines.append(f"outcome     {final}")
    lines += [
        f"reason      {was}{item.get('reason') or '—'}",
        f"last error  {was}{item.get('last_error') or '—'}",
        f"next try    {item.get('next_attempt_at') or '—'}",
        f"updated     {item.get('updated_at')}",
    ]
    untagged = untagged_status(detail)
    if untagged and not final:
        kind, label, event = untagged
        words = kind.removesuffix("es").replace("_", " ")
        lines.append(
            f"fix         {words} '{label}'{f' in event {event}' if event else ''} resolves no "
            "tags: t tags it (account level), then r resubmits"
        )
    if item.get("resubmitted_by"):
        lines.append(f"resubmitted {item.get('resubmitted_at')} by {item.get('resubmitted_by')}")
    attempts = detail.get("attempts") or []
    if attempts:
        lines.append("")
        lines.append("attempts")
        for attempt in attempts:
            lines.append(
                f"  #{attempt.get('attempt')} {attempt.get('processed_at')} "
                f"{attempt.get('status')} {attempt.get('reason') or ''}".rstrip()
            )
    if detail.get("problem"):
        lines += ["", f"problem: {detail['problem']}"]
    if detail.get("preview") is not None:
        lines += ["", "would send now:", json.dumps(detail["preview"], indent=2, default=str)]
    return "\n".join(lines)


def _next(options: tuple[str | None, ...], value: str | None) -> str | None:
    return options[(options.index(value) + 1) % len(options)]


class ItemDetail(ModalScreen[str | None]):
    """A retry item's detail; `t` closes it asking the queue to tag the item's status."""

    CSS_PATH: ClassVar[Any] = [MODAL_CSS, Path(__file__).with_name("retry.tcss")]
    SCOPE: ClassVar[str] = "retry-item"
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("retry-item")]

    def __init__(self, title: str, body: str, *, taggable: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.taggable = taggable

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide") as box:
            box.border_title = fmt.esc(self.title_text)
            box.border_subtitle = (
                "esc closes · t tag this status" if self.taggable else "esc closes"
            )
            # The body quotes the change (labels, reasons, Marketo's errors): escaped.
            yield Static(fmt.safe(self.body, keep="\n"), id="body", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_tag_status(self) -> None:
        self.dismiss("tag")


class SearchInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("filter")]

    def action_clear(self) -> None:
        self.value = ""
        self.display = False
        screen = self.screen
        if isinstance(screen, RetryScreen):
            screen.set_search("")


class RetryScreen(BaseScreen):
    CSS_PATH = Path(__file__).with_name("retry.tcss")
    SCOPE = "retry"
    TITLE_TEXT = "Retry queue"

    def __init__(self) -> None:
        super().__init__()
        self.filters = RetryFilters()
        self.page_offset = 0
        self.page: RetryPage | None = None
        self.rows: dict[str, RetryRow] = {}
        self.selected_keys: dict[str, tuple[str, str]] = {}
        self.narrow: bool | None = None
        self.integrations: tuple[str | None, ...] = (None,)

    def body(self) -> ComposeResult:
        table = SignalTable(id="queue", cursor_type="row", zebra_stripes=True)
        yield table
        search = SearchInput(
            placeholder="search change id, flow or reason (enter applies)", id="search"
        )
        search.display = False
        yield search

    def on_resize(self) -> None:
        if self.narrow != (self.size.width < NARROW):
            self._build_columns()
            if self.page is not None:
                self.query_one(DataTable).clear()
                self._show_page()

    def _build_columns(self) -> None:
        self.narrow = self.size.width < NARROW
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_column(" ", key="sel", width=1)
        table.add_column("Flow", key="flow", width=14 if self.narrow else 22)
        table.add_column("Status", key="status", width=9)
        table.add_column("Cat", key="category", width=4)
        table.add_column("#", key="attempts", width=1)
        table.add_column("Reason", key="reason", width=22 if self.narrow else 30)
        table.add_column("Updated", key="updated", width=11)
        if not self.narrow:
            table.add_column("Change", key="change")

    def on_mount(self) -> None:
        self._build_columns()
        self.query_one(DataTable).loading = True
        self._title()

    def apply_command_args(self, words: list[str]) -> None:
        """`:retry status:abandoned category:data flow:x integration:y search-text`."""
        values: dict[str, str | None] = {}
        free: list[str] = []
        for word in words:
            key, sep, value = word.partition(":")
            if sep and key in ("status", "category", "integration"):
                values[key] = value or None
            else:
                free.append(word)
        if free:
            values["search"] = " ".join(free)
        self.filters = replace(self.filters, **values)
        self.page_offset = 0
        self.action_refresh_now()

    # --- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        self.fetch(self.filters, self.page_offset)

    @api_worker("retry-load")
    async def fetch(self, filters: RetryFilters, offset: int) -> None:
        client = self.console.client
        if len(self.integrations) == 1:
            # the integration filter's choices; without them the filter still takes `:retry
            # integration:x`, so the page is loaded whatever this answers
            with contextlib.suppress(ApiError):
                connections = await client.connections()
                self.integrations = (None, *(c.id for c in connections))
        page = await self.call_api(
            "load the retry queue", client.retry_page(filters, offset, PAGE_SIZE)
        )
        self.post_message(QueuePageLoaded(page))

    @on(QueuePageLoaded)
    def page_loaded(self, message: QueuePageLoaded) -> None:
        table = self.query_one(DataTable)
        table.loading = False
        self.page = message.page
        self.rows = {r.key: r for r in message.page.rows}
        self._show_page()
        self.loaded()

    def _cells(self, row: RetryRow) -> list[Any]:
        status_style = {"abandoned": "bold red", "pending": "yellow", "resolved": "green"}
        cells = [
            "✓" if row.key in self.selected_keys else " ",
            fmt.cell(row.flow_name, 14 if self.narrow else 22),
            Text(row.status, style=status_style.get(row.status, "")),
            "data" if row.category == "data" else "tech",
            str(row.attempts),
            fmt.cell(
                ("was: " if row.status == "resolved" else "")
                + (row.reason or row.last_error or ""),
                22 if self.narrow else 30,
            ),
            fmt.short_stamp(row.updated_at),
        ]
        return cells if self.narrow else [*cells, row.change_id]

    def _show_page(self) -> None:
        table = self.query_one(DataTable)
        keys = [r.key for r in self.page.rows] if self.page else []
        current = [str(k.value) for k in table.rows]
        with self.app.batch_update():
            if keys != current:
                cursor = table.cursor_row
                table.clear()
                for row in self.page.rows if self.page else []:
                    table.add_row(*fmt.cells(self._cells(row)), key=row.key)
                if keys:
                    table.move_cursor(row=min(cursor, len(keys) - 1))
            else:
                columns = [str(c.value) for c in table.columns]
                for key in keys:
                    for column, value in zip(columns, self._cells(self.rows[key]), strict=True):
                        if str(table.get_cell(key, column)) != str(value):
                            table.update_cell(key, column, fmt.plain(value))
        self._title()

    def _title(self) -> None:
        table = self.query_one(DataTable)
        described = self.filters.describe()
        title = f"retry queue [{described}]" if described else "retry queue"
        table.border_title = fmt.esc(title)
        if self.page is None:
            table.border_subtitle = ""
            return
        total = self.page.total
        shown = len(self.page.rows)
        span = (
            f"{self.page_offset + 1}–{self.page_offset + shown} of {total}"
            if shown
            else f"0 of {total}"
        )
        picked = f" · {len(self.selected_keys)} selected" if self.selected_keys else ""
        pages = []
        if self.page_offset > 0:
            pages.append("[ previous")
        if self.page_offset + shown < total:
            pages.append("] next")
        hints = " ".join(["s status c category", *pages])
        table.border_subtitle = fmt.esc(f"{span}{picked} · {hints}")

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        table = self.query_one(DataTable)
        table.loading = False
        self.console.report_error(message.what, message.error)
        if message.what == "load the retry queue":
            self.loaded(ok=False)
        elif message.what == RESUBMIT_ALL:
            # the count on screen is what the operator confirmed and control refused: show the
            # queue as it is now, so a second confirmation is of the right number
            self.action_refresh_now()

    # --- navigation and filters ------------------------------------------------------------

    def action_next_page(self) -> None:
        if self.page and self.page_offset + PAGE_SIZE < self.page.total:
            self.page_offset += PAGE_SIZE
            self.action_refresh_now()

    def action_prev_page(self) -> None:
        if self.page_offset > 0:
            self.page_offset = max(0, self.page_offset - PAGE_SIZE)
            self.action_refresh_now()

    def action_cycle_status(self) -> None:
        self.filters = replace(self.filters, status=_next(STATUSES, self.filters.status))
        self.page_offset = 0
        self._title()
        self.action_refresh_now()

    def action_cycle_category(self) -> None:
        self.filters = replace(self.filters, category=_next(CATEGORIES, self.filters.category))
        self.page_offset = 0
        self._title()
        self.action_refresh_now()

    def action_cycle_integration(self) -> None:
        current = self.filters.integration
        options = (
            self.integrations if current in self.integrations else (*self.integrations, current)
        )
        self.filters = replace(self.filters, integration=_next(options, current))
        self.page_offset = 0
        self._title()
        self.action_refresh_now()

    def action_filter(self) -> None:
        box = self.query_one("#search", SearchInput)
        box.display = True
        box.value = self.filters.search or ""
        box.focus()

    @on(Input.Submitted, "#search")
    def search_submitted(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.set_search(event.value.strip())

    def set_search(self, text: str) -> None:
        self.filters = replace(self.filters, search=text or None)
        self.page_offset = 0
        self.query_one(DataTable).focus()
        self._title()
        self.action_refresh_now()

    # --- selection, detail, resubmit -------------------------------------------------------

    def current(self) -> RetryRow | None:
        table = self.query_one(SignalTable)
        key = table.selected_key() if table.display else None
        return None if key is None else self.rows.get(key)

    def action_select(self) -> None:
        row = self.current()
        if row is None:
            return
        if row.key in self.selected_keys:
            del self.selected_keys[row.key]
        else:
            self.selected_keys[row.key] = (row.change_id, row.flow_id)
        self.query_one(DataTable).update_cell(
            row.key, "sel", fmt.plain("✓" if row.key in self.selected_keys else " ")
        )
        self.query_one(DataTable).action_cursor_down()
        self._title()

    def action_open_item(self) -> None:
        row = self.current()
        if row is not None:
            self.open_item(row)

    @api_worker("retry-item")
    async def open_item(self, row: RetryRow) -> None:
        title = f"{row.flow_name} · {row.change_id}"
        detail = await self._item(row)
        self.post_message(RetryItemLoaded(title, detail))

    async def _item(self, row: RetryRow) -> dict[str, Any]:
        item = self.console.client.retry_item(row.change_id, row.flow_id)
        return await self.call_api("load the item", item)

    @on(RetryItemLoaded)
    def item_loaded(self, message: RetryItemLoaded) -> None:
        detail = message.detail

        def closed(answer: str | None) -> None:
            if answer == "tag":
                self.tag_detail(detail)

        taggable = untagged_status(detail) is not None and final_outcome(detail) is None
        self.app.push_screen(
            ItemDetail(message.title, item_text(detail), taggable=taggable), closed
        )

    def action_tag_status(self) -> None:
        row = self.current()
        if row is not None:
            self.tag_status(row)

    @api_worker("retry-tag")
    async def tag_status(self, row: RetryRow) -> None:
        await self.tag_status_of(await self._item(row))

    @api_worker("retry-tag")
    async def tag_detail(self, detail: dict[str, Any]) -> None:
        await self.tag_status_of(detail)

    async def tag_status_of(self, detail: dict[str, Any]) -> None:
        """Open the tag form for the status the item's data failure names, if it has one."""
        if self.console.read_only:
            self.notify("read-only console: tag assignments cannot be changed", markup=False)
            return
        untagged = untagged_status(detail)
        if untagged is None:
            outcome = ((detail.get("preview") or {}).get("outcome") or {}).get("reason")
            self.notify(
                "This item does not fail for an untagged status"
                + (f" (today: {outcome})" if outcome else ""),
                severity="warning",
                markup=False,
            )
            return
        kind, label, event = untagged
        tags_body = await self.call_api("load the tags", self.console.client.tags())
        words = kind.removesuffix("es").replace("_", " ")
        context = (
            f"The {words} '{label}'{f' in event {event}' if event else ''} resolves no tags, so "
            "no flow can act on it. Tag it here (account level, every event), then resubmit "
            "the item with r."
        )

        def done(answer: dict[str, Any] | None) -> None:
            if answer:
                self.notify(describe(answer) + " — press r to resubmit", title="Tagged", timeout=6)
                self.action_refresh_now()

        self.app.push_screen(
            AssignTagsModal(tags_body, kind=kind, label=label, context=context), done
        )

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_item()

    def action_resubmit(self) -> None:
        keys = list(self.selected_keys.values())
        if not keys:
            row = self.current()
            if row is None:
                return
            keys = [(row.change_id, row.flow_id)]
        flows = sorted(
            {self.rows[f"{c}|{f}"].flow_name for c, f in keys if f"{c}|{f}" in self.rows}
            or {f for _, f in keys}
        )
        target = ", ".join(f"'{f}'" for f in flows[:3]) + (" …" if len(flows) > 3 else "")
        noun = "item" if len(keys) == 1 else "items"
        question = (
            f"Resubmit {len(keys)} {noun} in {target}? Each is re-evaluated with the current "
            "configuration."
        )

        def answer(ok: bool | None) -> None:
            if ok:
                self.submit(keys)

        self.app.push_screen(ConfirmModal(question, title="Resubmit"), answer)

    def action_resubmit_all(self) -> None:
        if self.page is None or not self.page.total:
            self.notify("nothing matches the filter", severity="warning")
            return
        filters, count = self.filters, self.page.total
        described = filters.describe() or "no filter: the whole queue"
        question = f"Resubmit all {count} items matching [{described}]?"

        def answer(ok: bool | None) -> None:
            if ok:
                self.submit_matching(filters, count)

        self.app.push_screen(
            TypeToConfirmModal(question, str(count), title="Resubmit all matching"), answer
        )

    @api_worker("retry-submit")
    async def submit(self, keys: list[tuple[str, str]]) -> None:
        result = await self.call_api("resubmit", self.console.client.retry_submit(keys))
        self.post_message(Resubmitted(result))

    @api_worker("retry-submit")
    async def submit_matching(self, filters: RetryFilters, count: int) -> None:
        submitting = self.console.client.retry_submit_matching(filters, count)
        self.post_message(Resubmitted(await self.call_api(RESUBMIT_ALL, submitting)))

    @on(Resubmitted)
    def resubmitted(self, message: Resubmitted) -> None:
        self.selected_keys.clear()
        result = message.result
        if result.submitted == result.selected:
            self.notify(result.describe(), timeout=3)
        else:
            self.notify(result.describe(), severity="warning", timeout=10)
        self.action_refresh_now()
