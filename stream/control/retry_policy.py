"""When a failed delivery is tried again (reliability.md §7, DESIGN 5 "Failures").

Technical failures are retried automatically: retry 1 at +5 min, retry 2 at +30 min, retry 3 at
+2 h, each ±20 % so a burst of failures does not come back as a burst; after the third retry
fails the item is abandoned until an operator resubmits. Data failures are held for the operator
and never retried automatically. A delivery parked by Marketo's daily quota waits for the reset
without using up a retry.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from stream.messages import FailureCategory, OutcomeRecord, OutcomeStatus, utcnow
from stream.store import RetryItem

DEFAULT_DELAYS_S: tuple[float, ...] = (300.0, 1800.0, 7200.0)
DEFAULT_JITTER = 0.2
PARK_FALLBACK_S = 3600.0
"""A parked outcome without a resume time is looked at again after an hour."""


@dataclass(frozen=True)
class RetryPolicy:
    delays_s: tuple[float, ...] = DEFAULT_DELAYS_S
    """Delay before retry n (n = 1, 2, 3 …); their number is the number of automatic retries."""
    jitter: float = DEFAULT_JITTER
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if any(d < 0 for d in self.delays_s):
            raise ValueError("retry delays must not be negative")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    @property
    def max_retries(self) -> int:
        return len(self.delays_s)

    def delay(self, retry: int) -> timedelta:
        """The jittered delay before automatic retry `retry` (1-based)."""
        base = self.delays_s[retry - 1]
        factor = 1.0 + self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 1.0
        return timedelta(seconds=base * factor)

    def item_for(self, outcome: OutcomeRecord, now: datetime | None = None) -> RetryItem | None:
        """The retry-queue state this outcome leads to; None when it needs no item (a success
        resolves an open item by itself, in the store)."""
        now = now or utcnow()
        common = {
            "change_id": outcome.change_id,
            "flow_id": outcome.flow_id,
            "flow_name": outcome.flow_name,
            "integration": outcome.connection_id or "",
            "updated_at": now,
            # The store resolves an item with a success processed after it was created; both
            # times come from the pipeline's clock, so control's clock never decides.
            "created_at": outcome.processed_at,
            "last_error": _last_error(outcome),
        }
        if outcome.status is OutcomeStatus.PARKED:
            resume = outcome.resume_at or now + timedelta(seconds=PARK_FALLBACK_S)
            return RetryItem(
                status="pending",
                category="technical",
                attempts=max(0, outcome.attempt - 1),
                reason=f"parked until {resume.isoformat()}: {outcome.reason or 'quota'}",
                next_attempt_at=resume,
                **common,  # type: ignore[arg-type]
            )
        if outcome.status is not OutcomeStatus.FAILED:
            return None
        if outcome.category is FailureCategory.DATA:
            return RetryItem(
                status="pending",
                category="data",
                attempts=outcome.attempt,
                reason=outcome.reason,
                next_attempt_at=None,
                **common,  # type: ignore[arg-type]
            )
        if outcome.attempt > self.max_retries:
            return RetryItem(
                status="abandoned",
                category="technical",
                attempts=outcome.attempt,
                reason=outcome.reason,
                next_attempt_at=None,
                **common,  # type: ignore[arg-type]
            )
        return RetryItem(
            status="pending",
            category="technical",
            attempts=outcome.attempt,
            reason=outcome.reason,
            next_attempt_at=outcome.processed_at + self.delay(outcome.attempt),
            **common,  # type: ignore[arg-type]
        )


def _last_error(outcome: OutcomeRecord) -> str | None:
    if outcome.marketo_code and outcome.reason:
        return f"{outcome.marketo_code}: {outcome.reason}"
    return outcome.reason or outcome.marketo_code
