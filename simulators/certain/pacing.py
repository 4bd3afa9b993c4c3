"""Pacing simulated traffic: items are released in batches as their offsets fall due, so a rate
of twenty a second arrives as a few batches a second rather than one burst, and a slow receiver
delays later batches instead of losing them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence

from simulators.certain.traffic import SimChange

TICK_S = 0.25


async def due_batches(
    items: Sequence[SimChange],
    *,
    stop: asyncio.Event | None = None,
    tick: float = TICK_S,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Sequence[SimChange]]:
    """Every item exactly once, in order, in batches of those due (unless `stop` is set first).
    The clock starts at the first iteration; the receiver's time counts against the schedule."""
    started = clock()
    position = 0
    while position < len(items):
        if stop is not None and stop.is_set():
            return
        elapsed = clock() - started
        due = position
        while due < len(items) and items[due].offset <= elapsed:
            due += 1
        if due > position:
            batch = items[position:due]
            position = due
            yield batch
            continue
        wait = max(0.0, min(tick, items[position].offset - elapsed))
        if stop is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await stop.wait()
        else:
            await asyncio.sleep(wait)
