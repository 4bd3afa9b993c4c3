"""What a screen needs from the app it runs in, as a Protocol: the operator API client, the
clock, the read-only flag, the refresh interval, the error log and how to report an error.

Screens reach the app through `host(self.app)` rather than importing the app class, so
`console.app` imports the screens and no screen imports `console.app`: the dependency runs one
way, and a screen can be run in any app that offers these (a test's, for instance).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from textual.app import App

from apiclient.client import ApiClient


@runtime_checkable
class ConsoleHost(Protocol):
    """The console app as its screens see it (`console.app.SignalConsole` is one)."""

    client: ApiClient
    read_only: bool
    refresh_s: float
    clock: Callable[[], datetime]
    errors: deque[tuple[datetime, str, str]]
    """The last errors reported (when, what was tried, the error), for the debug panel."""
    keymap_overrides: dict[str, str]

    def report_error(self, what: str, error: str) -> None:
        """Tell the operator `what` could not be done and why; kept for the debug panel."""

    def run_command_line(self, text: str) -> None:
        """Run a `:` command typed on a screen's command line."""


def host(app: App[Any]) -> ConsoleHost:
    """`app` as a console host; a screen shown by any other app is a programming error."""
    if not isinstance(app, ConsoleHost):
        raise TypeError(f"{type(app).__name__} is not a Signal console (console.host.ConsoleHost)")
    return app
