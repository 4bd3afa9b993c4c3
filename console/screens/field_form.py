"""The flow editor's dialog for one mapping field: the target Marketo field (suggested from the
connection's fields), its source fields, their separator, the transforms and whether it is
required. Its keys come from the action registry (scope `field-form`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Checkbox, Input, Label

from console import actions

CSS = Path(__file__).with_name("flow_detail.tcss")
TRANSFORMS = ("lower", "proper", "upper", "trim")


def split_list(text: str) -> list[str]:
    """`a, b,,c` → `["a", "b", "c"]`."""
    return [part.strip() for part in text.split(",") if part.strip()]


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
        transforms = split_list(self.query_one("#f-transforms", Input).value)
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
            sources=split_list(self.query_one("#f-sources", Input).value),
            separator=self.query_one("#f-separator", Input).value or " ",
            transforms=transforms,
            required=self.query_one("#f-required", Checkbox).value,
        )
        self.dismiss(field)

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_done()
