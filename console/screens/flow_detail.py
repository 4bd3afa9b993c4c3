"""Flow detail and editor: name, live/test, source, activate-for per kind, filters, destination
and its mapping, with Refresh Target Fields and Preview Mapping.

Saving an incomplete flow is allowed (the guide lets an operator finish later); the answer's
reasons show under the form. A changed mapping is saved first, through its own route with the
version it was read at, so an edit never overwrites someone else's change to the same mapping;
when other flows share that mapping the editor names them under the mapping table and asks
before saving, since the edit changes what they send too.

Esc with unsaved edits asks (save / discard / keep editing). Filters are rows of field, operator
and value (`console.widgets.filter_editor`; JSON text only for a rule rows cannot hold), a row's
problem named by its path under them. Every key goes through the action registry (scopes
`flow`, `field-form` and `mapping-form`).

The mapping part of the editor (its table and field edits, creating and deleting mappings,
target fields, preview) is the base screen `flow_mapping_editor.FlowMappingEditor`; how the
mapping is shown, who shares it and how it is saved are in `flow_mapping`; the dialog for one
mapping field is `field_form`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Select, SelectionList, Static

from apiclient.rows import FlowRow
from config.models import ACTIVATE_FOR_KINDS, Action, Source, StandardProperty
from console.calls import api_worker
from console.messages import ApiFailed, FlowDetailLoaded, FlowSaved
from console.screens.asset_picker import AssetPicker
from console.screens.field_form import FieldForm
from console.screens.flow_mapping import flow_save_failed, save_mapping
from console.screens.flow_mapping_editor import FlowMappingEditor
from console.screens.modals import ConfirmModal, TypeToConfirmModal, UnsavedModal
from console.widgets.filter_editor import FilterEditor
from console.widgets.filter_rows import filter_fields, filters_of
from console.widgets.program_fields import ProgramFields
from console.widgets.tag_picker import TagPicker

__all__ = ["FieldForm", "FlowDetailScreen", "filter_fields", "filters_of"]

CSS = Path(__file__).with_name("flow_detail.tcss")
KIND_TITLES = {
    "registration_statuses": "Registration statuses",
    "custom_registration_properties": "Custom registration properties",
    "standard_properties": "Standard properties",
    "session_registration_statuses": "Session registration statuses",
    "event_statuses": "Event statuses",
}


class FlowDetailScreen(FlowMappingEditor):
    CSS_PATH = CSS
    SCOPE = "flow"
    TITLE_TEXT = "Flow"
    POLLS = False

    def __init__(self, flow_id: str | None) -> None:
        super().__init__(flow_id)
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
            yield Static("Filters (all must hold) · f4 add · f9 remove", classes="section")
            yield FilterEditor(id="filter-editor")
            yield Static("Destination · f2 picks ids and statuses from Marketo", classes="section")
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
            yield ProgramFields(id="program-fields")
            yield from self.mapping_rows()
        yield Static("", id="preview")

    def on_mount(self) -> None:
        self.fetch()

    # --- loading ---------------------------------------------------------------------------

    @api_worker("flow-load")
    async def fetch(self) -> None:
        client = self.console.client
        what = "load the flow"
        account = await self.call_api(what, client.account())
        account["mappings"] = await self.call_api(what, client.mappings())
        if self.flow_id:
            flow = await self.call_api(what, client.flow(self.flow_id))
        else:
            flow = FlowRow.from_json({"id": "", "name": "", "mode": "test"})
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
        self.query_one(FilterEditor).load(
            list(raw.get("filters") or []),
            filter_fields(self.account, raw.get("source")),
            [t["name"] for t in tags if "attendee_type" in t.get("objects", [])],
            locked=self.console.read_only,
        )
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
        session = raw.get("source") == Source.SESSION_REGISTRATION_STATUS_CHANGE.value
        status_kind = "session_registration_statuses" if session else "registration_statuses"
        self.query_one(ProgramFields).load(
            destination.get("program"),
            list(activate.get(status_kind) or []),
            locked=self.console.read_only,
        )
        self._mapping_options()
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

    def _show_reasons(self, flow: FlowRow) -> None:
        box = self.query_one("#reasons", Static)
        if not self.flow_id:
            box.update("New flow — it can be saved incomplete and finished later.")
        elif flow.complete:
            box.update(Text("✓ complete", style="green"))
        else:
            reasons = "; ".join(flow.reasons)
            box.update(Text(f"incomplete (never runs): {reasons}", style="bold yellow"))

    # --- Marketo pickers ------------------------------------------------------------------

    def action_pick(self) -> None:
        """Fill the focused campaign, form, program or status field from the connection's
        Marketo; the field stays typeable whatever the picker finds."""
        if self.console.read_only:
            return
        field = self.focused
        kinds = {"campaign-id": "campaigns", "form-id": "forms", "program-id": "programs"}
        if not isinstance(field, Input) or field.disabled:
            field = None
        kind = "statuses" if field and field.has_class("status-name") else None
        kind = kinds.get(str(field.id)) if field and kind is None else kind
        if field is None or kind is None:
            self.notify(
                "f2 picks for the campaign id, form id, program id or a program status",
                severity="warning",
            )
            return
        connection = self.query_one("#connection", Select).value
        if not isinstance(connection, str):
            self.notify("choose a connection first", severity="warning")
            return
        program = self.query_one(ProgramFields).program_id() if kind == "statuses" else None
        if kind == "statuses" and program is None:
            self.notify("enter or pick the program id first", severity="warning")
            return
        target = field

        def picked(item: dict[str, Any] | None) -> None:
            if item is not None:
                target.value = str(item["name"] if kind == "statuses" else item["id"])
                target.focus()

        self.app.push_screen(AssetPicker(connection, kind, program), picked)

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

        filters = self.query_one(FilterEditor).value(show_errors)
        if filters is None:
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
            program=self.query_one(ProgramFields).value(),
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
        self.query_one(FilterEditor).show_error(None)
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

    @api_worker("flow-save")
    async def save(self, body: dict[str, Any]) -> None:
        """The mapping goes first, then the flow: two requests, so a flow refused after its
        mapping was stored leaves the mapping changed, and the error says so (naming both)
        rather than claiming nothing changed (`flow_mapping.flow_save_failed`)."""
        client = self.console.client
        what, name = "save the flow", body["name"]
        mapping_saved: str | None = None
        mapping = body["destination"].get("mapping")
        if self.mapping_dirty and mapping:
            storing = save_mapping(client, self.account, mapping, self.mapping_fields)
            await self.call_api(what, storing, failed=partial(flow_save_failed, None, name))
            mapping_saved = mapping
            self.mapping_dirty = False
            self._render_mapping()
        if self.flow_id:
            version = self.flow.raw.get("version") if self.flow else None
            saving = client.save_flow(self.flow_id, body, version)
        else:
            saving = client.create_flow(body)
        failed = partial(flow_save_failed, mapping_saved, name)
        self.post_message(FlowSaved(await self.call_api(what, saving, failed=failed)))

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

    def action_add_rule(self) -> None:
        self.query_one(FilterEditor).add_rule()

    def action_remove_rule(self) -> None:
        self.query_one(FilterEditor).remove_rule()

    def action_filter_rows(self) -> None:
        self.query_one(FilterEditor).to_rows()

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
