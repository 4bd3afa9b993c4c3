"""The flow editor's filters as rows: a field from the source paths (or the attendee-type tags),
an operator the configuration supports and a value, instead of JSON text.

Rows cover every rule the configuration has today; the JSON text is shown only for filters a
row cannot hold unchanged (`filter_rows.row_of` says why, by path), and f10 goes back to rows
once the text is one they can hold. A row's problem is named by its path under the rows and
the row takes the focus, before anything is sent.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Select, Static, TextArea

from console.widgets.filter_rows import (
    ATTENDEE_TYPE,
    ATTENDEE_TYPE_LABEL,
    NO_VALUE_OPS,
    OPS,
    RuleRow,
    filters_of,
    rows_of,
    rules_of,
)

FIELD_PLACEHOLDER = "value"
ATTENDEE_PLACEHOLDER = "attendee-type tags, comma separated"
IN_PLACEHOLDER = "values, comma separated"


class RuleEditor(Horizontal):
    """One rule: field, operator, value. Its `row` follows the widgets as they change."""

    def __init__(self, row: RuleRow, fields: list[str]) -> None:
        super().__init__(classes="row rule")
        self.row = row
        self.fields = fields

    def compose(self) -> ComposeResult:
        options = [(ATTENDEE_TYPE_LABEL, ATTENDEE_TYPE), *[(f, f) for f in self.fields]]
        field: dict[str, Any] = {"value": self.row.field} if self.row.field else {}
        yield Select(options, prompt="(field)", classes="rule-field", **field)
        op: dict[str, Any] = {"value": self.row.op} if self.row.op else {}
        yield Select([(o, o) for o in OPS], prompt="(operator)", classes="rule-op", **op)
        yield Input(self.row.text, classes="rule-value")

    def on_mount(self) -> None:
        self._shape()

    def _shape(self) -> None:
        """The operator means nothing for attendee-type tags, the value nothing for is_empty."""
        attendee = self.row.field == ATTENDEE_TYPE
        op = self.query_one(".rule-op", Select)
        op.disabled = attendee or self.disabled
        value = self.query_one(".rule-value", Input)
        value.disabled = (not attendee and self.row.op in NO_VALUE_OPS) or self.disabled
        if attendee:
            value.placeholder = ATTENDEE_PLACEHOLDER
        elif self.row.op == "in":
            value.placeholder = IN_PLACEHOLDER
        else:
            value.placeholder = FIELD_PLACEHOLDER

    @on(Select.Changed, ".rule-field")
    def field_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.row.field = event.value if isinstance(event.value, str) else None
        op = self.query_one(".rule-op", Select)
        if self.row.field == ATTENDEE_TYPE:
            self.row.op = None
            op.clear()
        elif self.row.op is None:
            self.row.op = OPS[0]
            op.value = OPS[0]
        self._shape()

    @on(Select.Changed, ".rule-op")
    def op_changed(self, event: Select.Changed) -> None:
        event.stop()
        if self.row.field != ATTENDEE_TYPE:
            self.row.op = event.value if isinstance(event.value, str) else None
        self._shape()

    @on(Input.Changed, ".rule-value")
    def value_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.row.text = event.value


class FilterEditor(Vertical):
    """The rules (all must hold) as rows, or as JSON text when a row cannot hold one."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.fields: list[str] = []
        self.attendee_tags: list[str] = []
        self.as_json = False
        self.locked = False

    def compose(self) -> ComposeResult:
        yield Static("", id="filters-note")
        yield Vertical(id="filter-rows")
        yield TextArea("[]", id="filters", language=None)
        yield Static("", id="filters-error")

    # --- loading ---------------------------------------------------------------------------

    def load(
        self, filters: list[Any], fields: list[str], attendee_tags: list[str], *, locked: bool
    ) -> None:
        """Show `filters`: as rows, or as JSON when some rule cannot be a row (the note says
        which). `fields` are the paths offered; a rule's own field is offered too."""
        self.attendee_tags = attendee_tags
        self.locked = locked
        used = [f["field"] for f in filters if isinstance(f, dict) and "field" in f]
        used = [str(name) for name in used if isinstance(name, str)]
        self.fields = list(dict.fromkeys([*fields, *used]))
        rows, problem = rows_of(filters)
        self.query_one("#filters", TextArea).text = json.dumps(filters, indent=1)
        self._show_rows(rows)
        self._set_json(problem is not None, problem)
        self.show_error(None)

    def _show_rows(self, rows: list[RuleRow]) -> None:
        box = self.query_one("#filter-rows", Vertical)
        box.remove_children()
        editors = [RuleEditor(row, self.fields) for row in rows]
        for editor in editors:
            editor.disabled = self.locked
        box.mount_all(editors)
        self._note_empty(len(rows))

    def _note_empty(self, count: int) -> None:
        if self.as_json:
            return
        note = "" if count else "no rules: every change the flow activates for passes"
        self._note(Text(note, style="dim"))

    def _note(self, text: Text) -> None:
        box = self.query_one("#filters-note", Static)
        box.update(text)
        box.display = bool(text.plain)

    def _set_json(self, on: bool, why: str | None = None) -> None:
        self.as_json = on
        self.query_one("#filter-rows").display = not on
        area = self.query_one("#filters", TextArea)
        area.display = on
        area.disabled = self.locked
        if on:
            text = f"shown as JSON: {why} cannot be a row" if why else "shown as JSON"
            self._note(Text(f"{text} · f10 back to rows once it can", style="yellow"))
        else:
            self._note_empty(len(self.editors()))

    def editors(self) -> list[RuleEditor]:
        return list(self.query_one("#filter-rows", Vertical).query_children(RuleEditor))

    # --- editing ---------------------------------------------------------------------------

    def add_rule(self) -> None:
        if self.locked or self.as_json:
            return
        editor = RuleEditor(RuleRow(), self.fields)
        self.query_one("#filter-rows", Vertical).mount(editor)
        self._note(Text(""))
        self.call_after_refresh(lambda: editor.query_one(".rule-field", Select).focus())
        self.call_after_refresh(editor.scroll_visible, animate=False)

    def remove_rule(self) -> None:
        """Remove the rule with the focus (the last one when none has it)."""
        if self.locked or self.as_json:
            return
        editors = self.editors()
        if not editors:
            return
        focused = self.screen.focused
        chosen = next(
            (e for e in editors if focused is not None and focused in e.walk_children()), None
        )
        (chosen or editors[-1]).remove()
        self._note_empty(len(editors) - 1)
        self.show_error(None)

    def to_rows(self) -> None:
        """Back from JSON to rows, when the text is a list rows can hold."""
        if not self.as_json:
            return
        filters, problem = filters_of(self.query_one("#filters", TextArea).text)
        if problem is not None:
            self.show_error(f"filters: {problem}", focus=True)
            return
        rows, why = rows_of(filters)
        if why is not None:
            self._set_json(True, why)
            return
        self._show_rows(rows)
        self._set_json(False)
        self.show_error(None)

    # --- reading ---------------------------------------------------------------------------

    def value(self, show_errors: bool) -> list[Any] | None:
        """The rules as the configuration holds them, or None when one has a problem (with
        `show_errors`, named by its path under the rows and focused)."""
        if self.as_json:
            filters, problem = filters_of(self.query_one("#filters", TextArea).text)
            if problem is not None:
                if show_errors:
                    self.show_error(f"filters: {problem}", focus=True)
                return None
            return filters
        editors = self.editors()
        rules, found = rules_of([e.row for e in editors], self.attendee_tags)
        if found is None:
            return rules
        if show_errors:
            index, path, message = found
            self.show_error(f"{path}: {message}")
            part = ".rule-value" if path.endswith(("value", "]", "tags")) else ".rule-field"
            if path.endswith(".op"):
                part = ".rule-op"
            editors[index].query_one(part).focus()
        return None

    def show_error(self, problem: str | None, focus: bool = False) -> None:
        area = self.query_one("#filters", TextArea)
        box = self.query_one("#filters-error", Static)
        area.set_class(problem is not None and self.as_json, "error")
        box.set_class(problem is not None, "shown")
        box.update(Text(f"✗ {problem}", style="bold red") if problem else "")
        if problem is not None and focus and self.as_json:
            area.focus()
        if problem is not None:
            self.call_after_refresh(box.scroll_visible, animate=False)

    @on(TextArea.Changed, "#filters")
    def json_changed(self, event: TextArea.Changed) -> None:
        if self.as_json:
            problem = filters_of(event.text_area.text)[1]
            self.show_error(f"filters: {problem}" if problem else None)
