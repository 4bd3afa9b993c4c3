"""Confirmations: yes/no with the safe button focused, and type-to-confirm for bulk or
irreversible actions (the operator types the flow name or the item count)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

CSS = Path(__file__).with_name("modals.tcss")


class ConfirmModal(ModalScreen[bool]):
    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm-yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm-no"),
        Binding("left,h", "app.focus_previous", "", show=False),
        Binding("right,l", "app.focus_next", "", show=False),
    ]

    def __init__(self, question: str, *, title: str = "Confirm", dangerous: bool = True) -> None:
        super().__init__()
        self.question = question
        self.title_text = title
        self.dangerous = dangerous

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as box:
            box.border_title = self.title_text
            yield Static(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button("Yes (y)", id="yes", variant="error" if self.dangerous else "primary")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no" if self.dangerous else "#yes", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TypeToConfirmModal(ModalScreen[bool]):
    """Confirmed only when the typed text equals `expected` exactly."""

    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="confirm-cancel")
    ]

    def __init__(self, question: str, expected: str, *, title: str = "Type to confirm") -> None:
        super().__init__()
        self.question = question
        self.expected = expected
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as box:
            box.border_title = self.title_text
            yield Static(self.question, id="question")
            yield Label(f"Type [b]{self.expected}[/b] and press enter (esc cancels):")
            yield Input(placeholder=self.expected, id="typed")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.expected:
            self.dismiss(True)
        else:
            event.input.add_class("error")
            self.notify(f"type {self.expected!r} exactly to confirm", severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(False)


class TextModal(ModalScreen[None]):
    """A read-only panel (reasons, item detail, preview); any of esc/q/enter closes it."""

    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "close", "Close", id="text-close")
    ]

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide") as box:
            box.border_title = self.title_text
            box.border_subtitle = "esc closes"
            yield Static(self.body, id="body", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
