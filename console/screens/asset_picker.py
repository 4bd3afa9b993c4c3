"""A list to pick a Marketo campaign, form, program or program status from, read from the
flow's connection (`GET /api/v1/connections/{id}/marketo/…`).

The field it fills stays typeable: when Marketo cannot be reached or refuses, the picker says
why the list is missing and that the value can be typed, and nothing else changes. Its keys
come from the action registry (scope `picker`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from console import actions
from console.calls import ApiCalls, api_worker
from console.fmt import safe
from console.messages import ApiFailed

CSS = Path(__file__).with_name("flow_detail.tcss")
TITLES = {
    "campaigns": "trigger campaigns",
    "forms": "forms",
    "programs": "programs",
    "statuses": "program statuses",
}


@dataclass
class AssetsLoaded(Message, bubble=False):
    items: list[dict[str, Any]]
    truncated: bool


def item_prompt(kind: str, item: dict[str, Any]) -> Text:
    """One line: the name, then the id (what the field takes) and what else tells them apart."""
    name = safe(str(item.get("name", "")))
    detail = safe(str(item.get("detail") or ""))
    text = Text(name)
    if kind != "statuses":
        text.append(f"  {item.get('id')}", style="bold")
    if detail:
        text.append(f"  {detail}", style="dim")
    return text


class AssetPicker(ApiCalls, ModalScreen[dict[str, Any] | None]):
    """Pick one of a connection's `kind` (campaigns, forms, programs, statuses of a program)."""

    CSS_PATH = CSS
    SCOPE: ClassVar[str] = "picker"
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("picker")]

    def __init__(self, connection_id: str, kind: str, program_id: int | None = None) -> None:
        super().__init__()
        self.connection_id = connection_id
        self.kind = kind
        self.program_id = program_id
        self.items: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-dialog") as box:
            what = TITLES.get(self.kind, self.kind)
            if self.program_id is not None:
                what = f"statuses of program {self.program_id}"
            box.border_title = safe(f"{what} in {self.connection_id}")
            box.border_subtitle = "enter pick · esc cancel"
            yield Static(f"reading the {what} from Marketo…", id="picker-note")
            yield OptionList(id="picker-list")

    def on_mount(self) -> None:
        self.query_one(OptionList).display = False
        self.load()

    @api_worker("picker")
    async def load(self) -> None:
        reading = self.console.client.marketo_assets(self.connection_id, self.kind, self.program_id)
        answer = await self.call_api(f"list the {TITLES.get(self.kind, self.kind)}", reading)
        items = [i for i in answer.get("items", []) if isinstance(i, dict)]
        self.post_message(AssetsLoaded(items, bool(answer.get("truncated"))))

    @on(AssetsLoaded)
    def loaded(self, message: AssetsLoaded) -> None:
        self.items = message.items
        note = self.query_one("#picker-note", Static)
        if not self.items:
            note.update(Text("Marketo lists none; type the value in the field instead."))
            return
        more = " (the first of more; type one not listed)" if message.truncated else ""
        note.update(Text(f"{len(self.items)} found{more}", style="dim"))
        options = self.query_one(OptionList)
        options.add_options(
            [Option(item_prompt(self.kind, i), id=str(n)) for n, i in enumerate(self.items)]
        )
        options.display = True
        options.highlighted = 0
        options.focus()

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        text = Text("✗ the list is missing: ", style="bold red")
        text.append(safe(message.error), style="red")
        text.append("\nThe field stays typeable: esc, then type the value.", style="default")
        self.query_one("#picker-note", Static).update(text)

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.items[int(str(event.option.id))])

    def action_cancel(self) -> None:
        self.dismiss(None)
