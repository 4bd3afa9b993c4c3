"""What every console screen shares: the top bar (screen, RO badge, freshness), the `:` command
line, registry bindings with read-only gating, a refresh loop that never overlaps, and calls to
control that report their failures the same way everywhere (`console.calls`: `call_api` inside
an `api_worker`).

The loop: `poll()` starts one exclusive worker; when its result (or failure) arrives the screen
renders and only then schedules the next poll, so a slow control never piles requests up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.timer import Timer
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from console import actions
from console.calls import ApiCalls
from console.fmt import ago, esc

COMMANDS = [
    ":flows",
    ":connections",
    ":events",
    ":retry",
    ":metrics",
    ":sql",
    ":replay",
    ":help",
    ":q",
]


class CommandLine(Input):
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("command-line")]

    def action_dismiss(self) -> None:
        self.value = ""
        self.display = False
        self.screen.focus_next()


def pass_worker_error_to_app(screen: Screen[Any], event: Worker.StateChanged) -> None:
    """Hand a worker's failure to the app, whose handler reports it (`console.app`'s
    `worker_state`): `Worker.StateChanged` does not bubble, it reaches only the screen that ran
    the worker, so every screen with workers passes its failures on through this."""
    if event.state == WorkerState.ERROR:
        screen.app.post_message(Worker.StateChanged(event.worker, event.state))


class BaseScreen(ApiCalls, Screen[None]):
    SCOPE: ClassVar[str] = actions.GLOBAL
    TITLE_TEXT: ClassVar[str] = ""
    POLLS: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.last_ok: datetime | None = None
        self.stale = False
        self.paused = False
        self.loading_now = self.POLLS
        self._next: Timer | None = None
        self._bar_text = ""
        self.status_note = ""
        self.title_text = self.TITLE_TEXT

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if "SCOPE" in cls.__dict__:
            cls.BINDINGS = [*actions.bindings(cls.SCOPE)]
        super().__init_subclass__(**kwargs)

    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        yield from self.body()
        line = CommandLine(
            placeholder=":flows :retry :metrics :sql :replay :connections :events :q",
            id="command-line",
            suggester=SuggestFromList(COMMANDS, case_sensitive=False),
        )
        line.display = False
        yield line
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.update_bar()
        self.set_interval(1.0, self.update_bar)
        if self.POLLS:
            self.call_later(self.poll)

    # --- read-only gating ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.console.read_only and actions.is_dangerous(self.SCOPE, action))

    # --- refresh loop ----------------------------------------------------------------------

    def poll(self) -> None:
        """Start the screen's load worker; subclasses override `load`."""
        self._next = None
        if self.paused or not self.is_current:
            self.schedule_poll()
            return
        self.loading_now = True
        self.load()

    def load(self) -> None:
        self.loaded()

    def loaded(self, ok: bool = True) -> None:
        self.loading_now = False
        if self.focused is None and self.is_current:
            self.focus_next()
        if ok:
            self.last_ok = self.console.clock()
            self.stale = False
        else:
            self.stale = True
        self.update_bar()
        self.schedule_poll()

    def schedule_poll(self) -> None:
        if self.POLLS and self._next is None and self.console.refresh_s > 0:
            self._next = self.set_timer(self.console.refresh_s, self.poll)

    def action_refresh_now(self) -> None:
        if self._next is not None:
            self._next.stop()
            self._next = None
        self.poll()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self.update_bar()

    def freshness(self) -> str:
        if self.paused:
            return "paused"
        if self.last_ok is None:
            return "stale" if self.stale else "loading…"
        text = f"updated {ago((self.console.clock() - self.last_ok).total_seconds())}"
        if self.console.refresh_s > 0:
            text += f" · every {self.console.refresh_s:g}s"
        return f"stale · {text}" if self.stale else text

    def update_bar(self) -> None:
        try:
            bar = self.query_one("#topbar", Static)
        except Exception:
            return
        ro = " [reverse bold] RO [/]" if self.console.read_only else ""
        note = f"  {esc(self.status_note)}" if self.status_note else ""
        fresh = self.freshness() if self.POLLS else ""
        text = f"[b]Signal[/b] ▸ {esc(self.title_text)}{ro}{note}  [dim]{esc(fresh)}[/dim]"
        # Called every second: the same text again would still parse its markup and lay the
        # whole screen out anew (Static.update), which a paused screen or a stopped clock
        # never needs.
        if text != self._bar_text:
            self._bar_text = text
            bar.update(text)
        bar.set_class(self.stale, "stale")

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """An unexpected exception in a worker is reported (by the app), never fatal; a load
        that failed so marks the screen stale and keeps the refresh loop going."""
        if event.state != WorkerState.ERROR:
            return
        pass_worker_error_to_app(self, event)
        if (event.worker.group or "").endswith("-load"):
            self.loaded(ok=False)

    # --- command line ----------------------------------------------------------------------

    def show_command_line(self) -> None:
        line = self.query_one("#command-line", CommandLine)
        line.display = True
        line.value = ""
        line.focus()

    @on(Input.Submitted, "#command-line")
    def command_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        line = self.query_one("#command-line", CommandLine)
        text = event.value
        line.value = ""
        line.display = False
        self.console.run_command_line(text)
