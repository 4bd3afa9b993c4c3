"""Clocks for tests that must pass on any date.

Code that compares with "now" takes a clock; tests give it a `FakeClock`. Data that a running
service compares with its own (real) clock is dated relative to the moment the test runs
(`recent`), never at a fixed day that the calendar will leave behind.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# A fixed moment for pure code that takes `now` as an argument: the result depends only on the
# inputs, so the date itself does not matter.
FIXED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def now() -> datetime:
    """The real time in UTC, to the second (so that ISO strings compare cleanly)."""
    return datetime.now(UTC).replace(microsecond=0)


def recent(**before: float) -> datetime:
    """A moment `before` (timedelta keywords) ahead of the real now, e.g. `recent(hours=1)`."""
    return now() - timedelta(**before)


class FakeClock:
    """A clock that moves only when told to; callable like `datetime.now(UTC)`."""

    def __init__(self, start: datetime = FIXED) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
