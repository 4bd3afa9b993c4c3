"""Flow detail and editor: name, live/test, source, activate-for per kind, filters, destination
and its mapping, with Refresh Target Fields and Preview Mapping.

Saving an incomplete flow is allowed (the guide lets an operator finish later); the answer's
reasons show under the form. A changed mapping is saved first, through its own route with the
version it was read at, so an edit never overwrites someone else's change to the same mapping;
when other flows share that mapping the editor names them under the mapping table and asks
before saving, since the edit changes what they send too.

Esc with unsaved edits asks (save / discard / keep editing). The filters' JSON is checked as it
is typed and its error shows right under the field. Every key goes through the action registry
(scopes `flow` and `field-form`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import (
    Checkbox,
    DataTable,
    Input,
    Label,
    Select,
    SelectionList,
    Static,
    TextArea,
)

from apiclient.errors import ApiError, RequestRefused
from apiclient.rows import FlowRow, TargetField
from config.models import ACTIVATE_FOR_KINDS, Action, Source, StandardProperty
from console import actions, fmt
from console.messages import ApiFailed, FieldsRefreshed, FlowDetailLoaded, FlowSaved, PreviewLoaded
from console.screens.base import BaseScreen
from console.screens.mapping_preview import MappingPreviewModal
from console.screens.modals import ConfirmModal, TypeToConfirmModal, UnsavedModal

CSS = Path(__file__).with_name("flow_detail.tcss")
KIND_TITLES = {
    "registration_statuses": "Registration statuses",
    "custom_registration_properties": "Custom registration properties",
    "standard_properties": "Standard properties",
    "session_registration_statuses": "Session registration statuses",
    "event_statuses": "Event statuses",
}
TRANSFORMS = ("lower", "proper", "upper", "trim")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class TagPicker(SelectionList[str]):
    """Tags to pick, each marked in words as well as colour ("✓ on" / "  off"), so the choice
    reads the same without colour (NO_COLOR, some SSH terminals)."""

    def mark(self) -> None:
        chosen = set(self.selected)
        for index in range(self.option_count):
            option = self.get_option_at_index(index)
            value = str(option.value)
            self.replace_option_prompt_at_index(
                index, Text(f"{'✓' if value in chosen else ' '} {value}")
            )

    def on_selection_list_selected_changed(self) -> None:
        self.mark()


class FieldForm(ModalScreen[dict[str, Any] | None]):
    """One mapping field: target (suggested from the connection's fields), sources, transforms."""

    CSS_PATH = CSS
    SCOPE: ClassVar[str] = "field-form"
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("field-form")]

    def __init__(self, field: dict[str, Any] | None, targets: list[str]) -> None:
        super().__init__()
        self.field = field or {}
        self.targets = targets

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="field-dialog") as box:
            box.border_title = "mapping field"
            box.border_subtitle = "ctrl+s done · esc cancel"
            yield Label("Target Marketo field")
            yield Input(
                self.field.get("target", ""),
                id="f-target",
                suggester=SuggestFromList(self.targets, case_sensitive=False),
            )
            yield Label("Source fields, comma separated (joined with the separator)")
            yield Input(", ".join(self.field.get("sources", [])), id="f-sources")
            yield Label("Separator")
            yield Input(self.field.get("separator", " "), id="f-separator")
            yield Label("Transforms in order (lower, proper, upper, trim)")
            yield Input(", ".join(self.field.get("transforms", [])), id="f-transforms")
            required = self.field.get("required")
            yield Checkbox("Required", bool(required), id="f-required")

    def on_mount(self) -> None:
        self.query_one("#f-target", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_done(self) -> None:
        target = self.query_one("#f-target", Input).value.strip()
        transforms = _split(self.query_one("#f-transforms", Input).value)
        bad = [t for t in transforms if t not in TRANSFORMS]
        if not target or bad:
            self.notify(
                "a target is needed" if not target else f"unknown transform {bad[0]!r}",
                severity="warning",
            )
            return
        field = dict(self.field)
        field.update(
            target=target,
            sources=_split(self.query_one("#f-sources", Input).value),
            separator=self.query_one("#f-separator", Input).value or " ",
            transforms=transforms,
            required=self.query_one("#f-required", Checkbox).value,
        )
        self.dismiss(field)

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_done()


class FlowDetailScreen(BaseScreen):
    CSS_PATH = CSS
    SCOPE = "flow"
    TITLE_TEXT = "Flow"
    POLLS = False

    def __init__(self, flow_id: str | None) -> None:
        super().__init__()
        self.flow_id = flow_id
        self.flow: FlowRow | None = None
        self.account: dict[str, Any] = {}
        self.mapping_fields: list[dict[str, Any]] = []
        self.mapping_dirty = False
        self.target_fields: list[TargetField] = []
        self.title_text = f"Flow {flow_id}" if flow_id else "New flow"
        self.baseline: dict[str, Any] | None = None
        """The form as loaded or last saved: what Esc compares with to find unsaved edits."""
        self.close_after_save = False

    # --- layout ----------------------------------------------------------------------------

    def body(self) -> ComposeResult:
        with VerticalScroll(id="editor"):
            yield Static("loading…", id="reasons")
            with Horizontal(classes="row"):
                yield Label("Id", classes="label")
                yield Input(self.flow_id or "", id="flow-id", disabled=self.flow_id is not None)
            with Horizontal(classes="row"):
                yield Label("Name", classes="label")
                yield Input("", id="name")
            with Horizontal(classes="row"):
                yield Label("Live/test", classes="label")
                yield Select([("TEST", "test"), ("LIVE", "live")], id="mode", allow_blank=False)
            with Horizontal(classes="row"):
                yield Label("Source", classes="label")
                yield Select([(s.value, s.value) for s in Source], id="source", prompt="(none)")
            yield Static("Activate for", classes="section")
            for kind in ACTIVATE_FOR_KINDS:
                yield Label(KIND_TITLES[kind], classes="kind")
                yield TagPicker(id=f"af-{kind}", classes="tags")
            yield Static("Filters (JSON list; all must hold)", classes="section")
            yield TextArea("[]", id="filters", language=None)
            yield Static("", id="filters-error")
            yield Static("Destination", classes="section")
            with Horizontal(classes="row"):
                yield Label("Name", classes="label")
                yield Input("", id="dest-name")
            with Horizontal(classes="row"):
                yield Label("Connection", classes="label")
                yield Select([], id="connection", prompt="(none)")
            with Horizontal(classes="row"):
                yield Label("Action", classes="label")
                yield Select([(a.value, a.value) for a in Action], id="action", prompt="(none)")
            with Horizontal(classes="row"):
                yield Label("Campaign Q", classes="label")
                yield Input("", id="event-question", placeholder="event question code")
            with Horizontal(classes="row"):
                yield Label("Campaign id", classes="label")
                yield Input("", id="campaign-id", type="integer")
            with Horizontal(classes="row"):
                yield Label("Form id", classes="label")
                yield Input("", id="form-id", type="integer")
            with Horizontal(classes="row"):
                yield Label("Mapping", classes="label")
                yield Select([], id="mapping", prompt="(none)")
            table: DataTable[Any] = DataTable(id="mapping-fields", cursor_type="row")
            table.add_column("Target", key="target", width=20)
            table.add_column("Sources", key="sources", width=30)
            table.add_column("Transforms", key="transforms", width=12)
            table.add_column("Req", key="required", width=3)
            table.add_column("In Marketo", key="known")
            table.border_title = "mapping fields"
            table.border_subtitle = "enter edit · ctrl+n add · ctrl+d delete"
            yield table
        yield Static("", id="preview")

    def on_mount(self) -> None:
        self.fetch()

    # --- loading ---------------------------------------------------------------------------

    @work(exclusive=True, group="flow-load", exit_on_error=False)
    async def fetch(self) -> None:
        client = self.console.client
        try:
            account = await client.account()
            account["mappings"] = await client.mappings()
            if self.flow_id:
                flow = await client.flow(self.flow_id)
            else:
                flow = FlowRow.from_json({"id": "", "name": "", "mode": "test"})
        except ApiError as error:
            self.post_message(ApiFailed("load the flow", error.message))
            return
        self.post_message(FlowDetailLoaded(flow, account))

    @on(FlowDetailLoaded)
    def detail_loaded(self, message: FlowDetailLoaded) -> None:
        self.flow = message.flow
        self.account = message.account
        raw = message.flow.raw
        destination = raw.get("destination") or {}
        self.query_one("#name", Input).value = raw.get("name", "")
        self.query_one("#mode", Select).value = raw.get("mode", "test")
        self._select("#source", raw.get("source"))
        tags = self.account.get("tags", [])
        activate = raw.get("activate_for") or {}
        for kind, object_kind in ACTIVATE_FOR_KINDS.items():
            chosen = set(activate.get(kind) or [])
            box = self.query_one(f"#af-{kind}", TagPicker)
            box.clear_options()
            if object_kind is None:
                names = [p.value for p in StandardProperty]
            else:
                names = [t["name"] for t in tags if object_kind.value in t.get("objects", [])]
            box.add_options([(Text(name), name, name in chosen) for name in names])
            box.mark()
        self.query_one("#filters", TextArea).text = json.dumps(raw.get("filters") or [], indent=1)
        self.query_one("#dest-name", Input).value = destination.get("name") or ""
        connections = [
            (Text(c.get("name", c["id"])), c["id"]) for c in self.account.get("connections", [])
        ]
        self.query_one("#connection", Select).set_options(connections)
        self._select("#connection", destination.get("connection"))
        self._select("#action", destination.get("action"))
        campaign = destination.get("campaign") or {}
        self.query_one("#event-question", Input).value = campaign.get("event_question") or ""
        self.query_one("#campaign-id", Input).value = str(campaign.get("campaign_id") or "")
        self.query_one("#form-id", Input).value = str(
            (destination.get("form") or {}).get("form_id") or ""
        )
        mappings = [
            (Text(m.get("name", m["id"])), m["id"]) for m in self.account.get("mappings", [])
        ]
        self.query_one("#mapping", Select).set_options(mappings)
        self._select("#mapping", destination.get("mapping"))
        self._load_mapping(destination.get("mapping"))
        self._show_reasons(message.flow)
        if self.console.read_only:
            for widget in self.query("Input, Select, SelectionList, TextArea, Checkbox"):
                widget.disabled = True
        self.loaded()
        self.call_after_refresh(self._take_baseline)

    def _take_baseline(self) -> None:
        self.baseline = self.flow_body(show_errors=False)

    def _select(self, selector: str, value: Any) -> None:
        box = self.query_one(selector, Select)
        if value is None:
            box.clear()
            return
        try:
            box.value = value
        except Exception:
            box.clear()

    def _load_mapping(self, mapping_id: str | None) -> None:
        mapping = next((m for m in self.account.get("mappings", []) if m["id"] == mapping_id), None)
        self.mapping_fields = [dict(f) for f in (mapping or {}).get("fields", [])]
        self.mapping_dirty = False
        self._render_mapping()

    def _render_mapping(self) -> None:
        table = self.query_one("#mapping-fields", DataTable)
        known = {f.name for f in self.target_fields}
        table.clear()
        for index, field in enumerate(self.mapping_fields):
            required = field.get("required")
            if required is None:
                required = field.get("target") in ("email", "firstName", "lastName")
            if not known:
                state = Text("? refresh (ctrl+f)", style="dim")
            elif field.get("target") in known:
                state = Text("✓")
            else:
                state = Text("✗ unknown field", style="bold red")
            table.add_row(
                *fmt.cells(
                    [
                        field.get("target", ""),
                        " + ".join(field.get("sources", [])),
                        ",".join(field.get("transforms", [])),
                        "yes" if required else "",
                        state,
                    ]
                ),
                key=str(index),
            )
        dirty = " (changed, saved with the flow)" if self.mapping_dirty else ""
        table.border_title = f"mapping fields [{len(self.mapping_fields)}]{dirty}"
        shared = self._shared_with(self._mapping_id())
        note = f"shared with {', '.join(shared)} · " if shared else ""
        table.border_subtitle = fmt.esc(f"{note}enter edit · ctrl+n add · ctrl+d delete")

    def _shared_with(self, mapping_id: str | None) -> list[str]:
        """The names of the other flows whose destination uses `mapping_id`."""
        if not mapping_id:
            return []
        names = {f.get("id"): f.get("name") or f.get("id") for f in self.account.get("flows", [])}
        mapping: dict[str, Any] = next(
            (m for m in self.account.get("mappings", []) if m["id"] == mapping_id), {}
        )
        users = mapping.get("used_by")
        if users is None:
            users = [
                f.get("id")
                for f in self.account.get("flows", [])
                if (f.get("destination") or {}).get("mapping") == mapping_id
            ]
        return [str(names.get(u) or u) for u in users if u and u != self.flow_id]

    def _show_reasons(self, flow: FlowRow) -> None:
        box = self.query_one("#reasons", Static)
        if not self.flow_id:
            box.update("New flow — it can be saved incomplete and finished later.")
        elif flow.complete:
            box.update(Text("✓ complete", style="green"))
        else:
            reasons = "; ".join(flow.reasons)
            box.update(Text(f"incomplete (never runs): {reasons}", style="bold yellow"))

    @on(Select.Changed, "#mapping")
    def mapping_changed(self, event: Select.Changed) -> None:
        value = event.value if isinstance(event.value, str) else None
        if self.flow is not None:
            self._load_mapping(value)

    # --- mapping editing -------------------------------------------------------------------

    def _targets(self) -> list[str]:
        return [f.name for f in self.target_fields] or ["email", "firstName", "lastName"]

    def action_add_field(self) -> None:
        if self.console.read_only or not self._mapping_id():
            self.notify("choose a mapping first", severity="warning")
            return

        def added(field: dict[str, Any] | None) -> None:
            if field:
                self.mapping_fields.append(field)
                self.mapping_dirty = True
                self._render_mapping()

        self.app.push_screen(FieldForm(None, self._targets()), added)

    def action_delete_field(self) -> None:
        table = self.query_one("#mapping-fields", DataTable)
        if self.console.read_only or not table.row_count:
            return
        del self.mapping_fields[table.cursor_row]
        self.mapping_dirty = True
        self._render_mapping()

    @on(DataTable.RowSelected, "#mapping-fields")
    def edit_field(self, event: DataTable.RowSelected) -> None:
        if self.console.read_only:
            return
        index = int(str(event.row_key.value))

        def edited(field: dict[str, Any] | None) -> None:
            if field:
                self.mapping_fields[index] = field
                self.mapping_dirty = True
                self._render_mapping()

        self.app.push_screen(FieldForm(self.mapping_fields[index], self._targets()), edited)

    def _mapping_id(self) -> str | None:
        value = self.query_one("#mapping", Select).value
        return value if isinstance(value, str) else None

    # --- refresh fields and preview --------------------------------------------------------

    def action_refresh_fields(self) -> None:
        value = self.query_one("#connection", Select).value
        if not isinstance(value, str):
            self.notify("choose a connection first", severity="warning")
            return
        self.query_one("#preview", Static).update(Text(f"Refreshing target fields of {value}…"))
        self.refresh_fields(value)

    @work(exclusive=True, group="flow-fields", exit_on_error=False)
    async def refresh_fields(self, connection_id: str) -> None:
        try:
            fields = await self.console.client.refresh_fields(connection_id)
        except ApiError as error:
            self.post_message(ApiFailed("refresh target fields", error.message))
            return
        self.post_message(FieldsRefreshed(connection_id, fields))

    @on(FieldsRefreshed)
    def fields_refreshed(self, message: FieldsRefreshed) -> None:
        self.target_fields = message.fields
        self._render_mapping()
        note = f"✓ {len(message.fields)} target fields from {message.connection_id}"
        self.query_one("#preview", Static).update(Text(note))
        self.notify(note, timeout=3)

    def action_preview(self) -> None:
        mapping = self._mapping_id()
        if not mapping:
            self.notify("choose a mapping first", severity="warning")
            return
        self.preview(mapping, self.flow_id)

    @work(exclusive=True, group="flow-preview", exit_on_error=False)
    async def preview(self, mapping_id: str, flow_id: str | None) -> None:
        body = {"flow_id": flow_id} if flow_id else {}
        try:
            result = await self.console.client.preview_mapping(mapping_id, body)
        except ApiError as error:
            self.post_message(ApiFailed("preview the mapping", error.message))
            return
        self.post_message(PreviewLoaded(result))

    @on(PreviewLoaded)
    def preview_loaded(self, message: PreviewLoaded) -> None:
        name = self.flow.name if self.flow is not None else ""
        self.app.push_screen(MappingPreviewModal(message.preview, name, unsaved=self.mapping_dirty))

    # --- saving ----------------------------------------------------------------------------

    def flow_body(self, show_errors: bool = True) -> dict[str, Any] | None:
        """The flow as the form holds it, or None when the filters are not a JSON list (with
        `show_errors`, the error shows beside the field, which takes the focus)."""
        raw = dict(self.flow.raw) if self.flow else {}
        for key in ("complete", "incomplete_reasons", "version"):
            raw.pop(key, None)

        def text(selector: str) -> str:
            return self.query_one(selector, Input).value.strip()

        def choice(selector: str) -> str | None:
            value = self.query_one(selector, Select).value
            return value if isinstance(value, str) else None

        filters, problem = filters_of(self.query_one("#filters", TextArea).text)
        if problem is not None:
            if show_errors:
                self._show_filters_error(problem, focus=True)
            return None
        destination = dict(raw.get("destination") or {})
        campaign_q, campaign_id, form_id = (
            text("#event-question"),
            text("#campaign-id"),
            text("#form-id"),
        )
        destination.update(
            name=text("#dest-name") or None,
            connection=choice("#connection"),
            action=choice("#action"),
            mapping=choice("#mapping"),
            campaign=(
                {
                    "event_question": campaign_q or None,
                    "campaign_id": int(campaign_id) if campaign_id else None,
                }
                if campaign_q or campaign_id
                else None
            ),
            form=(
                {**(destination.get("form") or {}), "form_id": int(form_id)} if form_id else None
            ),
        )
        raw.update(
            id=self.flow_id or text("#flow-id"),
            name=text("#name"),
            mode=choice("#mode") or "test",
            source=choice("#source"),
            activate_for={
                kind: list(self.query_one(f"#af-{kind}", SelectionList).selected)
                for kind in ACTIVATE_FOR_KINDS
            },
            filters=filters,
            destination=destination,
        )
        return raw

    def action_save(self) -> None:
        self._save(close=False)

    def _save(self, close: bool) -> None:
        """Ask what must be asked (a mapping shared with other flows, TEST → LIVE), then save;
        with `close`, the editor closes once control has taken the save."""
        self.close_after_save = False
        if self.console.read_only:
            return
        body = self.flow_body()
        if body is None:
            return
        self._show_filters_error(None)
        mapping = body["destination"].get("mapping")
        shared = self._shared_with(mapping) if self.mapping_dirty else []
        if shared:

            def go_on(ok: bool | None) -> None:
                if ok:
                    self._save_live_checked(body, close)

            question = (
                f"Mapping '{mapping}' is shared: flows {', '.join(repr(n) for n in shared)} use "
                "it too. Saving your field changes changes what those flows send as well. Save?"
            )
            self.app.push_screen(ConfirmModal(question, title="Shared mapping"), go_on)
            return
        self._save_live_checked(body, close)

    def _save_live_checked(self, body: dict[str, Any], close: bool) -> None:
        was_live = bool(self.flow and self.flow.mode == "live")
        if body["mode"] == "live" and not was_live:

            def confirmed(ok: bool | None) -> None:
                if ok:
                    self.close_after_save = close
                    self.save(body)

            question = f"Save '{body['name']}' as LIVE? Real registrations will be sent."
            self.app.push_screen(
                TypeToConfirmModal(
                    question, body["id"], title="TEST → LIVE", flow_name=body["name"]
                ),
                confirmed,
            )
            return
        self.close_after_save = close
        self.save(body)

    @work(exclusive=True, group="flow-save", exit_on_error=False)
    async def save(self, body: dict[str, Any]) -> None:
        """The mapping goes first, then the flow: two requests, so a flow refused after its
        mapping was stored leaves the mapping changed, and the error says so (naming both)
        rather than claiming nothing changed."""
        client = self.console.client
        mapping_saved: str | None = None
        try:
            mapping = body["destination"].get("mapping")
            if self.mapping_dirty and mapping:
                await self._save_mapping(mapping)
                mapping_saved = mapping
                self.mapping_dirty = False
                self._render_mapping()
            if self.flow_id:
                version = self.flow.raw.get("version") if self.flow else None
                flow = await client.save_flow(self.flow_id, body, version)
            else:
                flow = await client.create_flow(body)
        except RequestRefused as error:
            if error.status == 409 and any(p.path == "version" for p in error.problems):
                text = (
                    "someone else saved this flow since it was opened; nothing was changed — "
                    "close and reopen it to see their version"
                )
                if mapping_saved is not None:
                    text = (
                        f"mapping {mapping_saved!r} was saved, but flow {body['name']!r} was "
                        "not: someone else saved the flow since it was opened — close and "
                        "reopen it, then re-apply your changes to the flow"
                    )
            else:
                text = _after_mapping(mapping_saved, "\n".join(str(p) for p in error.problems))
            self.post_message(ApiFailed("save the flow", text))
            return
        except ApiError as error:
            self.post_message(
                ApiFailed("save the flow", _after_mapping(mapping_saved, error.message))
            )
            return
        self.post_message(FlowSaved(flow))

    async def _save_mapping(self, mapping_id: str) -> None:
        mappings = self.account.get("mappings", [])
        current = next((m for m in mappings if m["id"] == mapping_id), None)
        if current is None:
            raise ApiError(f"mapping {mapping_id!r} is not known to control; reopen the flow")
        body = {"id": mapping_id, "name": current.get("name", mapping_id)}
        body["fields"] = self.mapping_fields
        try:
            saved = await self.console.client.save_mapping(mapping_id, body, current.get("version"))
        except RequestRefused as error:
            if error.status == 409 and any(p.path == "version" for p in error.problems):
                raise ApiError(
                    f"someone else changed mapping {mapping_id!r} since it was opened; nothing "
                    "was saved — close and reopen the flow to see their version"
                ) from None
            raise
        current.update(saved)

    @on(FlowSaved)
    def flow_saved(self, message: FlowSaved) -> None:
        self.flow = message.flow
        self.flow_id = message.flow.id
        self.mapping_dirty = False
        self.title_text = f"Flow {message.flow.id}"
        self.query_one("#flow-id", Input).disabled = True
        self._show_reasons(message.flow)
        self._render_mapping()
        self.update_bar()
        state = "complete" if message.flow.complete else "saved incomplete"
        self.notify(f"Saved {message.flow.name} ({state})", timeout=3)
        self.baseline = self.flow_body(show_errors=False)
        if self.close_after_save:
            self.close_after_save = False
            self.dismiss()

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        self.close_after_save = False
        self.query_one("#reasons", Static).update(Text(f"✗ {message.error}", style="bold red"))
        self.console.report_error(message.what, message.error)

    # --- filters ---------------------------------------------------------------------------

    @on(TextArea.Changed, "#filters")
    def filters_changed(self, event: TextArea.Changed) -> None:
        self._show_filters_error(filters_of(event.text_area.text)[1])

    def _show_filters_error(self, problem: str | None, focus: bool = False) -> None:
        area = self.query_one("#filters", TextArea)
        box = self.query_one("#filters-error", Static)
        area.set_class(problem is not None, "error")
        box.set_class(problem is not None, "shown")
        box.update(Text(f"✗ filters: {problem}", style="bold red") if problem else "")
        if problem is not None and focus:
            area.focus()
            self.call_after_refresh(box.scroll_visible)

    # --- leaving ---------------------------------------------------------------------------

    def unsaved(self) -> bool:
        """Edits not saved yet: a changed mapping, or a form that differs from the baseline."""
        if self.console.read_only or self.flow is None:
            return False
        return self.mapping_dirty or self.flow_body(show_errors=False) != self.baseline

    def action_close(self) -> None:
        if not self.unsaved():
            self.dismiss()
            return
        name = self.query_one("#name", Input).value.strip() or self.flow_id or "this new flow"

        def answer(choice: str | None) -> None:
            if choice == "save":
                self._save(close=True)
            elif choice == "discard":
                self.dismiss()

        question = f"'{name}' has edits that are not saved. Save them, discard them, or go on?"
        self.app.push_screen(UnsavedModal(question), answer)


JSON_KINDS: dict[type, str] = {
    dict: "an object",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def _after_mapping(mapping_saved: str | None, text: str) -> str:
    """A flow save's error, saying first that the mapping saved before it did change."""
    if mapping_saved is None:
        return text
    return f"mapping {mapping_saved!r} was saved, the flow was not:\n{text}"


def filters_of(text: str) -> tuple[list[Any], str | None]:
    """The filters typed, or why they are not a JSON list (line and column of a syntax error)."""
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError as error:
        return [], f"not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
    if not isinstance(value, list):
        return (
            [],
            f"expected a JSON list of rules ([...]), got {JSON_KINDS.get(type(value), 'a value')}",
        )
    return value, None
