"""Pipeline workers' heartbeats on `signal-workers`, and how control counts the live ones.

Why heartbeats and not the consumer group's members: the embedded broker never drops a member
from `signal-pipeline` (measured: a consumer stopped cleanly, or SIGKILLed, was still listed as
a `Stable` member 40 s later, and left only when another consumer joined), so DescribeGroups
would show a dead worker as alive. A beat every `EVERY_S` from each worker, a last beat saying
`stopping` on a clean stop, and a window of three beats are right on any broker.

Plain code (no Kafka): the pipeline publishes `beat_bytes`, control feeds what it reads to
`LiveWorkers`.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime

EVERY_S = 2.0
"""A worker's beat interval: a killed worker drops out of the count within `3 * EVERY_S` (the
same 6 s as its consumer session, `stream.faust_settings.SESSION_TIMEOUT_S`)."""

MISSED_BEATS = 3


def worker_id() -> str:
    """Host, process and a random part: two workers never share an id, even across restarts
    that reuse a pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def beat_bytes(worker: str, at: datetime, *, stopping: bool = False) -> bytes:
    return json.dumps(
        {"worker": worker, "at": at.isoformat(), "every_s": EVERY_S, "stopping": stopping},
        separators=(",", ":"),
    ).encode()


@dataclass(frozen=True, slots=True)
class Beat:
    worker: str
    every_s: float
    stopping: bool


def parse_beat(value: bytes | None) -> Beat | None:
    """A beat, or None for anything else on the topic (a tombstone, a foreign record)."""
    if not value:
        return None
    try:
        body = json.loads(value)
        worker, every = body["worker"], float(body.get("every_s", EVERY_S))
        stopping = bool(body.get("stopping", False))
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(worker, str) or not worker or not 0 < every <= 3600:
        return None
    return Beat(worker, every, stopping)


@dataclass
class LiveWorkers:
    """The workers heard from within `MISSED_BEATS` of their interval, by the reader's clock.

    `sent_at` (the record's timestamp, the worker's clock) only keeps old beats out when the
    reader catches up with the topic after a start; the age of a beat is otherwise measured
    from when the reader saw it, so clocks of other hosts do not matter.
    """

    _last: dict[str, tuple[float, float]] = field(default_factory=dict)
    """worker -> (seen at, seconds until stale)."""

    def saw(self, beat: Beat, *, seen_at: float, sent_at: float | None = None) -> None:
        window = MISSED_BEATS * beat.every_s
        if beat.stopping:
            self._last.pop(beat.worker, None)
            return
        if sent_at is not None and seen_at - sent_at > window:
            return
        self._last[beat.worker] = (seen_at, window)

    def count(self, now: float) -> int:
        stale = [w for w, (at, window) in self._last.items() if now - at > window]
        for worker in stale:
            del self._last[worker]
        return len(self._last)
