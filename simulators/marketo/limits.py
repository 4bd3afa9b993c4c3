"""Marketo's instance-wide limits and the faults an operator can inject on top of them.

Rate (rolling window), daily quota (resets at the next midnight in US Central time) and outage
windows follow the injectable clock so tests need not wait; concurrency counts requests really
in flight, because it is about overlap, not time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo


class RateWindow:
    """At most `calls` accepted calls in any rolling `window_s` seconds."""

    def __init__(self, calls: int, window_s: float) -> None:
        self.calls = calls
        self.window_s = window_s
        self._stamps: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._stamps and self._stamps[0] <= now - self.window_s:
            self._stamps.popleft()

    def allow(self, now: float) -> bool:
        self._trim(now)
        return len(self._stamps) < self.calls

    def record(self, now: float) -> None:
        self._stamps.append(now)

    def used(self, now: float) -> int:
        self._trim(now)
        return len(self._stamps)

    def reset(self) -> None:
        self._stamps.clear()

    @property
    def message(self) -> str:
        window = int(self.window_s) if float(self.window_s).is_integer() else self.window_s
        return f"Max rate limit '{self.calls}' exceeded with in '{window}' secs"


class DailyQuota:
    """Calls per calendar day in `tz` (America/Chicago: Marketo's "12:00AM CST", DST included)."""

    def __init__(self, quota: int, tz: str) -> None:
        self.quota = quota
        self.tz = ZoneInfo(tz)
        self._day: date | None = None
        self._used = 0

    def _roll(self, now: float) -> None:
        today = datetime.fromtimestamp(now, self.tz).date()
        if today != self._day:
            self._day = today
            self._used = 0

    def allow(self, now: float) -> bool:
        self._roll(now)
        return self._used < self.quota

    def record(self, now: float) -> None:
        self._roll(now)
        self._used += 1

    def used(self, now: float) -> int:
        self._roll(now)
        return self._used

    def exhaust(self, now: float) -> None:
        self._roll(now)
        self._used = max(self._used, self.quota)

    def reset(self) -> None:
        self._day = None
        self._used = 0


@dataclass
class Fault:
    """The next `count` matching calls fail with a Marketo `code` or an HTTP `status`."""

    count: int
    code: str | None = None
    message: str | None = None
    status: int | None = None
    endpoint: str | None = None

    def matches(self, endpoint: str, path: str, rest: bool) -> bool:
        if self.endpoint is None:
            return rest
        return self.endpoint in (endpoint, path)

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "endpoint": self.endpoint,
        }


OutageMode = Literal["503", "drop"]


@dataclass
class Faults:
    queue: list[Fault] = field(default_factory=list)
    latency_ms: float = 0.0
    outage_until: float | None = None
    outage_mode: OutageMode = "503"

    def take(self, endpoint: str, path: str, rest: bool) -> Fault | None:
        """Consume one use of the first fault matching this call."""
        for fault in self.queue:
            if fault.count > 0 and fault.matches(endpoint, path, rest):
                fault.count -= 1
                if fault.count == 0:
                    self.queue.remove(fault)
                return fault
        return None

    def in_outage(self, now: float) -> bool:
        if self.outage_until is None:
            return False
        if now >= self.outage_until:
            self.outage_until = None
            return False
        return True

    def clear(self) -> None:
        self.queue.clear()
        self.latency_ms = 0.0
        self.outage_until = None
        self.outage_mode = "503"

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": [f.as_dict() for f in self.queue],
            "latencyMs": self.latency_ms,
            "outageUntil": self.outage_until,
            "outageMode": self.outage_mode,
        }
