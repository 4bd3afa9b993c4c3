"""What the operator sees of each Certain source: its state, last poll, records per poll, lag
and errors, as JSON (`GET /api/v1/sources`) and Prometheus families (`GET /metrics`,
`stream.metrics.prometheus.certain_source_families`).

States: `polling` (healthy; also while waiting for the next poll), `backing off` (the last poll
failed on a 5xx, a timeout or a refusal; the next try is at `retry_at`), `stopped: unauthorized`
(Certain answered 401/403: the source waits, without calling Certain again, until its
configuration changes), `stopped: no password` (nothing to authenticate with), `starting`,
`inactive` (configured with `active: false`).
Lag is the time between now and the newest `dateModified` seen, never negative (Certain's
clock may run ahead of Signal's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

POLLING = "polling"
BACKING_OFF = "backing off"
STOPPED_UNAUTHORIZED = "stopped: unauthorized"
STOPPED_NO_PASSWORD = "stopped: no password"
STARTING = "starting"
INACTIVE = "inactive"
STATES = (STARTING, POLLING, BACKING_OFF, STOPPED_UNAUTHORIZED, STOPPED_NO_PASSWORD, INACTIVE)


@dataclass(frozen=True, slots=True)
class CertainSourceStatus:
    source_id: str
    name: str
    account_code: str
    state: str
    last_poll_at: datetime | None = None
    last_poll_records: int = 0
    last_poll_changes: int = 0
    last_poll_requests: int = 0
    newest_modified: datetime | None = None
    polls: int = 0
    records_total: int = 0
    changes_total: int = 0
    rejected_total: int = 0
    requests_total: int = 0
    errors_total: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    retry_at: datetime | None = None

    def lag_s(self, now: datetime) -> float | None:
        if self.newest_modified is None:
            return None
        return max(0.0, (now - self.newest_modified).total_seconds())

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        moment = now or datetime.now(UTC)
        return {
            "id": self.source_id,
            "name": self.name,
            "account_code": self.account_code,
            "state": self.state,
            "last_poll_at": _iso(self.last_poll_at),
            "last_poll": {
                "records": self.last_poll_records,
                "changes": self.last_poll_changes,
                "requests": self.last_poll_requests,
            },
            "newest_modified": _iso(self.newest_modified),
            "lag_s": self.lag_s(moment),
            "totals": {
                "polls": self.polls,
                "records": self.records_total,
                "changes": self.changes_total,
                "rejected": self.rejected_total,
                "requests": self.requests_total,
                "errors": self.errors_total,
            },
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "retry_at": _iso(self.retry_at),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()
