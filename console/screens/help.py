"""`?` help built from the action registry, and the debug-info panel (versions, API, errors)."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console import actions
from console.fmt import esc
from console.host import ConsoleHost

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
    "quit": "Leaving the console",
    "panel": "Text panel",
    "field-form": "Mapping field",
    "mapping-form": "New mapping",
    "picker": "Marketo picker",
    "unsaved": "Unsaved edits",
    "table": "Every table",
    "filter": "Filter and search fields",
    "command-line": "The : command line",
    "help": "This help",
    "confirm": "Yes/no questions",
    "type-confirm": "Typed confirmations",
    "dialog": "Dialog buttons",
}
MODAL_SCOPES = frozenset(
    {
        "quit",
        "panel",
        "field-form",
        "mapping-form",
        "picker",
        "unsaved",
        "help",
        "confirm",
        "type-confirm",
        "dialog",
    }
)
"""Dialogs: only their own keys work there, so help lists only those."""
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


def help_text(
    scope: str,
    read_only: bool,
    keymap: dict[str, str] | None = None,
    *,
    under_run: bool = False,
) -> str:
    """The keys of `scope` and the global ones (a dialog's own keys only), as content markup:
    every key name and description is escaped, since key names such as `[` and `]` would
    otherwise open or close markup tags (`[ ctrl+b … [b]Everywhere[/b]` failed to render, and
    crashed the console: issue 17)."""
    keymap = keymap or {}
    lines: list[str] = []
    if scope in MODAL_SCOPES or scope == actions.GLOBAL:
        sections: tuple[str, ...] = (scope,)
    else:
        sections = (scope, "table", actions.GLOBAL)
    for section in sections:
        lines.append(f"[b]{esc(SCOPE_TITLES.get(section, section))}[/b]")
        for spec in actions.for_scope(section):
            if read_only and spec.dangerous:
                continue
            mark = " [red]![/red]" if spec.dangerous else ""
            keys = keymap.get(spec.id, spec.keys)
            lines.append(f"  {esc(f'{key_text(keys):<14}')} {esc(spec.description)}{mark}")
        lines.append("")
    if scope == "quit":
        lines.append("Signal runs under `csignal run`; the console is one of its clients.")
        lines.append("Detach leaves it delivering; `csignal console` reattaches.")
        return "\n".join(lines)
    if scope in MODAL_SCOPES:
        return "\n".join(lines).rstrip()
    lines.append("Arrows, page keys and ctrl+home/end move too; ctrl+p palette.")
    lines.append("A text box takes ? and ctrl+e (end of line): f1 opens help there.")
    if under_run:
        lines.append(
            "q on the flow list (or ctrl+q) asks: detach (Signal keeps running; "
            "`csignal console` reattaches) or stop Signal."
        )
    lines.append(":flows :connections :events :retry :metrics :sql :q")
    if read_only:
        lines.append("[reverse] RO [/] read-only: actions that change anything are hidden.")
    else:
        lines.append("[red]![/red] changes something (hidden with --read-only)")
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).with_name("help.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("help")]

    def __init__(
        self,
        scope: str,
        read_only: bool,
        keymap: dict[str, str] | None = None,
        *,
        under_run: bool = False,
    ) -> None:
        super().__init__()
        self.scope = scope
        self.read_only = read_only
        self.keymap = keymap or {}
        self.under_run = under_run

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = "Keys"
            box.border_subtitle = "esc closes"
            yield Static(
                help_text(self.scope, self.read_only, self.keymap, under_run=self.under_run)
            )

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll_top(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_home(animate=False)

    def action_scroll_bottom(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_end(animate=False)


class DebugScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).with_name("help.tcss")
    SCOPE: ClassVar[str] = "panel"
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("panel")]

    def __init__(self, app: ConsoleHost) -> None:
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
            f"API: {esc(self.console.client.base_url)}",
            f"read-only: {self.console.read_only}   refresh: {self.console.refresh_s:g}s",
            "",
            "[b]Last errors[/b]",
        ]
        for at, what, error in list(self.console.errors)[-10:]:
            lines.append(f"  {at:%H:%M:%S} {esc(what)}: {esc(error)}")
        if not self.console.errors:
            lines.append("  none")
        with VerticalScroll(id="help") as box:
            box.border_title = "Debug info"
            yield Static("\n".join(lines), markup=True)

    def action_close(self) -> None:
        self.dismiss(None)
