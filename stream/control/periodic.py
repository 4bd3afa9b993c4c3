"""A service of control that works in rounds: now, then every period or sooner when woken.

Control's retry scheduler and its recovery share the shape: one task that runs a round, waits
for its period or a `wake()`, and is cancelled on stop. A failed round is the subclass's to log
in `run`; the loop here only waits and stops.
"""

from __future__ import annotations

import asyncio
import contextlib


class Periodic:
    """`start()` runs `run()` as one named task; `stop()` cancels it and waits for it."""

    task_name = "periodic"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def run(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        """Run the next round now instead of waiting for the period."""
        self._wake.set()

    async def pause(self, seconds: float) -> None:
        """Wait `seconds` or until woken, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=self.task_name)
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
