"""A stream fast enough to fill a delivery batch within `FILL_WAIT_S` waits for full batches
even while Marketo's window has room (`pause_after` in stream/pipeline/deliver_stage.py): in a
burst every partial batch is calls the last window lacks. Slower streams keep the delivery
window (bench.delivery_latency's 50 changes/s does not wait)."""

from __future__ import annotations

import math

import pytest

from stream.marketo.limits import RollingWindow
from stream.pipeline import deliver_stage
from stream.pipeline.deliver_stage import FILL_WAIT_S, pause_after

CALLS = 100
WINDOW_S = 20.0
FULL = 300
WITHIN_S = 0.25
CALL_S = 0.02


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_fast_stream_waits_for_the_batch_to_fill_though_the_window_has_room() -> None:
    window = RollingWindow(CALLS, WINDOW_S, clock=Clock())
    # 150 requests in the last half second: 300 are in after a second.
    pause = pause_after(
        {"mkto": (window, 0)},
        taken=150,
        full=FULL,
        busy_s=0.1,
        window_s=WITHIN_S,
        since_last_s=0.5,
    )
    assert pause == pytest.approx(1.0 - 0.1 - WITHIN_S)


def test_a_slower_stream_with_room_in_the_window_does_not_wait() -> None:
    window = RollingWindow(CALLS, WINDOW_S, clock=Clock())
    # 50 changes/s: 12 per delivery window, a batch would take six seconds to fill.
    pause = pause_after(
        {"mkto": (window, 0)},
        taken=12,
        full=FULL,
        busy_s=0.05,
        window_s=WITHIN_S,
        since_last_s=WITHIN_S,
    )
    assert WITHIN_S * FULL / 12 > FILL_WAIT_S
    assert pause == 0.0


def test_nothing_to_go_by_and_full_batches_do_not_wait() -> None:
    window = RollingWindow(CALLS, WINDOW_S, clock=Clock())
    first = pause_after(
        {"mkto": (window, 0)},
        taken=150,
        full=FULL,
        busy_s=0.1,
        window_s=WITHIN_S,
        since_last_s=None,
    )
    full = pause_after(
        {"mkto": (window, 0)},
        taken=FULL,
        full=FULL,
        busy_s=0.1,
        window_s=WITHIN_S,
        since_last_s=0.1,
    )
    assert first == full == 0.0


async def burst_calls(rate: int, total: int) -> tuple[int, list[int]]:
    """Calls and batch sizes for `total` requests routed at `rate` per second, taken as the
    deliver stage takes them (a batch, its calls, the pause, the delivery window), with a window
    that has room for every call."""
    clock = Clock()
    window = RollingWindow(100 * CALLS, WINDOW_S, clock=clock)
    taken = calls = 0
    sizes: list[int] = []
    previous: float | None = None
    while taken < total:
        arrived = min(total, math.floor(clock.now * rate))
        batch = min(FULL, arrived - taken)
        if batch == 0:
            clock.now += WITHIN_S
            continue
        taken += batch
        sizes.append(batch)
        started = clock.now
        before = window.sent
        for _ in range(math.ceil(batch / 300) + math.ceil(batch / 100)):
            await window.acquire()
            at = clock.now
            clock.now += CALL_S
            await window.release(sent_at=at)
            calls += 1
        pause = pause_after(
            {"mkto": (window, before)},
            taken=batch,
            full=FULL,
            busy_s=clock.now - started,
            window_s=WITHIN_S,
            since_last_s=None if previous is None else started - previous,
        )
        previous = started
        clock.now += pause + WITHIN_S
    return calls, sizes


@pytest.mark.parametrize("rate", [400, 800, 1500])
async def test_a_burst_spends_fewer_calls_than_without_the_wait(
    rate: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = 7_200  # 24 upserts and 72 campaign requests in full batches
    fewest = total // 300 + total // 100
    calls, sizes = await burst_calls(rate, total)
    monkeypatch.setattr(deliver_stage, "FILL_WAIT_S", 0.0)
    without, _ = await burst_calls(rate, total)
    # At 1,500/s the batches fill on their own while the stage is busy: nothing to save.
    assert calls < without if rate < 1500 else calls == without == fewest, (calls, without)
    # After a full batch the next is taken a delivery window later, so partial ones remain,
    # each filled by the wait that follows it.
    assert calls <= 1.25 * fewest, (calls, sizes)
