"""Confirmations: yes/no with the safe button focused, type-to-confirm for bulk or irreversible
actions (the operator types the flow name or the item count), text panels, and the quit dialog
of a console under `csignal run` (detach / stop Signal / cancel).

Questions, titles and bodies carry flow names, filters and API text: they are shown as plain
text (or escaped where a title is content markup), never parsed as markup."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from console import actions
from console.fmt import esc

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
            box.border_title = esc(self.title_text)
            yield Static(self.question, id="question", markup=False)
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
            box.border_title = esc(self.title_text)
            yield Static(self.question, id="question", markup=False)
            yield Label(f"Type [b]{esc(self.expected)}[/b] and press enter (esc cancels):")
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
    SCOPE: ClassVar[str] = "panel"
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("panel")]

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide") as box:
            box.border_title = esc(self.title_text)
            box.border_subtitle = "esc closes"
            yield Static(self.body, id="body", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)


QUIT_TEXT = (
    "This console runs under `csignal run`: control, the pipeline and the deliveries go on "
    "without it.\n\n"
    "Detach closes the console and leaves Signal running; `csignal console` reattaches.\n"
    "Stop Signal stops the deliveries and every service."
)


class QuitModal(ModalScreen[str]):
    """Leaving a console that runs under `csignal run`: dismissed with "detach", "stop" or
    "cancel". Detach, the safe choice, has the focus; the keys come from the registry (scope
    `quit`), so `?` help lists them and a keymap file can move them."""

    CSS_PATH = CSS
    SCOPE: ClassVar[str] = "quit"
    BINDINGS: ClassVar[list[BindingType]] = [
        *actions.bindings("quit"),
        Binding("left,h", "app.focus_previous", "", show=False),
        Binding("right,l", "app.focus_next", "", show=False),
    ]

    def _key(self, action_id: str) -> str:
        """The first key of an action, after the operator's keymap."""
        overrides: dict[str, str] = getattr(self.app, "keymap_overrides", {})
        key = overrides.get(action_id, actions.BY_ID[action_id].keys).split(",")[0]
        return {"escape": "esc"}.get(key, key)

    def compose(self) -> ComposeResult:
        detach, stop, cancel = (self._key(f"quit-{n}") for n in ("detach", "stop", "cancel"))
        with Vertical(id="dialog") as box:
            box.border_title = "Leave the console"
            box.border_subtitle = esc(f"{detach} detach · {stop} stop Signal · {cancel} cancel")
            yield Static(QUIT_TEXT, id="question", markup=False)
            with Horizontal(id="buttons"):
                yield Button(Text(f"Detach ({detach})"), id="detach", variant="primary")
                yield Button(Text(f"Stop Signal ({stop})"), id="stop", variant="error")
                yield Button(Text(f"Cancel ({cancel})"), id="cancel")

    def on_mount(self) -> None:
        self.query_one("#detach", Button).focus()

    def action_detach(self) -> None:
        self.dismiss("detach")

    def action_stop_signal(self) -> None:
        self.dismiss("stop")

    def action_cancel(self) -> None:
        self.dismiss("cancel")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "cancel")
