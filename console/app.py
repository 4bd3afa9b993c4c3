"""The Signal operations console: a Textual app over control's operator API.

Screens are modes (`flows`, `connections`, `catalog`, `retry`, `metrics`, `sql`), reached by
number keys, `:` commands or the palette; `q` goes back, and quits from the flow list. Under
`csignal run` (`under_run`) quitting asks first: detach (Signal keeps running) or stop Signal,
answered through the exit code (console.session).

Everything shown comes from the API or the operator, so none of it is parsed as markup unless
escaped first (console.fmt.esc, fmt.plain); notifications are always plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import sys
import traceback
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import events, on
from textual.app import App, SystemCommand
from textual.binding import BindingType
from textual.command import Hit, Hits, Provider
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from apiclient.access import token_file
from apiclient.client import ApiClient
from console import actions, fmt, session
from console.keymap import load_keymap
from console.screens.base import BaseScreen
from console.screens.catalog import CatalogScreen
from console.screens.connections import ConnectionsScreen
from console.screens.erase_person import ErasePerson
from console.screens.flows import FlowsScreen
from console.screens.help import DebugScreen, HelpScreen
from console.screens.metrics import MetricsScreen
from console.screens.modals import QuitModal
from console.screens.replay import ReplayScreen
from console.screens.retry import RetryScreen
from console.screens.sql import SqlScreen

Clock = Callable[[], datetime]

COMMAND_MODES = {
    "flows": "flows",
    "f": "flows",
    "connections": "connections",
    "conn": "connections",
    "events": "catalog",
    "tags": "catalog",
    "catalog": "catalog",
    "retry": "retry",
    "metrics": "metrics",
    "sql": "sql",
    "replay": "replay",
}
TTY_CHECK_S = 5.0
REFRESH_STEPS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def _now() -> datetime:
    return datetime.now(UTC)


class SignalCommands(Provider):
    """The palette lists what the keys do: navigation plus the actions of the screen it was
    opened over (`self.screen`; `app.screen` is the palette itself while it is open)."""

    def _entries(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        assert isinstance(app, SignalConsole)
        screen = self.screen
        scope = screen.SCOPE if isinstance(screen, BaseScreen) else actions.GLOBAL
        entries: list[tuple[str, str, Callable[[], object]]] = []
        for spec in [*actions.for_scope(actions.GLOBAL), *actions.for_scope(scope)]:
            if spec.id in ("help", "command-line"):
                continue
            if app.read_only and spec.dangerous:
                continue
            target = app if spec.action.startswith("app.") else screen
            action = spec.action.removeprefix("app.").removeprefix("screen.")
            runner = partial(target.run_action, action)
            keys = app.keymap_overrides.get(spec.id, spec.keys).split(",")[0]
            entries.append((spec.description, f"key: {keys}", runner))
        return entries

    async def discover(self) -> Hits:
        for name, help_text, run in self._entries():
            yield Hit(1.0, name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        """Matches the description, then the key: "resub" finds Resubmit, "live" Live/test."""
        matcher = self.matcher(query)
        for name, help_text, run in self._entries():
            score = max(matcher.match(name), matcher.match(help_text) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)


class SignalConsole(App[int]):
    TITLE = "Signal"
    CSS_PATH = Path(__file__).parent / "screens" / "base.tcss"
    MODES: ClassVar[dict[str, Callable[[], Screen[None]]]] = {  # type: ignore[assignment]
        "flows": FlowsScreen,
        "connections": ConnectionsScreen,
        "catalog": CatalogScreen,
        "retry": RetryScreen,
        "metrics": MetricsScreen,
        "sql": SqlScreen,
        "replay": ReplayScreen,
    }
    COMMANDS: ClassVar[set[type[Provider]]] = {SignalCommands}  # type: ignore[assignment]
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings(actions.GLOBAL)]
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        client: ApiClient,
        *,
        read_only: bool = False,
        clock: Clock = _now,
        refresh_s: float = 5.0,
        watch_tty: bool = True,
        keymap: dict[str, str] | None = None,
        keymap_problems: list[str] | None = None,
        under_run: bool = False,
        crash_log: Path | None = None,
    ) -> None:
        super().__init__()
        self.under_run = under_run
        """Started by `csignal run`: quitting asks to detach or to stop Signal."""
        self.crash_log = crash_log
        """Where an unhandled exception's traceback is appended (it is also printed)."""
        self.keymap_overrides = dict(keymap or {})
        self.keymap_problems = list(keymap_problems or [])
        self.client = client
        self.read_only = read_only
        self.clock = clock
        self.refresh_s = refresh_s
        self.watch_tty = watch_tty
        self.errors: deque[tuple[datetime, str, str]] = deque(maxlen=50)
        if read_only:
            self.sub_title = "read-only"

    def get_system_commands(self, screen: Screen[object]) -> list[SystemCommand]:  # type: ignore[override,unused-ignore]
        return [
            c for c in super().get_system_commands(screen) if c.title in ("Theme", "Quit", "Keys")
        ]

    async def on_mount(self) -> None:
        if self.keymap_overrides:
            self.set_keymap(self.keymap_overrides)
        for problem in self.keymap_problems:
            self.report_error("apply the keymap", problem)
        # Watch the terminal before the first screen paints: a hang-up that arrives while the
        # flow list loads must not be missed.
        if self.watch_tty and sys.stdin is not None and sys.stdin.isatty():
            self.set_interval(TTY_CHECK_S, self._check_tty)
            loop = asyncio.get_running_loop()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGHUP, self._lost_tty)
                loop.add_signal_handler(signal.SIGTERM, self.exit)
        await self.switch_mode("flows")

    async def on_unmount(self) -> None:
        await self.client.close()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Always plain text: messages carry API errors, flow names and operator input, which
        may hold square brackets (an error reading `[/x]` must not crash the console)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def _handle_exception(self, error: Exception) -> None:
        """An unhandled exception ends the console (exit code 1, traceback on the terminal);
        under `csignal run` its traceback is kept in `crash_log` too, since the runner's status
        lines soon scroll it away."""
        if self.crash_log is not None:
            with contextlib.suppress(OSError):
                self.crash_log.parent.mkdir(parents=True, exist_ok=True)
                with self.crash_log.open("a", encoding="utf-8") as log:
                    log.write(
                        f"{datetime.now(UTC).isoformat(timespec='seconds')} console crashed\n"
                    )
                    log.write("".join(traceback.format_exception(error)))
        super()._handle_exception(error)

    def _check_tty(self) -> None:
        """The terminal is gone when the parent is gone or the tty reports a hang-up; a hung-up
        pty still passes isatty(), so poll it for POLLHUP as well."""
        try:
            fd = sys.stdin.fileno()
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            hung_up = any(ev & (select.POLLHUP | select.POLLERR) for _, ev in poller.poll(0))
            alive = os.isatty(fd) and os.getppid() != 1 and not hung_up
        except (OSError, ValueError):
            alive = False
        if not alive:
            self._lost_tty()

    def _lost_tty(self) -> None:
        """Leave at once: there is no terminal left to restore, and Textual's orderly shutdown
        writes to it and can block for ever on a hung-up pty (seen under load). The console keeps
        no state of its own (control holds everything), so nothing is lost. A headless app
        (tests, Pilot) has no terminal to block on and exits in order."""
        if self.is_headless:
            self.exit(return_code=0)
            return
        os._exit(0)

    # --- read-only ---------------------------------------------------------------------------

    def on_key(self, event: events.Key) -> None:
        """A key bound to a change does nothing in read-only mode (its binding is refused, and
        control would refuse the request too); say so instead of ignoring the key. Runs after
        the bindings had their turn, and only for keys no widget took (an Input keeps its text)."""
        if not self.read_only:
            return
        spec = self.read_only_refusal(event.key)
        if spec is not None:
            self.notify(
                f"{spec.description} changes Signal, and this console is read-only "
                "(--read-only, with the read-only API token); use `csignal console` "
                "without --read-only to make changes",
                title="Read-only",
                severity="warning",
            )

    def read_only_refusal(self, key: str) -> actions.ActionSpec | None:
        """The registry's mutating action `key` is bound to on the current screen, if any."""
        screen = self.screen
        scope = getattr(screen, "SCOPE", actions.GLOBAL)
        for _node, bindings in screen._modal_binding_chain:
            for binding in bindings.key_to_bindings.get(key, ()):
                if binding.id is not None and binding.id in actions.BY_ID:
                    spec = actions.BY_ID[binding.id]
                    if spec.dangerous and spec.scope in (scope, actions.GLOBAL):
                        return spec
        return None

    # --- navigation ------------------------------------------------------------------------

    async def action_goto(self, mode: str) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()
        await self.switch_mode(mode)

    async def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif self.current_mode != "flows":
            await self.switch_mode("flows")
        else:
            self.request_quit()

    # --- leaving ---------------------------------------------------------------------------

    def request_quit(self) -> None:
        """Quit; under `csignal run` ask first whether to detach or to stop Signal."""
        if not self.under_run:
            self.exit(0)
            return
        if isinstance(self.screen, QuitModal):
            return
        self.push_screen(QuitModal(), self._quit_answer)

    def _quit_answer(self, answer: str | None) -> None:
        if answer == "detach":
            self.exit(session.DETACH, return_code=session.DETACH)
        elif answer == "stop":
            self.exit(session.STOP_SIGNAL, return_code=session.STOP_SIGNAL)

    async def action_quit(self) -> None:
        """`ctrl+q`: quits at once standalone; under `csignal run` it asks, and a second
        `ctrl+q` in the dialog detaches (the console always quits on ctrl+q ctrl+q, and Signal
        stops only when the operator chooses so)."""
        if self.under_run and isinstance(self.screen, QuitModal):
            self.exit(session.DETACH, return_code=session.DETACH)
        else:
            self.request_quit()

    def action_help_quit(self) -> None:
        """`ctrl+c` (Textual's reminder that it does not quit): under `csignal run` the operator
        most likely means to stop Signal, so offer the choice."""
        if self.under_run:
            self.request_quit()
        else:
            self.notify("press ctrl+q (or q on the flow list) to quit", title="Quit?")

    def action_help(self) -> None:
        screen = self.screen
        scope = getattr(screen, "SCOPE", actions.GLOBAL)
        if not isinstance(screen, HelpScreen):
            self.push_screen(
                HelpScreen(scope, self.read_only, self.keymap_overrides, under_run=self.under_run)
            )

    def action_refresh_interval(self, step: int) -> None:
        """Step the refresh interval through REFRESH_STEPS; the next poll uses it."""
        steps = [s for s in REFRESH_STEPS if s != self.refresh_s]
        if step > 0:
            self.refresh_s = next((s for s in steps if s > self.refresh_s), REFRESH_STEPS[-1])
        else:
            lower = [s for s in steps if s < self.refresh_s]
            self.refresh_s = lower[-1] if lower else REFRESH_STEPS[0]
        screen = self.screen
        if isinstance(screen, BaseScreen):
            screen.update_bar()
        self.notify(f"refreshing every {self.refresh_s:g}s", timeout=2)

    def action_erase_person(self) -> None:
        """Refused with the reason in a read-only console (the palette hides it there too)."""
        if self.read_only:
            self.notify(
                "Erasing a person changes Signal, and this console is read-only "
                "(--read-only, with the read-only API token); use `csignal console` "
                "without --read-only to make changes",
                title="Read-only",
                severity="warning",
            )
            return
        self.push_screen(ErasePerson())

    def action_debug_info(self) -> None:
        self.push_screen(DebugScreen(self))

    def action_command_line(self) -> None:
        screen = self.screen
        if isinstance(screen, BaseScreen):
            screen.show_command_line()

    def run_command_line(self, text: str) -> None:
        words = text.strip().lstrip(":").split()
        if not words:
            return
        name, rest = words[0].lower(), words[1:]
        if name in ("q", "quit", "exit"):
            self.request_quit()
        elif name in ("help", "?"):
            self.action_help()
        elif name in COMMAND_MODES:
            self.call_later(self._goto_with, COMMAND_MODES[name], rest)
        else:
            self.notify(
                f"unknown command :{name} — try :flows :retry :metrics :sql :replay",
                severity="warning",
            )

    async def _goto_with(self, mode: str, rest: list[str]) -> None:
        await self.action_goto(mode)
        screen = self.screen
        if rest and isinstance(screen, BaseScreen):
            apply = getattr(screen, "apply_command_args", None)
            if apply is not None:
                apply(rest)

    # --- errors ----------------------------------------------------------------------------

    def report_error(self, what: str, error: str) -> None:
        # A DuckDB or Marketo error may quote the data it choked on: escaped like any data.
        error = fmt.safe(error, keep="\n")
        self.errors.append((self.clock(), what, error))
        self.notify(error, title=f"Could not {what}", severity="error", timeout=10)

    @on(Worker.StateChanged)
    def worker_state(self, event: Worker.StateChanged) -> None:
        """A worker that raised unexpectedly, in any screen (screens pass their workers'
        failures here, `console.screens.base.pass_worker_error_to_app`): an error notification,
        and the console keeps running — it must never take Signal down with it."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            what = event.worker.group or event.worker.name or "finish"
            self.report_error(what.replace("-", " "), f"{type(error).__name__}: {error}")


def make_app(
    api_url: str | None,
    token: str | None,
    read_only: bool = False,
    *,
    clock: Clock | None = None,
    refresh_s: float = 5.0,
    watch_tty: bool = True,
    keymap_file: Path | None = None,
    under_run: bool = False,
    crash_log: Path | None = None,
) -> SignalConsole:
    # Without a token given, the client reads it at its first call: a missing or unreadable
    # token file is then an error the console shows, naming the file.
    hint = "the token given" if token is not None else str(token_file(read_only=read_only))
    client = ApiClient.for_console(api_url, token, read_only=read_only, token_hint=hint)
    keymap, problems = load_keymap(keymap_file)
    return SignalConsole(
        client,
        read_only=read_only,
        clock=clock or _now,
        refresh_s=refresh_s,
        watch_tty=watch_tty,
        keymap=keymap,
        keymap_problems=problems,
        under_run=under_run,
        crash_log=crash_log,
    )
