"""`?` help built from the action registry, and the debug-info panel (versions, API, errors)."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console import actions

if TYPE_CHECKING:
    from console.app import SignalConsole

SCOPE_TITLES = {
    actions.GLOBAL: "Everywhere",
    "flows": "Flow list",
    "flow": "Flow editor",
    "connections": "Connections",
    "connection-form": "Connection form",
    "catalog": "Tags & events",
    "retry": "Retry queue",
    "metrics": "Metrics",
    "sql": "SQL",
    "replay": "Replay",
}
KEY_NAMES = {
    "question_mark": "?",
    "colon": ":",
    "slash": "/",
    "space": "space",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
}


def key_text(keys: str) -> str:
    return " ".join(KEY_NAMES.get(k, k) for k in keys.split(","))


def help_text(scope: str, read_only: bool, keymap: dict[str, str] | None = None) -> str:
    keymap = keymap or {}
    lines: list[str] = []
    for section in (scope, actions.GLOBAL) if scope != actions.GLOBAL else (actions.GLOBAL,):
        lines.append(f"[b]{SCOPE_TITLES.get(section, section)}[/b]")
        for spec in actions.for_scope(section):
            if read_only and spec.dangerous:
                continue
            mark = " [red]![/red]" if spec.dangerous else ""
            keys = keymap.get(spec.id, spec.keys)
            lines.append(f"  {key_text(keys):<14} {spec.description}{mark}")
        lines.append("")
    lines.append("Arrows or j/k move, g/G top/bottom; ctrl+p palette; ctrl+q quits.")
    lines.append(":flows :connections :events :retry :metrics :sql :q")
    if read_only:
        lines.append("[reverse] RO [/] read-only: actions that change anything are hidden.")
    else:
        lines.append("[red]![/red] changes something (hidden with --read-only)")
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).with_name("help.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help-close")
    ]

    def __init__(self, scope: str, read_only: bool, keymap: dict[str, str] | None = None) -> None:
        super().__init__()
        self.scope = scope
        self.read_only = read_only
        self.keymap = keymap or {}

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = "Keys"
            box.border_subtitle = "esc closes"
            yield Static(help_text(self.scope, self.read_only, self.keymap))

    def action_close(self) -> None:
        self.dismiss(None)


class DebugScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).with_name("help.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="debug-close")
    ]

    def __init__(self, app: SignalConsole) -> None:
        super().__init__()
        self.console = app

    def compose(self) -> ComposeResult:
        def version(name: str) -> str:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                return "?"

        lines = [
            f"Signal console {version('signal-integration')}  textual {version('textual')}  "
            f"python {platform.python_version()}",
            f"API: {self.console.client.base_url}",
            f"read-only: {self.console.read_only}   refresh: {self.console.refresh_s:g}s",
            "",
            "[b]Last errors[/b]",
        ]
        for at, what, error in list(self.console.errors)[-10:]:
            lines.append(f"  {at:%H:%M:%S} {what}: {error}")
        if not self.console.errors:
            lines.append("  none")
        with VerticalScroll(id="help") as box:
            box.border_title = "Debug info"
            yield Static("\n".join(lines), markup=True)

    def action_close(self) -> None:
        self.dismiss(None)
