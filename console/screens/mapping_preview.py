"""Preview Mapping as a table: for each recent registration the flow's decision, then one row
per target field with its sources (and their values), the value it maps to and the result.

The table is the dialog: it takes the focus when it opens, so the arrows, `j`/`k`, page up/down
and home/end scroll it, `left`/`right` scroll a long result into view, and esc/q close it.
Nothing here is sent anywhere; the preview is control's answer as it stands."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from console import actions, fmt
from console.widgets.table import SignalTable

OUTCOME_WORDS = {
    "would_send": "would send",
    "data_failure": "data failure",
    "not_activated": "not activated",
    "filtered_out": "filtered out",
}
KEPT_WHOLE = ("answers.", "eventQuestions.")
"""Source paths shown whole; any other shows its last part (the mapping table has the rest)."""


def short_path(path: str) -> str:
    if path.startswith(KEPT_WHOLE):
        return path
    return path.rsplit(".", 1)[-1]


def outcome_text(outcome: dict[str, Any]) -> Text:
    status = str(outcome.get("status") or "")
    words = OUTCOME_WORDS.get(status, status.replace("_", " ") or "no decision")
    reason = outcome.get("reason")
    text = f"{words}: {reason}" if reason and status != "would_send" else words
    style = "green" if status == "would_send" else "bold red" if "fail" in status else "yellow"
    return Text(fmt.safe(text), style=style)


def field_result(field: dict[str, Any]) -> Text:
    if field.get("failure"):
        return Text("✗ required, empty", style="bold red")
    if not str(field.get("value") or ""):
        return Text("empty", style="dim")
    return Text("✓")


def sources_text(field: dict[str, Any]) -> str:
    parts = []
    for source in field.get("sources") or []:
        value = source.get("value") if isinstance(source, dict) else None
        path = str(source.get("path") if isinstance(source, dict) else source)
        parts.append(f"{short_path(path)}={value}" if value else f"{short_path(path)}=∅")
    return " + ".join(parts) or "—"


def preview_rows(preview: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """(row key, cells) for every registration and field of control's preview answer."""
    rows: list[tuple[str, list[Any]]] = []
    for n, change in enumerate(preview.get("previews") or []):
        who = change.get("registration_code") or change.get("change_id") or f"change {n + 1}"
        where = " · ".join(
            x for x in (change.get("event_code"), fmt.short_stamp(change.get("occurred_at"))) if x
        )
        rows.append(
            (
                f"c{n}",
                [
                    Text(f"▸ {fmt.safe(who)}", style="bold"),
                    Text(fmt.safe(where), style="bold"),
                    "",
                    outcome_text(change.get("outcome") or {}),
                ],
            )
        )
        for i, field in enumerate(change.get("fields") or []):
            rows.append(
                (
                    f"c{n}-f{i}",
                    [
                        f"  {field.get('target', '')}",
                        sources_text(field),
                        str(field.get("value") or ""),
                        field_result(field),
                    ],
                )
            )
    return rows


class PreviewTable(SignalTable):
    """The console's table keys, and home/end go to the first and last row, not to the left
    and right edge, since a preview is read top to bottom (registry scope `preview-table`)."""

    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("preview-table")]


class MappingPreviewModal(ModalScreen[None]):
    """Control's Preview Mapping answer as a keyboard-scrolled table (scope `panel` keys)."""

    CSS_PATH = Path(__file__).with_name("mapping_preview.tcss")
    SCOPE: ClassVar[str] = "panel"
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("panel")]

    def __init__(
        self, preview: dict[str, Any], flow_name: str = "", *, unsaved: bool = False
    ) -> None:
        super().__init__()
        self.preview = preview
        self.flow_name = flow_name
        self.unsaved = unsaved
        """The editor holds mapping edits not saved yet: the preview (control's) lacks them."""

    def compose(self) -> ComposeResult:
        with Vertical(id="preview-dialog"):
            table = PreviewTable(id="preview-table", cursor_type="row")
            table.add_column("Target field", key="target", width=16)
            table.add_column("Sources", key="sources", width=20)
            table.add_column("Value", key="value", width=16)
            table.add_column("Result", key="result")
            mapping = self.preview.get("mapping_id") or "?"
            flow = self.flow_name or self.preview.get("flow_id") or "?"
            table.border_title = fmt.esc(f"Mapping preview · {mapping} on {flow}")
            table.border_subtitle = "↑↓ pgup pgdn home end · ←→ long text · esc closes"
            yield table
            yield Static("", id="preview-row", markup=False)
            yield Static(fmt.safe(self._notes(), keep="\n"), id="preview-notes", markup=False)

    def _notes(self) -> str:
        previews = self.preview.get("previews") or []
        lines = [f"Nothing is sent. {len(previews)} recent change(s) of the flow's source."]
        if self.unsaved:
            lines.append("The mapping as saved: field changes not saved yet are not in it.")
        if not previews:
            lines.append("No archived change of this flow's source yet: nothing to preview.")
        lines.extend(f"! {p}" for p in self.preview.get("problems") or [])
        return "\n".join(lines)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, cells in preview_rows(self.preview):
            table.add_row(*fmt.cells(cells), key=key)
        table.focus()

    @on(DataTable.RowHighlighted)
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted row in full below the table: at 80 columns a long reason or value
        does not fit its cell."""
        self.query_one("#preview-row", Static).update(
            fmt.safe(row_detail(self.preview, str(event.row_key.value)))
        )

    def action_close(self) -> None:
        self.dismiss(None)


def row_detail(preview: dict[str, Any], key: str) -> str:
    """The whole text of one row (`c<n>` a registration, `c<n>-f<i>` one of its fields)."""
    change_part, _, field_part = key.partition("-f")
    try:
        change = (preview.get("previews") or [])[int(change_part.removeprefix("c"))]
    except (ValueError, IndexError):
        return ""
    who = change.get("registration_code") or change.get("change_id") or "?"
    if not field_part:
        return f"{who}: {outcome_text(change.get('outcome') or {}).plain}"
    try:
        field = (change.get("fields") or [])[int(field_part)]
    except (ValueError, IndexError):
        return ""
    sources = " + ".join(
        f"{s.get('path')}={s.get('value') or '∅'}"
        for s in field.get("sources") or []
        if isinstance(s, dict)
    )
    result = field.get("failure") or field_result(field).plain
    return f"{who} · {field.get('target')} = {field.get('value') or '∅'} ← {sources} · {result}"
