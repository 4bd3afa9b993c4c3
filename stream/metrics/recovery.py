"""Recovery as operators see it: the grace period, what the ledger holds without a final
outcome, what was re-driven, what was given up on, and how old the oldest pending item is.

Control's recovery service fills one `RecoveryStatus` per scan (the counts are read from the
ledger, so they survive a restart); the metrics routes put it in the troubleshooting JSON
(`recovery`) and in Prometheus (`signal_recovery_*`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["RecoveryStatus"]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class RecoveryStatus:
    grace_s: float
    horizon_s: float
    every_s: float
    max_redrives: int
    unpublished: int = 0
    """Changes accepted by the ingest API that the broker has not acknowledged yet."""
    unrouted: int = 0
    """Changes published longer than the grace ago with no outcome for any flow."""
    queued_overdue: int = 0
    """(change, flow) pairs queued for Marketo longer than the grace ago, with no answer."""
    redriven_total: int = 0
    """Redrives recovery made, all time."""
    stranded: int = 0
    """Pairs re-driven the allowed number of times and still without a final outcome."""
    nothing_expected: int = 0
    """Changes recovery found no flow would act on (not evaluated again)."""
    oldest_age_s: float | None = None
    """Age of the oldest unpublished, unrouted or overdue queued item; None when there is none."""
    defer_max_s: float | None = None
    """How long a change may stay deferred before it is given up on (failed outcomes)."""
    defer_limit: int | None = None
    """How many changes may wait deferred at once."""
    deferred: int = 0
    """Changes waiting, without any outcome, for an event control's catalog does not hold."""
    deferral_expired: int = 0
    """Deferred changes given up on and recorded as failed, all time."""
    scans: int = 0
    failed_scans: int = 0
    last_scan_at: datetime | None = None
    last_error: str | None = None
    reseeded_keys: int | None = None
    """Delivered keys written back to `signal-delivered` at start (None until done)."""
    reseed_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "grace_s": self.grace_s,
            "horizon_s": self.horizon_s,
            "every_s": self.every_s,
            "max_redrives": self.max_redrives,
            "unpublished": self.unpublished,
            "unrouted": self.unrouted,
            "queued_overdue": self.queued_overdue,
            "redriven_total": self.redriven_total,
            "stranded": self.stranded,
            "nothing_expected": self.nothing_expected,
            "oldest_age_s": self.oldest_age_s,
            "defer_max_s": self.defer_max_s,
            "defer_limit": self.defer_limit,
            "deferred": self.deferred,
            "deferral_expired": self.deferral_expired,
            "scans": self.scans,
            "failed_scans": self.failed_scans,
            "last_scan_at": _iso(self.last_scan_at),
            "last_error": self.last_error,
            "reseeded_keys": self.reseeded_keys,
            "reseed_s": self.reseed_s,
        }
