"""Our side of Marketo's limits: rolling window, in-flight cap, and the daily-quota park."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from stream.marketo.limits import CallLimits, QuotaPark, RollingWindow, next_quota_reset


async def test_window_admits_max_calls_then_waits_a_window_after_completion() -> None:
    window = RollingWindow(3, 0.3)
    acquired: list[float] = []
    released: list[float] = []

    async def call() -> None:
        await window.acquire()
        acquired.append(time.monotonic())
        await asyncio.sleep(0.01)
        released.append(time.monotonic())
        await window.release()

    await asyncio.gather(*(call() for _ in range(9)))
    assert len(acquired) == 9
    acquired.sort()
    released.sort()
    # The (i+3)-th call may start only once the i-th has been answered a full window ago.
    for i in range(6):
        assert acquired[i + 3] >= released[i] + 0.3 - 1e-3


async def test_calls_in_flight_count_against_the_window() -> None:
    window = RollingWindow(2, 0.2)
    await window.acquire()
    await window.acquire()
    assert window.used() == 2
    assert window.headroom() == 0
    third = asyncio.create_task(window.acquire())
    await asyncio.sleep(0.3)  # longer than the window: in-flight calls never expire
    assert not third.done()
    await window.release()
    released_at = time.monotonic()
    await asyncio.wait_for(third, 1)
    assert time.monotonic() >= released_at + 0.2 - 1e-3


async def test_block_for_holds_every_caller() -> None:
    window = RollingWindow(10, 5)
    # Timed from before the block: the block runs from its own call, so a start read after it
    # returned (late, on a busy machine) would find less than 0.2 s left.
    start = time.monotonic()
    await window.block_for(0.2)
    await window.acquire()
    assert time.monotonic() - start >= 0.2 - 1e-3
    await window.release()


async def test_window_uses_the_given_clock() -> None:
    now = [100.0]
    window = RollingWindow(1, 20, clock=lambda: now[0])
    await window.acquire()
    await window.release()
    assert window.headroom() == 0
    now[0] += 19.9
    assert window.headroom() == 0
    now[0] += 0.2
    assert window.headroom() == 1


def test_window_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RollingWindow(0, 20)
    with pytest.raises(ValueError):
        RollingWindow(1, 0)
    with pytest.raises(ValueError):
        CallLimits(max_calls=1, window_s=1, max_in_flight=0)


async def test_in_flight_cap_holds() -> None:
    limits = CallLimits(max_calls=1000, window_s=1, max_in_flight=4)
    peak = 0

    async def call() -> None:
        nonlocal peak
        async with limits.slot():
            peak = max(peak, limits.running)
            await asyncio.sleep(0.02)

    await asyncio.gather(*(call() for _ in range(20)))
    assert peak == 4
    assert limits.running == 0
    assert limits.window.used() == 20


async def test_slot_released_when_the_call_fails() -> None:
    limits = CallLimits(max_calls=5, window_s=1, max_in_flight=1)
    with pytest.raises(RuntimeError):
        async with limits.slot():
            raise RuntimeError("boom")
    assert limits.running == 0
    async with limits.slot():  # the in-flight slot came back
        pass


def _utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        # Winter: CST is UTC-6, midnight = 06:00 UTC.
        (_utc(2026, 11, 28, 12, 0), _utc(2026, 11, 29, 6, 0)),
        # Just after local midnight: the next reset is a whole day away.
        (_utc(2026, 11, 28, 6, 0, 1), _utc(2026, 11, 29, 6, 0)),
        # Exactly at local midnight: that reset has happened; the next is tomorrow.
        (_utc(2026, 11, 28, 6, 0), _utc(2026, 11, 29, 6, 0)),
        # Evening in Chicago is already tomorrow in UTC.
        (_utc(2026, 11, 29, 3, 0), _utc(2026, 11, 29, 6, 0)),
        # Summer: CDT is UTC-5.
        (_utc(2026, 7, 1, 12, 0), _utc(2026, 7, 2, 5, 0)),
        # The day DST starts (8 March 2026): midnight is still CST.
        (_utc(2026, 3, 7, 12, 0), _utc(2026, 3, 8, 6, 0)),
        (_utc(2026, 3, 8, 12, 0), _utc(2026, 3, 9, 5, 0)),
        # The day DST ends (1 November 2026).
        (_utc(2026, 10, 31, 12, 0), _utc(2026, 11, 1, 5, 0)),
        (_utc(2026, 11, 1, 12, 0), _utc(2026, 11, 2, 6, 0)),
    ],
)
def test_next_quota_reset(now: datetime, reset: datetime) -> None:
    assert next_quota_reset(now) == reset


def test_next_quota_reset_needs_an_aware_time() -> None:
    with pytest.raises(ValueError):
        next_quota_reset(datetime(2026, 11, 28, 12, 0))


def test_quota_park_until_reset() -> None:
    now = [_utc(2026, 11, 28, 12, 0)]
    park = QuotaPark(now=lambda: now[0])
    assert park.parked_until() is None
    until = park.park()
    assert until == _utc(2026, 11, 29, 6, 0)
    now[0] += timedelta(hours=17, minutes=59)
    assert park.parked_until() == until
    now[0] += timedelta(minutes=1)
    assert park.parked_until() is None


def test_quota_park_clear() -> None:
    park = QuotaPark(now=lambda: _utc(2026, 11, 28, 12, 0))
    park.park()
    park.clear()
    assert park.parked_until() is None


async def test_a_slot_whose_call_never_went_out_leaves_no_mark() -> None:
    limits = CallLimits(max_calls=1, window_s=60, max_in_flight=1)
    async with limits.slot() as ticket:
        ticket.sent = False
    assert limits.window.used() == 0
    async with limits.slot():
        pass
    assert limits.window.used() == 1
