"""The connection circuit breaker's state machine (stream/core/breaker.py) on a fake clock."""

from __future__ import annotations

import pytest

from stream.core.breaker import Breaker, BreakerPolicy, BreakerState


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def breaker(
    threshold: int = 3, open_s: float = 10.0, max_open_s: float = 35.0
) -> tuple[Breaker, Clock]:
    clock = Clock()
    return Breaker(BreakerPolicy(threshold, open_s, max_open_s), clock=clock), clock


def test_opens_after_the_threshold_of_failures_in_a_row() -> None:
    b, clock = breaker()
    for _ in range(2):
        assert b.allow()
        b.failed("unreachable")
    assert b.view().state is BreakerState.CLOSED
    assert b.allow()
    b.failed("unreachable")
    assert b.view().state is BreakerState.OPEN
    view = b.view()
    assert view.failures == 3 and view.reason == "unreachable"
    assert view.retry_at == clock.t + 10 and view.changed_at == clock.t
    assert not b.allow()
    assert b.retry_after() == 10


def test_an_answer_between_failures_resets_the_count() -> None:
    b, _ = breaker()
    for _ in range(5):
        b.failed("503")
        b.failed("503")
        b.succeeded()
    assert b.view().state is BreakerState.CLOSED and b.view().failures == 0


def test_after_the_backoff_one_probe_goes_and_its_success_closes() -> None:
    b, clock = breaker(threshold=1)
    b.failed("down")
    clock.t += 9.9
    assert not b.allow()
    clock.t += 0.1
    assert b.allow()  # the probe
    assert b.view().state is BreakerState.HALF_OPEN
    assert not b.allow() and not b.allow()  # the others wait for its answer
    assert b.retry_after() == 10
    b.succeeded()
    assert b.view().state is BreakerState.CLOSED
    assert b.allow() and b.allow()
    view = b.view()
    assert view.retry_at is None and view.opened == 0 and view.changed_at == clock.t


def test_a_failed_probe_opens_again_for_twice_as_long_up_to_the_cap() -> None:
    b, clock = breaker(threshold=1)
    b.failed("down")
    backoffs = []
    for _ in range(4):
        retry_at = b.view().retry_at
        assert retry_at is not None
        backoffs.append(retry_at - clock.t)
        clock.t = retry_at
        assert b.allow()
        b.failed("still down")
        assert b.view().state is BreakerState.OPEN
    assert backoffs == [10, 20, 35, 35]


def test_a_released_probe_goes_to_the_next_caller() -> None:
    b, clock = breaker(threshold=1)
    b.failed("down")
    clock.t += 10
    assert b.allow()
    b.released()
    assert b.view().state is BreakerState.HALF_OPEN
    assert b.allow()
    assert not b.allow()


def test_reset_closes_at_once() -> None:
    b, _ = breaker(threshold=1)
    b.failed("401")
    assert not b.allow()
    b.reset()
    assert b.view().state is BreakerState.CLOSED and b.allow()
    assert b.view().failures == 0


def test_a_closed_breaker_never_changed() -> None:
    b, _ = breaker()
    view = b.view()
    assert view.state is BreakerState.CLOSED and view.changed_at is None
    assert b.retry_after() == 0


@pytest.mark.parametrize(
    ("threshold", "open_s", "max_open_s"), [(0, 1.0, 2.0), (1, 0.0, 2.0), (1, 3.0, 2.0)]
)
def test_nonsense_policies_are_refused(threshold: int, open_s: float, max_open_s: float) -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(threshold, open_s, max_open_s)
