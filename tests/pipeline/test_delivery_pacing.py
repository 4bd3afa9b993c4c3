"""Delivery batches paced by Marketo's call budget (`pause_after` in
stream/pipeline/deliver_stage.py, `RollingWindow.spacing` in stream/marketo/limits.py).

A steady stream, simulated on an injected clock the way the deliver stage takes it (a batch, its
calls, the pause, the delivery window), never finds the window full when a call is due — so no
call waits for the window to roll over — and its batches grow as calls grow scarce; a quiet
stream and full batches do not wait at all."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from stream.marketo.limits import PACE_BURST, RollingWindow
from stream.pipeline.deliver_stage import MAX_PAUSE_S, pause_after

CALLS = 100
WINDOW_S = 20.0
DELIVER_MAX = 300
DELIVER_WITHIN_S = 0.25
CALL_S = 0.02


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Run:
    starts: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)
    full_when_due: int = 0


async def stream_at(rate: float, seconds: float) -> Run:
    """Changes arriving at `rate` per second, each a create_update_lead (an upsert per 300 leads,
    a campaign request per 100), delivered in batches as the stage takes them."""
    clock = Clock()
    window = RollingWindow(CALLS, WINDOW_S, clock=clock)
    run = Run()
    taken = 0
    previous: float | None = None
    while clock.now < seconds:
        arrived = math.floor(clock.now * rate)
        batch = min(DELIVER_MAX, arrived - taken)
        if batch == 0:
            clock.now += DELIVER_WITHIN_S
            continue
        taken += batch
        started = clock.now
        run.starts.append(started)
        run.sizes.append(batch)
        before = window.sent
        for _ in range(math.ceil(batch / 300) + math.ceil(batch / 100)):
            if window.headroom() == 0:
                run.full_when_due += 1
                clock.now = window._done[0] + WINDOW_S + 1e-6  # what the limiter waits for
            await window.acquire()
            run.sent.append(clock.now)
            sent_at = clock.now
            clock.now += CALL_S
            await window.release(sent_at=sent_at)
        pause = pause_after(
            {"mkto": (window, before)},
            taken=batch,
            full=DELIVER_MAX,
            busy_s=clock.now - started,
            window_s=DELIVER_WITHIN_S,
            since_last_s=None if previous is None else started - previous,
        )
        previous = started
        clock.now += pause + DELIVER_WITHIN_S
    return run


def most_in_a_window(times: list[float]) -> int:
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - WINDOW_S:
            first += 1
        most = max(most, last - first + 1)
    return most


async def test_a_steady_stream_never_finds_the_window_full() -> None:
    run = await stream_at(50, 120)
    assert run.full_when_due == 0
    assert most_in_a_window(run.sent) <= CALLS
    # Spread, not a rush then a stall: batches of two calls keep coming at the paced rate (90 %
    # of the window's), never more than a delivery window later.
    settled = [b - a for a, b in zip(run.starts, run.starts[1:], strict=False) if a > 20]
    paced = 2 * WINDOW_S / (CALLS * (1 - PACE_BURST))
    assert min(settled) >= 2 * WINDOW_S / CALLS
    assert max(settled) <= paced + DELIVER_WITHIN_S


async def test_batches_grow_as_calls_grow_scarce() -> None:
    run = await stream_at(50, 60)
    first = [n for at, n in zip(run.starts, run.sizes, strict=True) if at < 2]
    later = [n for at, n in zip(run.starts, run.sizes, strict=True) if at > 40]
    assert max(first) < min(later)


async def test_without_pacing_the_same_stream_stalls() -> None:
    """What pacing is for: batches taken every delivery window spend the window's calls in a
    rush and then wait for it to roll over."""
    clock = Clock()
    window = RollingWindow(CALLS, WINDOW_S, clock=clock)
    stalls = 0
    while clock.now < 60:
        for _ in range(2):
            if window.headroom() == 0:
                stalls += 1
                clock.now = window._done[0] + WINDOW_S + 1e-6
            await window.acquire()
            at = clock.now
            clock.now += CALL_S
            await window.release(sent_at=at)
        clock.now += DELIVER_WITHIN_S
    assert stalls > 0


async def test_a_quiet_stream_does_not_wait() -> None:
    run = await stream_at(0.5, 60)
    gaps = [b - a for a, b in zip(run.starts, run.starts[1:], strict=False)]
    assert all(n == 1 for n in run.sizes)
    assert max(gaps) <= 2.0 + DELIVER_WITHIN_S  # one change every 2 s, each taken as it came


async def spend(window: RollingWindow, calls: int, at: float) -> None:
    """`calls` calls sent and answered at once at `at`."""
    for _ in range(calls):
        await window.acquire()
        await window.release(sent_at=at)


async def test_a_full_batch_does_not_wait() -> None:
    clock = Clock()
    window = RollingWindow(CALLS, WINDOW_S, clock=clock)
    await spend(window, CALLS, 0.0)  # the window is full
    assert window.spacing(4) > WINDOW_S - 1
    pause = pause_after(
        {"mkto": (window, 0)},
        taken=DELIVER_MAX,
        full=DELIVER_MAX,
        busy_s=0.1,
        window_s=DELIVER_WITHIN_S,
        since_last_s=1.0,
    )
    assert pause == 0.0


async def test_a_pause_never_outlasts_filling_a_batch_nor_the_cap() -> None:
    clock = Clock()
    window = RollingWindow(CALLS, WINDOW_S, clock=clock)
    await spend(window, CALLS, 0.0)
    spent = {"mkto": (window, CALLS - 2)}
    # 100 requests came in the last second: 300 are in within three seconds.
    pause = pause_after(
        spent, taken=100, full=DELIVER_MAX, busy_s=0.5, window_s=0.25, since_last_s=1.0
    )
    assert pause == 3.0 - 0.5 - 0.25
    slow = pause_after(spent, taken=1, full=DELIVER_MAX, busy_s=0.0, window_s=0.0, since_last_s=60)
    assert slow == MAX_PAUSE_S


async def test_the_latest_connection_to_have_room_sets_the_pause() -> None:
    clock = Clock()
    busy, idle = RollingWindow(CALLS, WINDOW_S, clock=clock), RollingWindow(CALLS, WINDOW_S)
    await spend(busy, 12, 0.0)  # more than the bucket's burst: it is empty
    await spend(idle, 2, 0.0)
    pause = pause_after(
        {"busy": (busy, 10), "idle": (idle, 0)},
        taken=20,
        full=DELIVER_MAX,
        busy_s=0.0,
        window_s=0.0,
        since_last_s=None,
    )
    assert idle.spacing(2) == 0.0
    assert pause == busy.spacing(2) == pytest.approx(2 * WINDOW_S / (CALLS * (1 - PACE_BURST)))
