"""Faults the Certain sandbox can inject (admin `POST /_sandbox/faults`, `/_sandbox/latency`):
what a poller meets in production — slow answers, bursts of 5xx, a 401 after a password change,
and records it cannot read — so each can be tested with the operator's view of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StatusFault:
    status: int
    remaining: int

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "remaining": self.remaining}


@dataclass
class Faults:
    """Injected trouble: extra latency, the next N calls failing with an HTTP status (5xx, or
    401 as after a password change), the next N records served malformed."""

    latency_ms: float = 0.0
    statuses: list[StatusFault] = field(default_factory=list)
    malformed: int = 0
    malformed_sessions: int = 0

    def take_status(self) -> int | None:
        while self.statuses:
            head = self.statuses[0]
            if head.remaining <= 0:
                self.statuses.pop(0)
                continue
            head.remaining -= 1
            return head.status
        return None

    def clear(self) -> None:
        self.latency_ms = 0.0
        self.statuses.clear()
        self.malformed = 0
        self.malformed_sessions = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "latencyMs": self.latency_ms,
            "statuses": [f.as_dict() for f in self.statuses if f.remaining > 0],
            "malformed": self.malformed,
            "malformedSessions": self.malformed_sessions,
        }


MALFORMED_VARIANTS: tuple[tuple[str, Callable[[dict[str, Any]], None]], ...] = (
    ("registrationCode missing", lambda r: r.pop("registrationCode", None)),
    ("dateModified unparseable", lambda r: r.__setitem__("dateModified", "31/13/2026 25:61")),
    ("profile not an object", lambda r: r.__setitem__("profile", "<profile unavailable>")),
)
"""How a record is broken when a malformed-record fault is pending (cycled in this order)."""

MALFORMED_SESSION_VARIANTS: tuple[tuple[str, Callable[[dict[str, Any]], None]], ...] = (
    ("sessionCode missing", lambda r: r.pop("sessionCode", None)),
    ("dateModified unparseable", lambda r: r.__setitem__("dateModified", "31/13/2026 25:61")),
    ("regSessionStatus not text", lambda r: r.__setitem__("regSessionStatus", 3)),
)
"""How a session registration record is broken (`malformedSessions` faults), in turn."""
