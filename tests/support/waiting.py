"""Polling for a condition with a generous deadline: on a loaded machine anything may take a
while, and a fixed sleep either wastes time or loses the race."""

from __future__ import annotations

import asyncio
import select
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Deadlines are generous: they bound a broken test, they do not time a working one.
DEADLINE_S = 60.0


def pause(seconds: float) -> None:
    """A blocking sleep that works under libfaketime even outside `just test`.

    `time.sleep` waits with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), which libfaketime
    0.9.10 breaks on a shifted date (every call fails with EINVAL). `just test` patches
    `time.sleep` in every process of such a run (tests/faketime/sitecustomize.py); this works
    when pytest is started by hand too.
    """
    select.select([], [], [], seconds)


def _give_up_if(
    what: str,
    within: float,
    deadline: float,
    alive: Callable[[], str | None] | None,
    last: object,
) -> None:
    """Fail the wait when the watched process is gone or the deadline has passed."""
    if alive is not None and (reason := alive()) is not None:
        raise AssertionError(f"{what}: {reason}")
    if time.monotonic() > deadline:
        raise AssertionError(f"{what}: not within {within:g} s (last: {last!r})")


async def until(
    check: Callable[[], Awaitable[T]],
    what: str,
    *,
    within: float = DEADLINE_S,
    every: float = 0.05,
    alive: Callable[[], str | None] | None = None,
) -> T:
    """Await `check()` until it returns something truthy and return that.

    `alive()` returns a reason to stop waiting (e.g. "the worker exited: …") or None.
    """
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        _give_up_if(what, within, deadline, alive, result)
        await asyncio.sleep(every)


def until_sync(
    check: Callable[[], T],
    what: str,
    *,
    within: float = DEADLINE_S,
    every: float = 0.05,
    alive: Callable[[], str | None] | None = None,
) -> T:
    """`until` for code outside an event loop."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        _give_up_if(what, within, deadline, alive, result)
        pause(every)
