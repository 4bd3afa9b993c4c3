"""A connection's circuit breaker: after repeated connection-wide failures, stop calling.

Why: when one Marketo instance is down (unreachable, refusing the credentials, answering 5xx),
every delivery for it spends its automatic retries on calls that cannot succeed, and holds the
connection's partition for each call's full retry budget. After `threshold` such calls in a row
the breaker *opens*: calls for that connection are refused at once, before they go out, and the
deliveries they carried are parked until `retry_at` (no attempt spent, nothing sent). Other
connections have breakers of their own and keep flowing.

When the back-off has passed, one call goes through as a probe (*half-open*); the others are
still refused. The probe's answer decides: Marketo answered → closed; it failed again → open
for twice as long (up to `max_open_s`). An operator's Save & Test (`reset`) closes it at once.

Plain code with an injected monotonic clock (seconds): no I/O, no asyncio, no wall time; the
Marketo client calls `allow` before a call and `succeeded` / `failed` / `released` after it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Breaker", "BreakerPolicy", "BreakerState", "BreakerView"]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker opens and for how long."""

    threshold: int = 5
    """Connection-wide call failures in a row that open it. Each such call has already spent the
    client's own retries, so five is minutes of a dead instance, not a blip."""
    open_s: float = 30.0
    """The first back-off; doubled after each failed probe."""
    max_open_s: float = 600.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("threshold must be at least 1")
        if not 0 < self.open_s <= self.max_open_s:
            raise ValueError("open_s must be positive and at most max_open_s")


@dataclass(frozen=True, slots=True)
class BreakerView:
    """What operators see of a breaker; times are the breaker's clock (monotonic seconds)."""

    state: BreakerState
    failures: int
    """Connection-wide failures in a row (reset by an answer)."""
    opened: int
    """How many times it opened since it last closed (the back-off's exponent)."""
    changed_at: float | None
    """When the state last changed; None if it never did."""
    retry_at: float | None
    """While open: when the next probe may go; None otherwise."""
    reason: str | None
    """The last connection-wide failure, as the client described it."""


class Breaker:
    """The state machine of one connection's breaker."""

    def __init__(self, policy: BreakerPolicy | None = None, *, clock: Callable[[], float]) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened = 0
        self._changed_at: float | None = None
        self._retry_at: float | None = None
        self._probe_out = False
        self._reason: str | None = None

    @property
    def state(self) -> BreakerState:
        return self._state

    def view(self) -> BreakerView:
        return BreakerView(
            self._state,
            self._failures,
            self._opened,
            self._changed_at,
            self._retry_at if self._state is BreakerState.OPEN else None,
            self._reason,
        )

    def allow(self) -> bool:
        """May a call go out now? Once the back-off has passed the first caller gets the probe
        (half-open); every other call is refused until the probe's answer is in."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            assert self._retry_at is not None
            if self._clock() < self._retry_at:
                return False
            self._move(BreakerState.HALF_OPEN)
        if self._probe_out:
            return False
        self._probe_out = True
        return True

    def retry_after(self) -> float:
        """Seconds until a refused call is worth trying again: the rest of the back-off, or
        while a probe is out, the first back-off (the probe's answer comes well within it)."""
        if self._state is BreakerState.OPEN and self._retry_at is not None:
            return max(0.0, self._retry_at - self._clock())
        return self.policy.open_s if self._state is BreakerState.HALF_OPEN else 0.0

    def succeeded(self) -> None:
        """Marketo answered (any answer that shows the instance up and the credentials good)."""
        self._failures = 0
        self._probe_out = False
        if self._state is not BreakerState.CLOSED:
            self._opened = 0
            self._retry_at = None
            self._move(BreakerState.CLOSED)

    def failed(self, reason: str) -> None:
        """A connection-wide failure: the instance unreachable, 5xx, the credentials refused."""
        self._failures += 1
        self._reason = reason
        if self._state is BreakerState.HALF_OPEN:
            self._probe_out = False
            self._open()
        elif self._state is BreakerState.CLOSED and self._failures >= self.policy.threshold:
            self._open()

    def released(self) -> None:
        """An allowed call ended without an answer either way (cancelled, refused locally):
        a probe it held goes to the next caller."""
        self._probe_out = False

    def reset(self) -> None:
        """Close at once: an operator's Save & Test found the connection working."""
        self._failures = 0
        self._probe_out = False
        self._opened = 0
        self._retry_at = None
        if self._state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED)

    def _open(self) -> None:
        p = self.policy
        backoff = min(p.max_open_s, p.open_s * 2**self._opened)
        self._opened += 1
        self._retry_at = self._clock() + backoff
        self._move(BreakerState.OPEN)

    def _move(self, state: BreakerState) -> None:
        self._state = state
        self._changed_at = self._clock()
