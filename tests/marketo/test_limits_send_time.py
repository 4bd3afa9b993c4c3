"""The rolling window counts a call from when it was sent, not from its answer
(stream/marketo/limits.py): Marketo stamps a call on arrival, so a slow answer must not hold
the window a call's duration longer. A guard (`guard_s`) covers a call still on its way; an
answer that came sooner than the guard stamps the call at the answer."""

from __future__ import annotations

from simulators.marketo.sandbox import Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.limits import CallLimits, RollingWindow
from tests.support.marketo import settings_for


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_slow_call_counts_from_its_send_plus_the_guard() -> None:
    clock = Clock()
    limits = CallLimits(max_calls=1, window_s=20, max_in_flight=1, clock=clock)
    async with limits.slot() as ticket:
        ticket.going()  # sent at 100
        clock.now = 105.0  # answered five seconds later
    assert limits.window.used() == 1
    clock.now = 100.0 + 20 + limits.window.guard_s - 0.01
    assert limits.window.headroom() == 0
    clock.now = 100.0 + 20 + limits.window.guard_s + 0.01  # well before 105 + 20
    assert limits.window.headroom() == 1


async def test_a_fast_answer_counts_from_the_answer() -> None:
    clock = Clock()
    window = RollingWindow(1, 20, clock=clock, guard_s=0.1)
    await window.acquire()
    clock.now = 100.03
    await window.release(sent_at=100.0)
    clock.now = 120.02
    assert window.headroom() == 0  # counted from 100.03, the answer, not 100.1
    clock.now = 120.04
    assert window.headroom() == 1


async def test_a_call_that_never_said_when_it_went_counts_from_its_answer() -> None:
    clock = Clock()
    limits = CallLimits(max_calls=1, window_s=20, max_in_flight=1, clock=clock)
    async with limits.slot():
        clock.now = 103.0
    clock.now = 122.9
    assert limits.window.headroom() == 0
    clock.now = 123.01
    assert limits.window.headroom() == 1


async def test_answers_out_of_send_order_expire_by_send_time() -> None:
    clock = Clock()
    window = RollingWindow(2, 20, clock=clock, guard_s=0.0)
    await window.acquire()
    await window.acquire()
    clock.now = 110.0
    await window.release(sent_at=101.0)  # sent second, answered first
    clock.now = 112.0
    await window.release(sent_at=100.0)  # sent first, answered last
    assert window.sent == 2
    clock.now = 120.5
    assert window.used() == 1  # the one sent at 100 is out, the one sent at 101 still counts
    clock.now = 121.5
    assert window.used() == 0


async def test_a_call_that_never_left_leaves_no_mark() -> None:
    clock = Clock()
    limits = CallLimits(max_calls=1, window_s=20, max_in_flight=1, clock=clock)
    async with limits.slot() as ticket:
        ticket.sent = False
    assert limits.window.used() == 0
    assert limits.window.sent == 0


async def test_the_client_stamps_its_calls_when_they_go_out(sandbox: Sandbox) -> None:
    """Through the transport: a call that took "five seconds" (the injected clock moved while
    Marketo answered) frees its place a window after it was sent, and the sandbox, which
    stamps calls on arrival, refuses nothing."""
    lead_id = sandbox.add_lead(email="sent@example.com")
    clock = Clock()

    async def slow_answer(_: object) -> None:
        clock.now += 5.0  # the call hook runs once the answer is in, before the slot is freed

    settings = settings_for(sandbox, rate_limit_calls=1, rate_window_s=20.0)
    async with MarketoClient(settings, clock=clock, on_call=slow_answer) as client:
        await client.authenticate()  # the token first: its call moves the clock too
        sent_at = clock.now
        [result] = await client.request_campaign(1001, [lead_id])
        assert result.failure is None
        window = client.limits.window
        assert window.sent == 1
        clock.now = sent_at + 20 + window.guard_s - 0.01
        assert window.headroom() == 0
        clock.now = sent_at + 20 + window.guard_s + 0.01  # not sent_at + 5 + 20
        assert window.headroom() == 1
    assert not [c for c in sandbox.calls("campaigns.trigger") if c.code in ("606", "615")]
