"""Confirmations: yes/no with the safe button focused, type-to-confirm for bulk or irreversible
actions (the operator types the flow id or name, or the item count), text panels, the quit dialog
of a console under `csignal run` (detach / stop Signal / cancel) and the unsaved-edits dialog
of an editor (save / discard / keep editing).

Questions, titles and bodies carry flow names, filters and API text: they are shown as plain
text (or escaped where a title is content markup), never parsed as markup."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, Static

from config.flow_confirm import ascii_form, confirms_flow, refusal
from console import actions
from console.fmt import esc, safe

CSS = Path(__file__).with_name("modals.tcss")


def first_key(screen: Screen[Any], action_id: str) -> str:
    """The first key of a registry action, after the operator's keymap, as a dialog names it."""
    overrides: dict[str, str] = getattr(screen.app, "keymap_overrides", {})
    key = overrides.get(action_id, actions.BY_ID[action_id].keys).split(",")[0]
    return {"escape": "esc"}.get(key, key)


class ConfirmModal(ModalScreen[bool]):
    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        *actions.bindings("confirm"),
        *actions.bindings("dialog"),
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
    """Confirmed only when the typed text equals `expected` exactly, or, for an action on a
    flow (`flow_name` given, `expected` the flow id), when it is the flow id or the flow's name
    in any case with its non-ASCII characters typed in ASCII (`->` for `→`): an SSH keyboard
    cannot type every name. A refused entry says why inside the dialog, beside the field."""

    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("type-confirm")]

    def __init__(
        self,
        question: str,
        expected: str,
        *,
        title: str = "Type to confirm",
        flow_name: str | None = None,
    ) -> None:
        super().__init__()
        self.question = question
        self.expected = expected
        self.title_text = title
        self.flow_name = flow_name

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as box:
            box.border_title = esc(self.title_text)
            yield Static(self.question, id="question", markup=False)
            if self.flow_name is None:
                yield Label(f"Type [b]{esc(self.expected)}[/b] and press enter (esc cancels):")
            else:
                yield Static(
                    f"Type the flow id [b]{esc(self.expected)}[/b] or its name "
                    f"([b]{esc(ascii_form(self.flow_name))}[/b], any case) and press enter "
                    "(esc cancels):",
                    id="expected",
                )
            yield Input(placeholder=self.expected, id="typed")
            yield Static("", id="refused", markup=False)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def matches(self, typed: str) -> bool:
        if self.flow_name is None:
            return typed.strip() == self.expected
        return confirms_flow(typed, self.expected, self.flow_name)

    def why_not(self, typed: str) -> str:
        if self.flow_name is not None:
            return refusal(typed, self.expected, self.flow_name)
        if not typed.strip():
            return f"nothing was typed; type {self.expected!r}"
        return f"{typed.strip()!r} is not {self.expected!r}; type it exactly"

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        if self.matches(event.value):
            self.dismiss(True)
            return
        event.input.add_class("error")
        self.query_one("#refused", Static).update(Text(f"✗ {self.why_not(event.value)}"))

    @on(Input.Changed)
    def changed(self, event: Input.Changed) -> None:
        event.input.remove_class("error")

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
            # Detail bodies quote data (catalog labels, flow reasons): escaped, lines kept.
            yield Static(safe(self.body, keep="\n"), id="body", markup=False)

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
        *actions.bindings("dialog"),
    ]

    def compose(self) -> ComposeResult:
        detach, stop, cancel = (first_key(self, f"quit-{n}") for n in ("detach", "stop", "cancel"))
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


class UnsavedModal(ModalScreen[str]):
    """Leaving an editor with unsaved edits: dismissed with "save", "discard" or "keep". Keep
    editing, the safe choice, has the focus; the keys come from the registry (scope `unsaved`)."""

    CSS_PATH = CSS
    SCOPE: ClassVar[str] = "unsaved"
    BINDINGS: ClassVar[list[BindingType]] = [
        *actions.bindings("unsaved"),
        *actions.bindings("dialog"),
    ]

    def __init__(self, what: str, *, title: str = "Unsaved changes") -> None:
        super().__init__()
        self.what = what
        self.title_text = title

    def compose(self) -> ComposeResult:
        save, discard, keep = (first_key(self, f"unsaved-{n}") for n in ("save", "discard", "keep"))
        with Vertical(id="dialog") as box:
            box.border_title = esc(self.title_text)
            box.border_subtitle = esc(f"{save} save · {discard} discard · {keep} keep editing")
            yield Static(self.what, id="question", markup=False)
            with Horizontal(id="buttons"):
                yield Button(Text(f"Save ({save})"), id="save", variant="primary")
                yield Button(Text(f"Discard ({discard})"), id="discard", variant="error")
                yield Button(Text(f"Keep editing ({keep})"), id="keep")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    def action_save(self) -> None:
        self.dismiss("save")

    def action_discard(self) -> None:
        self.dismiss("discard")

    def action_keep(self) -> None:
        self.dismiss("keep")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "keep")
