"""The flow editor's dialog for a new mapping: its id, its name, and whether it starts as a copy
of the mapping the flow has now (the usual way to make a variant). The id is checked as it is
typed against the configuration's identifier rule and the mappings that exist, so a refusal
names the field before anything is sent; control checks again when it is created. Its keys come
from the action registry (scope `mapping-form`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import TypeAdapter, ValidationError
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, Static

from config.models import Identifier
from console import actions

CSS = Path(__file__).with_name("flow_detail.tcss")
IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
"""The configuration's own identifier rule, so the dialog refuses what control would."""


@dataclass(frozen=True)
class NewMapping:
    id: str
    name: str
    copy_from: str | None


def id_problem(mapping_id: str, taken: set[str]) -> str | None:
    """Why `mapping_id` cannot be a new mapping's id, or None."""
    if not mapping_id:
        return "id: a mapping needs an id"
    try:
        IDENTIFIER.validate_python(mapping_id)
    except ValidationError:
        return (
            f"id: {mapping_id!r} is not an identifier (letters, digits, _ . and -, starting "
            "with a letter or digit, at most 100)"
        )
    if mapping_id in taken:
        return f"id: a mapping {mapping_id!r} exists already"
    return None


class MappingForm(ModalScreen[NewMapping | None]):
    """A new mapping's id and name, and whether to copy the flow's current mapping."""

    CSS_PATH = CSS
    SCOPE: ClassVar[str] = "mapping-form"
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("mapping-form")]

    def __init__(self, taken: set[str], current: str | None) -> None:
        super().__init__()
        self.taken = taken
        self.current = current

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="mapping-dialog") as box:
            box.border_title = "new mapping"
            box.border_subtitle = "ctrl+s create · esc cancel"
            yield Label("Id (letters, digits, _ . and -)")
            yield Input("", id="m-id")
            yield Label("Name")
            yield Input("", id="m-name")
            if self.current:
                yield Checkbox(f"Start from a copy of {self.current}", True, id="m-copy")
            yield Static("", id="m-error")

    def on_mount(self) -> None:
        self.query_one("#m-id", Input).focus()

    @on(Input.Changed, "#m-id")
    def id_changed(self, event: Input.Changed) -> None:
        problem = id_problem(event.value.strip(), self.taken) if event.value else None
        self._show(problem)

    def _show(self, problem: str | None) -> None:
        self.query_one("#m-error", Static).update(
            Text(f"✗ {problem}", style="bold red") if problem else ""
        )

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_done(self) -> None:
        mapping_id = self.query_one("#m-id", Input).value.strip()
        problem = id_problem(mapping_id, self.taken)
        if problem is not None:
            self._show(problem)
            self.query_one("#m-id", Input).focus()
            return
        name = self.query_one("#m-name", Input).value.strip() or mapping_id
        copy = self.current if self.current and self.query_one("#m-copy", Checkbox).value else None
        self.dismiss(NewMapping(mapping_id, name, copy))

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_done()


@dataclass
class MappingCreated(Message, bubble=False):
    mapping: dict[str, Any]


@dataclass
class MappingDeleted(Message, bubble=False):
    mapping_id: str
