"""Marketo's per-instance limits, enforced on our side so Marketo never has to refuse us.

A refused call (606/615) still costs a round trip and, for 606, a whole window of waiting; keeping
under the limits ourselves is cheaper than bouncing off them. The window counts a call from the
moment it is sent until a full window after its answer arrived: Marketo stamps a call when it
receives it, which is after we send it and before we hear back, so stamping at completion can
only over-estimate the count Marketo keeps — never under-estimate it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

MonotonicClock = Callable[[], float]
WallClock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

QUOTA_ZONE = ZoneInfo("America/Chicago")


def utc_now() -> datetime:
    return datetime.now(UTC)


class RollingWindow:
    """At most `max_calls` calls per rolling `window_s`, counting calls still in flight."""

    def __init__(
        self,
        max_calls: int,
        window_s: float,
        *,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.max_calls = max_calls
        self.window_s = window_s
        self._clock = clock
        self._done: deque[float] = deque()
        self._in_flight = 0
        self._blocked_until = 0.0
        self._changed = asyncio.Condition()

    def _expire(self, now: float) -> None:
        while self._done and self._done[0] <= now - self.window_s:
            self._done.popleft()

    def used(self) -> int:
        """Calls that still count against the window (in flight or recently answered)."""
        self._expire(self._clock())
        return len(self._done) + self._in_flight

    def headroom(self) -> int:
        return max(0, self.max_calls - self.used())

    def _wait_hint(self, now: float) -> float | None:
        """Seconds until a slot may free up by itself; None when only a release can free one."""
        if now < self._blocked_until:
            return self._blocked_until - now
        if self._done and len(self._done) + self._in_flight >= self.max_calls:
            return max(0.0, self._done[0] + self.window_s - now)
        return None

    async def acquire(self) -> None:
        async with self._changed:
            while True:
                now = self._clock()
                self._expire(now)
                if now >= self._blocked_until and self.used() < self.max_calls:
                    self._in_flight += 1
                    return
                hint = self._wait_hint(now)
                try:
                    # A small floor keeps a clock that moves in coarse steps from spinning.
                    timeout = None if hint is None else max(hint, 0.001)
                    await asyncio.wait_for(self._changed.wait(), timeout)
                except TimeoutError:
                    pass

    async def release(self, *, sent: bool = True) -> None:
        """Give the slot back; a call that never went out leaves no mark on the window."""
        async with self._changed:
            self._in_flight -= 1
            if sent:
                self._done.append(self._clock())
            self._changed.notify_all()

    async def block_for(self, seconds: float) -> None:
        """Send nothing for `seconds`: Marketo said the window is full (others share it)."""
        async with self._changed:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)
            self._changed.notify_all()


@dataclass(slots=True)
class Ticket:
    """Held while a call owns a slot; clear `sent` when nothing reached Marketo after all."""

    sent: bool = True


class CallLimits:
    """The in-flight cap and the rolling window, taken together for each call."""

    def __init__(
        self,
        *,
        max_calls: int,
        window_s: float,
        max_in_flight: int,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.window = RollingWindow(max_calls, window_s, clock=clock)
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._running = 0

    @property
    def running(self) -> int:
        return self._running

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Ticket]:
        async with self._in_flight:
            await self.window.acquire()
            self._running += 1
            ticket = Ticket()
            try:
                yield ticket
            finally:
                self._running -= 1
                await asyncio.shield(self.window.release(sent=ticket.sent))


def next_quota_reset(now: datetime) -> datetime:
    """When Marketo's daily quota resets: the next midnight in America/Chicago, in UTC."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(QUOTA_ZONE)
    tomorrow = local.date() + timedelta(days=1)
    midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=QUOTA_ZONE)
    return midnight.astimezone(UTC)


class QuotaPark:
    """Holds calls back after a 607 until the daily quota resets."""

    def __init__(self, *, now: WallClock = utc_now) -> None:
        self._now = now
        self._until: datetime | None = None

    def park(self) -> datetime:
        until = next_quota_reset(self._now())
        if self._until is None or until > self._until:
            self._until = until
        return self._until

    def parked_until(self) -> datetime | None:
        if self._until is not None and self._now() >= self._until:
            self._until = None
        return self._until

    def clear(self) -> None:
        self._until = None
