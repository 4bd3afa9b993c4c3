"""`csignal console` in a real pseudo-terminal: it paints, quits on `q`, and exits by itself when
the terminal goes away (no orphan left spinning after a dropped SSH session)."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from tests.console.control_harness import Control
from tests.support.waiting import pause

pytestmark = pytest.mark.integration


def read_until(fd: int, *markers: bytes, within: float = 60.0) -> bytes:
    """Read the terminal until every marker has been painted (or the deadline: a slow machine
    may take many seconds to start Python and Textual, so the deadline is generous)."""
    out = b""
    end = time.monotonic() + within
    while time.monotonic() < end and not all(m in out for m in markers):
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out


REAPED: set[int] = set()


def wait_exit(pid: int, seconds: float, fd: int | None = None) -> int | None:
    """Wait for the child to exit, draining its terminal meanwhile (`fd`): a console writing
    its shutdown sequences into a full pty buffer would otherwise block, and so would the test."""
    end = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            REAPED.add(pid)
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= end:
            return None
        if fd is None:
            pause(0.05)
        else:
            read_until(fd, b"\0never", within=0.05)


@pytest.fixture
def console_in_pty(control: Control) -> Iterator[tuple[int, int]]:
    env = dict(
        os.environ,
        SIGNAL_API_TOKEN=control.token,
        TERM="xterm-256color",
        SIGNAL_CONSOLE_KEYMAP="/nonexistent/console-keys.yaml",
    )
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the console
        os.execvpe(
            sys.executable, [sys.executable, "-m", "stream", "console", "--api", control.url], env
        )
    try:
        yield pid, fd
    finally:
        if pid not in REAPED and wait_exit(pid, 0) is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        with contextlib.suppress(OSError):
            os.close(fd)


def test_paints_the_flow_list_and_quits_on_q(console_in_pty: tuple[int, int]) -> None:
    pid, fd = console_in_pty
    screen = read_until(fd, b"Flows", b"complete")
    assert b"Flows" in screen and b"complete" in screen, screen[-2000:]
    os.write(fd, b"q")
    assert wait_exit(pid, 60, fd) == 0


def test_exits_when_the_terminal_goes_away(console_in_pty: tuple[int, int]) -> None:
    pid, fd = console_in_pty
    assert b"Flows" in read_until(fd, b"Flows")
    os.close(fd)
    assert wait_exit(pid, 60) is not None
