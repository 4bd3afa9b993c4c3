"""Pipeline workers' heartbeats on `signal-workers`, and how control counts the live ones.

Why heartbeats and not the consumer group's members: the embedded broker never drops a member
from `signal-pipeline` (measured: a consumer stopped cleanly, or SIGKILLed, was still listed as
a `Stable` member 40 s later, and left only when another consumer joined), so DescribeGroups
would show a dead worker as alive. A beat every `EVERY_S` from each worker, a last beat saying
`stopping` on a clean stop, and a window of three beats are right on any broker.

Plain code (no Kafka): the pipeline publishes `beat_bytes`, control feeds what it reads to
`LiveWorkers`.

A beat also carries the worker's connection circuit breakers (`stream.core.breaker`), so
control can show operators which connections are paused: per connection the state, since when
(wall clock), when the next probe may go and the failures in a row. With several workers the
newest change of a connection's breaker wins (a partition moved to another worker carries its
connection's breaker state along only once that worker's breaker changes).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stream.core.breaker import BreakerView

EVERY_S = 2.0
"""A worker's beat interval: a killed worker drops out of the count within `3 * EVERY_S` (the
same 6 s as its consumer session, `stream.faust_settings.SESSION_TIMEOUT_S`)."""

MISSED_BEATS = 3


def worker_id() -> str:
    """Host, process and a random part: two workers never share an id, even across restarts
    that reuse a pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def breaker_entries(
    views: Mapping[str, BreakerView], *, monotonic_now: float, at: datetime
) -> dict[str, dict[str, Any]]:
    """Breakers as a beat carries them: the breaker's monotonic times turned into wall-clock
    ISO times by their distance from `monotonic_now` (which is `at`)."""

    def wall(t: float | None) -> str | None:
        return None if t is None else (at + timedelta(seconds=t - monotonic_now)).isoformat()

    return {
        cid: {
            "state": view.state.value,
            "since": wall(view.changed_at),
            "retry_at": wall(view.retry_at),
            "failures": view.failures,
        }
        for cid, view in views.items()
    }


def beat_bytes(
    worker: str,
    at: datetime,
    *,
    stopping: bool = False,
    breakers: Mapping[str, Mapping[str, Any]] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "worker": worker,
        "at": at.isoformat(),
        "every_s": EVERY_S,
        "stopping": stopping,
    }
    if breakers:
        body["breakers"] = breakers
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Beat:
    worker: str
    every_s: float
    stopping: bool
    breakers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Connection id -> breaker entry (`breaker_entries`); entries of another shape are left
    out."""


_BREAKER_STATES = frozenset({"closed", "open", "half_open"})


def _breakers(raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        return {}
    kept: dict[str, dict[str, Any]] = {}
    for cid, entry in raw.items():
        if not isinstance(entry, dict) or entry.get("state") not in _BREAKER_STATES:
            continue
        failures = entry.get("failures")
        kept[str(cid)] = {
            "state": entry["state"],
            "since": entry.get("since") if isinstance(entry.get("since"), str) else None,
            "retry_at": entry.get("retry_at") if isinstance(entry.get("retry_at"), str) else None,
            "failures": failures if isinstance(failures, int) else 0,
        }
    return kept


def parse_beat(value: bytes | None) -> Beat | None:
    """A beat, or None for anything else on the topic (a tombstone, a foreign record)."""
    if not value:
        return None
    try:
        body = json.loads(value)
        worker, every = body["worker"], float(body.get("every_s", EVERY_S))
        stopping = bool(body.get("stopping", False))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(worker, str) or not worker or not 0 < every <= 3600:
        return None
    return Beat(worker, every, stopping, _breakers(body.get("breakers")))


@dataclass
class LiveWorkers:
    """The workers heard from within `MISSED_BEATS` of their interval, by the reader's clock.

    `sent_at` (the record's timestamp, the worker's clock) only keeps old beats out when the
    reader catches up with the topic after a start; the age of a beat is otherwise measured
    from when the reader saw it, so clocks of other hosts do not matter.
    """

    _last: dict[str, tuple[float, float]] = field(default_factory=dict)
    """worker -> (seen at, seconds until stale)."""
    _breakers: dict[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    """worker -> its last beat's breakers."""

    def saw(self, beat: Beat, *, seen_at: float, sent_at: float | None = None) -> None:
        window = MISSED_BEATS * beat.every_s
        if beat.stopping:
            self._last.pop(beat.worker, None)
            self._breakers.pop(beat.worker, None)
            return
        if sent_at is not None and seen_at - sent_at > window:
            return
        self._last[beat.worker] = (seen_at, window)
        self._breakers[beat.worker] = beat.breakers

    def count(self, now: float) -> int:
        stale = [w for w, (at, window) in self._last.items() if now - at > window]
        for worker in stale:
            del self._last[worker]
            self._breakers.pop(worker, None)
        return len(self._last)

    def breakers(self, now: float) -> dict[str, dict[str, Any]]:
        """The live workers' connection breakers; per connection the entry that changed last
        (one that never changed, `since` None, only when no worker has another)."""
        self.count(now)
        merged: dict[str, dict[str, Any]] = {}
        for entries in self._breakers.values():
            for cid, entry in entries.items():
                held = merged.get(cid)
                if held is None or (entry["since"] or "") > (held["since"] or ""):
                    merged[cid] = dict(entry)
        return dict(sorted(merged.items()))
