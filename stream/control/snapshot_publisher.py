"""Sends the configuration snapshot to `signal-config` whenever it changed, debounced.

Apart from `ConfigService` because publishing is a loop with its own life (a task, a debounce,
retries and failure counts) while the service is about what the configuration is: the service
marks the snapshot dirty after every change and this loop decides when a snapshot goes out, so a
burst of edits costs one message and a single edit reaches workers in well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from stream.messages import ConfigSnapshot

__all__ = ["Publisher", "SnapshotPublisher"]

log = logging.getLogger("signal.control.config")

Publisher = Callable[[ConfigSnapshot], Awaitable[None]]
"""Sends one snapshot (to `signal-config`); raises when it could not."""

FIRST_ATTEMPTS = 10
STOP_FLUSH_S = 5.0


class SnapshotPublisher:
    """The publisher task: waits for `mark_dirty`, debounces, publishes the newest snapshot."""

    def __init__(
        self, publish: Publisher, build: Callable[[], ConfigSnapshot], *, debounce_s: float
    ) -> None:
        """`build` makes the snapshot as it is at the moment it is sent."""
        self._publish = publish
        self._build = build
        self._debounce_s = debounce_s
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published: ConfigSnapshot | None = None
        self.failures = 0
        """Failed publications since the last one that went out."""
        self._sending = False
        self._settled = asyncio.Condition()

    def mark_dirty(self) -> None:
        self._dirty.set()

    @property
    def pending(self) -> bool:
        """A change waits for its snapshot to go out (debounce, a failed publication) or its
        snapshot is being sent: `published` is about to move."""
        return self._dirty.is_set() or self._sending

    async def settled(self, timeout_s: float) -> bool:
        """Wait until no change waits for its snapshot (`pending` false); False after
        `timeout_s` with one still waiting (the broker down, say)."""
        async with self._settled:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._settled.wait_for(lambda: not self.pending)
            except TimeoutError:
                return False
        return True

    async def start(self) -> None:
        """Publish the first snapshot (retried: workers wait for it), then follow changes."""
        await self._publish_with_retry(self._build())
        self._task = asyncio.create_task(self._loop(), name="config-publisher")

    async def stop(self) -> None:
        """Flush a pending change (within a few seconds), then end the task."""
        task, self._task = self._task, None
        if task is None:
            return
        if self._dirty.is_set():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_FLUSH_S):
                    await self._publish_once()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce_s)
            try:
                await self._publish_once()
            except Exception:
                self.failures += 1
                log.exception("publishing the configuration snapshot failed; retrying")
                self._dirty.set()
                await asyncio.sleep(min(5.0, 0.5 * self.failures))

    async def _publish_once(self) -> None:
        self._dirty.clear()
        self._sending = True
        try:
            snapshot = self._build()
            await self._publish(snapshot)
            self.published = snapshot
            self.failures = 0
        finally:
            self._sending = False
            async with self._settled:
                self._settled.notify_all()

    async def _publish_with_retry(
        self, snapshot: ConfigSnapshot, attempts: int = FIRST_ATTEMPTS
    ) -> None:
        for attempt in range(1, attempts + 1):
            try:
                await self._publish(snapshot)
                self.published = snapshot
                return
            except Exception:
                if attempt == attempts:
                    raise
                log.warning("publishing the first snapshot failed (attempt %d)", attempt)
                await asyncio.sleep(min(5.0, 0.5 * attempt))
