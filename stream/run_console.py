"""The terminal around the console `csignal run` opens in the foreground.

Apart from the runner because these are about the terminal, not the services: the modes saved
before the console takes the terminal over and put back when a killed console could not, and
what the operator is told when the console ended while Signal keeps running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from console import session

__all__ = ["RESET_TERMINAL", "console_ended", "file_size", "restore_terminal", "terminal_modes"]


def file_size(path: Path) -> int:
    """The size of a file, -1 when there is none (a crash log not written yet)."""
    try:
        return path.stat().st_size
    except OSError:
        return -1


def terminal_modes() -> list[Any] | None:
    """The terminal's modes before the console takes it over (None without a terminal)."""
    try:
        fd = sys.stdin.fileno()
        return termios.tcgetattr(fd) if os.isatty(fd) else None
    except (OSError, ValueError, termios.error):
        return None


# Leave the alternate screen, show the cursor, wrap lines again, end mouse reporting, bracketed
# paste, focus events and the kitty keyboard protocol: what a Textual app switches on or off and
# restores on exit.
RESET_TERMINAL = (
    "\x1b[?1049l\x1b[?25h\x1b[?7h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1015l"
    "\x1b[?1004l\x1b[?2004l\x1b[<u"
)


def restore_terminal(modes: list[Any] | None, out: TextIO) -> None:
    """Undo what a killed console could not: the saved line modes (so Ctrl-C is a signal
    again) and Textual's screen modes."""
    if modes is None:
        return
    with contextlib.suppress(OSError, ValueError, termios.error):
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, modes)
    with contextlib.suppress(OSError, ValueError):
        if out.isatty():
            out.write(RESET_TERMINAL)
            out.flush()


def console_ended(
    code: int | None,
    crash_log: Path | None,
    api_url: str,
    *,
    children: Sequence[tuple[str, int | None]],
    logs: Path,
    data_dir: Path | None,
) -> str:
    """What the terminal is told when the console ended and Signal keeps running: why it ended
    (`crash_log` when it crashed), what runs (`children`: name and pid), where the messages of
    meanwhile are, how to reattach (`data_dir` when the run was given one)."""
    if crash_log is not None:
        what = f"The console crashed (exit code {code}); its traceback is above and in {crash_log}."
    elif code == session.DETACH:
        what = "The console was closed (detached)."
    elif code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        what = f"The console was ended by {name}."
    else:
        what = f"The console exited with code {code}."
    pids = ", ".join(f"{name} pid {pid}" for name, pid in children)
    shown = f"SIGNAL_DATA_DIR={data_dir} " if data_dir is not None else ""
    return (
        f"{what}\nSignal keeps running and delivering ({pids}); messages from while the "
        f"console was open are in {logs / 'run.log'}.\n"
        f"Reattach with: {shown}csignal console --api {api_url}\n"
        "Status lines follow; Ctrl-C here stops everything."
    )
