"""Waiting for the console to settle and reading what it shows; the fixed clock and the
console factory's type, importable by a module name no other test folder uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from console.app import SignalConsole
from tests.console.svg_text import svg_lines
from tests.support.clock import FIXED

# The console's clock in tests: the shared fixed moment (snapshots show times relative to it).
CLOCK = FIXED
MakeConsole = Callable[..., SignalConsole]
SETTLE_S = 30.0
"""How long `settle` waits for a load to finish: a deadline, not a count of 20 ms pauses, which
a loaded machine (the suite beside `just bench`) ran through before control had answered."""


def fixed_clock() -> datetime:
    return CLOCK


async def settle(pilot: Pilot[Any], rounds: int = 4) -> None:
    """Let messages flow and every worker finish (a result may start another worker), and
    wait until the current screen has rendered its first load."""
    for _ in range(rounds):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        busy = any(w.is_running for w in pilot.app.workers)
        if (
            not busy
            and not getattr(pilot.app.screen, "loading_now", False)
            and _tables_laid_out(pilot)
        ):
            break
        await pilot.pause(0.02)
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def _tables_laid_out(pilot: Pilot[Any]) -> bool:
    """Whether every table on the screen has sized its columns to the rows it holds. A table
    does it when its app is idle; on a loaded machine a snapshot taken before then showed the
    columns at their first widths, cut short (Textual's own pending-update state is read, as
    it has no public one)."""
    return not any(
        table._require_update_dimensions or table._updated_cells
        for table in pilot.app.screen.query(DataTable)
    )


def screen_text(pilot: Pilot[Any]) -> str:
    return "\n".join(svg_lines(pilot.app.export_screenshot()))


async def keys(pilot: Pilot[Any], *presses: str) -> None:
    for key in presses:
        await pilot.press(key)
        await settle(pilot, rounds=2)


async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*[c if c != " " else "space" for c in text])
