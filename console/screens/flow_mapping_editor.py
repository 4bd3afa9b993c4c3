"""The flow editor's mapping part: choosing the flow's mapping, its fields as a table and their
edits, creating and deleting mappings, the connection's target fields and the preview.

`FlowDetailScreen` (console.screens.flow_detail) is this plus the flow's own form and its save;
the part is a base screen rather than a widget so its keys stay in the flow's scope of the action
registry and its rows stay where the editor's stylesheet places them. How the mapping is shown
and saved before the flow is `flow_mapping`'s.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Label, Select, Static

from apiclient.rows import FlowRow, TargetField
from console.calls import api_worker
from console.messages import FieldsRefreshed, PreviewLoaded
from console.screens.base import BaseScreen
from console.screens.field_form import FieldForm
from console.screens.flow_mapping import (
    SOURCES_WIDTH,
    TARGET_WIDTH,
    mapping_of,
    shared_with,
    show_fields,
)
from console.screens.mapping_form import MappingCreated, MappingDeleted, MappingForm, NewMapping
from console.screens.mapping_preview import MappingPreviewModal
from console.screens.modals import ConfirmModal
from console.widgets.table import SignalTable


class FlowMappingEditor(BaseScreen):
    """The mapping part of the flow editor; the flow and the account are loaded by the screen."""

    def __init__(self, flow_id: str | None) -> None:
        super().__init__()
        self.flow_id = flow_id
        self.flow: FlowRow | None = None
        self.account: dict[str, Any] = {}
        self.mapping_fields: list[dict[str, Any]] = []
        """The mapping's fields as the table shows them, edits not saved yet included."""
        self.mapping_dirty = False
        self.target_fields: list[TargetField] = []

    def mapping_rows(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("Mapping", classes="label")
            yield Select([], id="mapping", prompt="(none)")
            yield Static("f7 new · f8 delete", classes="hint")
        table = SignalTable(id="mapping-fields", cursor_type="row")
        table.add_column("Target", key="target", width=TARGET_WIDTH)
        table.add_column("Sources", key="sources", width=SOURCES_WIDTH)
        table.add_column("Transforms", key="transforms", width=12)
        table.add_column("Req", key="required", width=3)
        table.add_column("In Marketo", key="known")
        table.border_title = "mapping fields"
        table.border_subtitle = "enter edit · ctrl+n add · ctrl+d delete"
        yield table

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
        mapping = mapping_of(self.account, mapping_id) or {}
        self.mapping_fields = [dict(f) for f in mapping.get("fields", [])]
        self.mapping_dirty = False
        self._render_mapping()

    def _render_mapping(self) -> None:
        show_fields(
            self.query_one("#mapping-fields", SignalTable),
            self.mapping_fields,
            {f.name for f in self.target_fields},
            dirty=self.mapping_dirty,
            shared=self._shared_with(self._mapping_id()),
        )

    def _shared_with(self, mapping_id: str | None) -> list[str]:
        """The names of the other flows whose destination uses `mapping_id`."""
        return shared_with(self.account, mapping_id, self.flow_id)

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

    # --- creating and deleting mappings ---------------------------------------------------

    def action_new_mapping(self) -> None:
        if self.console.read_only or self.flow is None:
            return
        taken = {str(m["id"]) for m in self.account.get("mappings", [])}

        def chosen(new: NewMapping | None) -> None:
            if new is not None:
                self.create_mapping(new)

        self.app.push_screen(MappingForm(taken, self._mapping_id()), chosen)

    @api_worker("flow-mapping")
    async def create_mapping(self, new: NewMapping) -> None:
        """A copy takes the fields the table shows, edits not saved yet included: the way to
        make a variant without touching the mapping other flows share."""
        fields = [dict(f) for f in self.mapping_fields] if new.copy_from else []
        body = {"id": new.id, "name": new.name, "fields": fields}
        creating = self.console.client.create_mapping(body)
        self.post_message(MappingCreated(await self.call_api("create the mapping", creating)))

    @on(MappingCreated)
    def mapping_created(self, message: MappingCreated) -> None:
        self.account.setdefault("mappings", []).append(message.mapping)
        self._mapping_options()
        self._select("#mapping", message.mapping["id"])
        self._load_mapping(message.mapping["id"])
        self.notify(f"Created mapping {message.mapping['id']}; save the flow to use it", timeout=4)

    def action_delete_mapping(self) -> None:
        mapping_id = self._mapping_id()
        if self.console.read_only or self.flow is None:
            return
        if mapping_id is None:
            self.notify("choose the mapping to delete first", severity="warning")
            return
        users = shared_with(self.account, mapping_id, None)
        if users:
            flows = ", ".join(repr(u) for u in users)
            text = (
                f"mapping {mapping_id!r} cannot be deleted: flows {flows} use it; "
                "choose another mapping for them first"
            )
            self.query_one("#reasons", Static).update(Text(f"✗ {text}", style="bold red"))
            self.notify(text, severity="error", timeout=6)
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.delete_mapping(mapping_id)

        question = f"Delete mapping '{mapping_id}'? No flow uses it."
        self.app.push_screen(ConfirmModal(question, title="Delete mapping"), confirmed)

    @api_worker("flow-mapping")
    async def delete_mapping(self, mapping_id: str) -> None:
        version = (mapping_of(self.account, mapping_id) or {}).get("version")
        deleting = self.console.client.delete_mapping(mapping_id, version)
        await self.call_api("delete the mapping", deleting)
        self.post_message(MappingDeleted(mapping_id))

    @on(MappingDeleted)
    def mapping_deleted(self, message: MappingDeleted) -> None:
        mappings = self.account.get("mappings", [])
        self.account["mappings"] = [m for m in mappings if m["id"] != message.mapping_id]
        self._mapping_options()
        self.query_one("#mapping", Select).clear()
        self._load_mapping(None)
        self.notify(f"Deleted mapping {message.mapping_id}", timeout=4)

    def _mapping_options(self) -> None:
        mappings = [
            (Text(m.get("name", m["id"])), m["id"]) for m in self.account.get("mappings", [])
        ]
        self.query_one("#mapping", Select).set_options(mappings)

    # --- refresh fields and preview --------------------------------------------------------

    def action_refresh_fields(self) -> None:
        value = self.query_one("#connection", Select).value
        if not isinstance(value, str):
            self.notify("choose a connection first", severity="warning")
            return
        self.query_one("#preview", Static).update(Text(f"Refreshing target fields of {value}…"))
        self.refresh_fields(value)

    @api_worker("flow-fields")
    async def refresh_fields(self, connection_id: str) -> None:
        refreshing = self.console.client.refresh_fields(connection_id)
        fields = await self.call_api("refresh target fields", refreshing)
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

    @api_worker("flow-preview")
    async def preview(self, mapping_id: str, flow_id: str | None) -> None:
        body = {"flow_id": flow_id} if flow_id else {}
        previewing = self.console.client.preview_mapping(mapping_id, body)
        self.post_message(PreviewLoaded(await self.call_api("preview the mapping", previewing)))

    @on(PreviewLoaded)
    def preview_loaded(self, message: PreviewLoaded) -> None:
        name = self.flow.name if self.flow is not None else ""
        self.app.push_screen(MappingPreviewModal(message.preview, name, unsaved=self.mapping_dirty))
