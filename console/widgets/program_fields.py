"""The flow editor's Marketo program for `update_program_status`: the program id and, per status
tag, the program status it sets (`registered → Registered`).

A row per status tag: those the status map names and those the flow activates for (which the
map must cover to be complete), each a plain input, so a name can be typed when Marketo cannot
be asked; the picker (f2) fills the one with the focus from the chosen program's statuses.
Reading it back gives the same `program` as loaded when nothing was edited.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label


class StatusRow(Horizontal):
    """One status tag and the program status it sets."""

    def __init__(self, tag: str, status: str) -> None:
        super().__init__(classes="row status-row")
        self.tag = tag
        self.status = status

    def compose(self) -> ComposeResult:
        yield Label(f"  {self.tag} →", classes="label")
        yield Input(self.status, placeholder="program status", classes="status-name")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.status = event.value


class ProgramFields(Vertical):
    """Program id and the status map; `value()` is the destination's `program`."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.loaded: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("Program id", classes="label")
            yield Input("", id="program-id", type="integer")
        yield Vertical(id="program-statuses")

    def load(self, program: dict[str, Any] | None, tags: list[str], *, locked: bool) -> None:
        self.loaded = program
        rule = program or {}
        self.query_one("#program-id", Input).value = str(rule.get("program_id") or "")
        statuses: dict[str, str] = dict(rule.get("statuses") or {})
        known = {t.casefold() for t in statuses}
        names = [*statuses, *[t for t in tags if t.casefold() not in known]]
        box = self.query_one("#program-statuses", Vertical)
        box.remove_children()
        rows = [StatusRow(tag, statuses.get(tag, "")) for tag in names]
        box.mount_all(rows)
        for widget in [self.query_one("#program-id", Input), *rows]:
            widget.disabled = locked

    def program_id(self) -> int | None:
        text = self.query_one("#program-id", Input).value.strip()
        return int(text) if text.isdigit() and int(text) > 0 else None

    def value(self) -> dict[str, Any] | None:
        """The `program` the form holds: None when it names nothing (as a flow without one)."""
        text = self.query_one("#program-id", Input).value.strip()
        statuses = {}
        for row in self.query_one("#program-statuses", Vertical).query_children(StatusRow):
            name = row.status.strip()
            if name:
                statuses[row.tag] = name
        rule = dict(self.loaded or {})
        rule["program_id"] = int(text) if text.lstrip("-").isdigit() else (text or None)
        rule["statuses"] = statuses
        if not rule.get("event_question") and rule["program_id"] is None and not statuses:
            return None
        return rule
