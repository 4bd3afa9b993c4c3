"""Marketo's per-instance limits, enforced on our side so Marketo never has to refuse us.

A refused call (606/615) still costs a round trip and, for 606, a whole window of waiting; keeping
under the limits ourselves is cheaper than bouncing off them. The window counts a call while it is
in flight and then for a window from the moment it was sent, plus a guard (`SEND_GUARD_S`) and
never past its answer: Marketo stamps a call when it receives it, after we send it and before we
hear back. Stamping at the answer, as this did before, added every call's duration to the window
(a burst of 268 calls waits out two windows, each later by its calls' time); the guard covers a
call that takes longer to reach Marketo than the one sent a window after it.

`RollingWindow.spacing` is the other half: when the next batch of calls should go so the
window's calls are spent evenly instead of in a rush followed by a stall until the window rolls
over. It is a token bucket over the calls sent (about 90 per 20 s with a burst of 10, as
reference/reliability.md suggests), which keeps any window of calls it paces within the limit.
The deliver stage waits that long between batches that were not full, so its batches — and the
leads each call carries — grow as calls become scarce, while a quiet stream never waits.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

MonotonicClock = Callable[[], float]
WallClock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

QUOTA_ZONE = ZoneInfo("America/Chicago")

SEND_GUARD_S = 1.0
"""How long after it was sent a call may still be on its way to Marketo (a one-way trip longer
than the next call's): the window stamps a call `SEND_GUARD_S` after sending it, or at its answer
when that came sooner. The stamp is taken as the request is handed to HTTP, and a busy worker
(a burst being routed on the same event loop) writes it later than that: with 0.1 s, a burst of
20,000 met a 606 on a loaded machine, which costs a whole window. An answer within the guard
stamps the call at the answer, which is never early, so only calls slower than a second count
from before Marketo saw them."""

PACE_BURST = 0.1
"""The share of the window's calls `RollingWindow.spacing` lets go at once (10 of 100): the rest
are paced at `(max_calls - burst) / window_s` (4.5 calls/s), so `burst + rate * window` calls at
most fall in one window — a steady stream paced so never finds it full."""


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
        guard_s: float = SEND_GUARD_S,
    ) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        if guard_s < 0:
            raise ValueError("guard_s must not be negative")
        self.max_calls = max_calls
        self.window_s = window_s
        self.guard_s = guard_s
        self._clock = clock
        self._done: list[float] = []
        """Stamps of answered calls, in order (calls sent in one order may answer in another)."""
        self._in_flight = 0
        self._blocked_until = 0.0
        self._changed = asyncio.Condition()
        self.sent = 0
        """Calls that reached (or may have reached) Marketo since the window was made."""
        burst = max(1, math.floor(max_calls * PACE_BURST))
        self._pace_rate = max(1, max_calls - burst) / window_s
        self._tolerance = burst / self._pace_rate
        self._due = 0.0
        """The token bucket's theoretical arrival time (GCRA): empty at `now + _tolerance`."""

    def _expire(self, now: float) -> None:
        gone = bisect.bisect_right(self._done, now - self.window_s)
        if gone:
            del self._done[:gone]

    def used(self) -> int:
        """Calls that still count against the window (in flight or recently sent)."""
        self._expire(self._clock())
        return len(self._done) + self._in_flight

    def headroom(self) -> int:
        return max(0, self.max_calls - self.used())

    def spacing(self, calls: int) -> float:
        """Seconds from now until a batch of `calls` calls should go: none while the token
        bucket holds them (a quiet stream goes at once), `calls / rate` once it is empty (a
        steady stream), and at least until a slot frees when the window is full or blocked."""
        if calls <= 0:
            return 0.0
        now = self._clock()
        self._expire(now)
        wait = max(self._due, now) + calls / self._pace_rate - self._tolerance - now
        if now < self._blocked_until or len(self._done) + self._in_flight >= self.max_calls:
            wait = max(wait, self._wait_hint(now) or 0.0)
        return max(0.0, wait)

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
                    async with asyncio.timeout(timeout):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    async def release(self, *, sent: bool = True, sent_at: float | None = None) -> None:
        """Give the slot back; a call that never went out leaves no mark on the window.

        A call sent at `sent_at` counts from `sent_at + guard_s`, or from now when its answer
        came sooner; without `sent_at`, from now (the answer), which can only over-count."""
        async with self._changed:
            self._in_flight -= 1
            if sent:
                now = self._clock()
                stamp = now if sent_at is None else min(now, sent_at + self.guard_s)
                bisect.insort(self._done, stamp)
                self.sent += 1
                # Into the bucket at its send; what the limiter let past an empty bucket (a
                # burst of full batches) is not owed afterwards.
                at = now if sent_at is None else sent_at
                due = max(self._due, at) + 1 / self._pace_rate
                self._due = min(due, now + self._tolerance)
            self._changed.notify_all()

    async def block_for(self, seconds: float) -> None:
        """Send nothing for `seconds`: Marketo said the window is full (others share it)."""
        async with self._changed:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)
            self._changed.notify_all()


@dataclass(slots=True)
class Ticket:
    """Held while a call owns a slot: call `going` as the request is handed to HTTP (the window
    counts the call from then), clear `sent` when nothing reached Marketo after all."""

    clock: MonotonicClock = time.monotonic
    sent: bool = True
    sent_at: float | None = None

    def going(self) -> None:
        """The request goes out now (each attempt: a retry counts from its own send)."""
        self.sent_at = self.clock()


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
        self._clock = clock
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
            ticket = Ticket(self._clock)
            try:
                yield ticket
            finally:
                self._running -= 1
                await asyncio.shield(self.window.release(sent=ticket.sent, sent_at=ticket.sent_at))


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
