"""Automatic retries of technical failures (DESIGN 5 "Failures", reliability §6–§7).

A failed delivery enters the retry queue once; what happens next depends on its kind:

- *technical* (connection, timeout, 5xx, Marketo 6xx other than auth and limits): retried up to
  three times, at +5 min, +30 min and +2 h, each ±20 % so a burst of failures does not come back
  as a burst. After the third retry fails the item is *abandoned* until an operator resubmits.
- *technical, configuration* (bad credentials, unknown campaign …): held for the operator;
  retrying cannot help until someone fixes the connection or the flow.
- *data* (validation, Marketo 1xxx, missing campaign id, untagged item): never retried
  automatically; held until the operator fixes the cause and resubmits.
- *parked* (daily quota 607, or throttling that outlasted the client): waits until the reset,
  then runs again *without* spending an attempt. Auth and rate-limit waits are handled inside the
  Marketo client and never reach the queue.

`attempts` on an item counts attempts that were spent; the next attempt is always
`attempts + 1`. The schedule math (`retry_delay`, `next_attempt_at`) and the transition on each
outcome (`plan_retry`, used by the record agent) are plain functions of their inputs, testable
with a fake clock and fixed jitter.

The scheduler claims due items with a lease (so two schedulers, or a scheduler restarted after a
crash, never run one attempt twice), marks each `retrying`, then republishes the archived change
to `signal-redrive`. A `retrying` item carries a watchdog: if no outcome arrives within
`outcome_timeout` the attempt counts as lost (an ambiguous technical failure) and the item is
scheduled like any other failure, so a vanished attempt can neither strand an item nor loop it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from stream.control.periodic import Periodic
from stream.control.redrive import Clock, Publish, redrive_record, utc_now
from stream.messages import FailureCategory, OutcomeRecord, OutcomeStatus, Redrive
from stream.store import RetryItem, Store
from stream.store.errors import StoreError
from stream.store.writer import Con

log = logging.getLogger("signal.control.retry")

Jitter = Callable[[], float]
"""A number in [0, 1); `random.random` in production, a constant in tests."""


@dataclass(frozen=True)
class RetrySchedule:
    """When retries happen. `delays[i]` is the wait before retry i+1."""

    delays: tuple[timedelta, ...] = (
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
    )
    jitter: float = 0.2
    outcome_timeout: timedelta = timedelta(minutes=30)
    """How long a `retrying` item waits for its outcome before the attempt counts as lost."""
    lease: timedelta = timedelta(minutes=2)
    """How long a claim holds an item while the scheduler marks and publishes it."""
    publish_backoff: timedelta = timedelta(seconds=30)
    """When the broker refuses a redrive, the item is due again after this long."""
    batch_size: int = 200
    poll_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")
        if any(d <= timedelta(0) for d in self.delays):
            raise ValueError("retry delays must be positive")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")

    @property
    def retries(self) -> int:
        return len(self.delays)

    @property
    def max_attempts(self) -> int:
        """The first attempt plus every retry."""
        return 1 + len(self.delays)


DEFAULT_SCHEDULE = RetrySchedule()
DEMO_SCHEDULE = RetrySchedule(
    delays=(timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=6)),
    outcome_timeout=timedelta(seconds=60),
    lease=timedelta(seconds=10),
    publish_backoff=timedelta(seconds=2),
    poll_interval_s=0.5,
)
"""Seconds instead of hours, so a demo (or a test) shows the whole schedule in a minute."""

PROFILES = {"default": DEFAULT_SCHEDULE, "demo": DEMO_SCHEDULE}


def schedule_for(profile: str) -> RetrySchedule:
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown retry profile {profile!r}; one of {sorted(PROFILES)}") from None


# --- the schedule: pure -------------------------------------------------------------------------


def retry_delay(schedule: RetrySchedule, retry: int, jitter: Jitter = random.random) -> timedelta:
    """The wait before retry number `retry` (1-based): its base delay ± `schedule.jitter`."""
    if not 1 <= retry <= schedule.retries:
        raise ValueError(f"retry must be 1..{schedule.retries}, got {retry}")
    base = schedule.delays[retry - 1]
    factor = 1.0 + schedule.jitter * (2.0 * jitter() - 1.0)
    return base * factor


def next_attempt_at(
    schedule: RetrySchedule, attempts_spent: int, now: datetime, jitter: Jitter = random.random
) -> datetime | None:
    """When the next attempt is due after `attempts_spent` attempts failed; None once the first
    attempt and every retry are used up (the item is abandoned)."""
    if attempts_spent < 1:
        raise ValueError(f"at least one attempt must have been spent, got {attempts_spent}")
    if attempts_spent >= schedule.max_attempts:
        return None
    return now + retry_delay(schedule, attempts_spent, jitter)


_TERMINAL_FOR_ITEM = frozenset(
    {
        OutcomeStatus.DELIVERED,
        OutcomeStatus.NOT_ACTIVATED,
        OutcomeStatus.FILTERED_OUT,
        OutcomeStatus.SKIPPED_DUPLICATE,
    }
)


def plan_retry(
    outcome: OutcomeRecord,
    existing: RetryItem | None,
    *,
    schedule: RetrySchedule,
    now: datetime,
    integration: str | None = None,
    jitter: Jitter = random.random,
) -> RetryItem | None:
    """The retry item after `outcome`, or None when the queue has nothing to do with it.

    - delivered / not activated / filtered out / already delivered: an open item is resolved;
      no item is created.
    - failed, data: held for the operator (`pending`, no next attempt), one attempt spent.
    - failed, technical and retryable: the next attempt on the schedule, or `abandoned` once
      every retry is spent.
    - failed, technical but not retryable (configuration): held for the operator.
    - parked: due again at `resume_at`, attempt not spent.
    - dry runs and replays never enter the queue (a replay reports its own failures).
    - an outcome older than the item's current attempt (a late answer to a lost attempt) is
      ignored.
    """
    if outcome.status is OutcomeStatus.WOULD_SEND or outcome.replay_id is not None:
        return None
    if existing is not None and outcome.attempt < existing.attempts:
        return None
    if outcome.status in _TERMINAL_FOR_ITEM:
        if existing is None or existing.status == "resolved":
            return None
        return replace(
            existing,
            status="resolved",
            next_attempt_at=None,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        )
    base = RetryItem(
        change_id=outcome.change_id,
        flow_id=outcome.flow_id,
        flow_name=outcome.flow_name,
        integration=integration or outcome.connection_id or "",
        status="pending",
        category="technical",
        attempts=outcome.attempt,
        reason=outcome.reason,
        last_error=_last_error(outcome),
        updated_at=now,
        created_at=existing.created_at if existing is not None else now,
        resubmitted_by=existing.resubmitted_by if existing is not None else None,
        resubmitted_at=existing.resubmitted_at if existing is not None else None,
    )
    if outcome.status is OutcomeStatus.PARKED:
        resume = outcome.resume_at or now + schedule.delays[0]
        spent = max(outcome.attempt - 1, existing.attempts if existing is not None else 0)
        return replace(base, attempts=spent, next_attempt_at=max(resume, now))
    if outcome.status is not OutcomeStatus.FAILED:
        return None
    if outcome.category is FailureCategory.DATA:
        return replace(base, category="data")
    if not outcome.retryable:
        return base
    due = next_attempt_at(schedule, outcome.attempt, now, jitter)
    return replace(base, status="pending" if due is not None else "abandoned", next_attempt_at=due)


def _last_error(outcome: OutcomeRecord) -> str | None:
    code, reason = outcome.marketo_code, outcome.reason or ""
    text = f"{code} {reason}".strip() if code and code not in reason else reason
    return text[:500] or None


def lost_attempt(
    item: RetryItem, *, schedule: RetrySchedule, now: datetime, jitter: Jitter = random.random
) -> RetryItem:
    """A `retrying` item whose outcome never came: the attempt counts as a technical failure."""
    spent = item.attempts + 1
    due = next_attempt_at(schedule, spent, now, jitter)
    why = (
        f"no outcome for attempt {spent} within "
        f"{int(schedule.outcome_timeout.total_seconds())} s; counted as a technical failure"
    )
    return replace(
        item,
        status="pending" if due is not None else "abandoned",
        attempts=spent,
        next_attempt_at=due,
        last_error=why,
        lease_owner=None,
        lease_until=None,
        updated_at=now,
    )


# --- the scheduler ------------------------------------------------------------------------------

_KEYS = "(SELECT unnest(?::VARCHAR[]) AS c, unnest(?::VARCHAR[]) AS f) k"
_MARK = f"""
    UPDATE retry_items r SET status = 'retrying', next_attempt_at = ?, lease_until = ?,
           updated_at = ?
    FROM {_KEYS}
    WHERE r.change_id = k.c AND r.flow_id = k.f AND r.status = 'pending' AND r.lease_owner = ?
    RETURNING r.change_id, r.flow_id
"""
_PUT_BACK = f"""
    UPDATE retry_items r SET status = 'pending', next_attempt_at = ?, lease_owner = NULL,
           lease_until = NULL, updated_at = ?
    FROM {_KEYS}
    WHERE r.change_id = k.c AND r.flow_id = k.f AND r.status = 'retrying' AND r.lease_owner = ?
"""


def _key_lists(items: list[RetryItem]) -> list[list[str]]:
    return [[i.change_id for i in items], [i.flow_id for i in items]]


def _mark_retrying(
    con: Con, items: list[RetryItem], owner: str, watchdog: datetime, now: datetime
) -> set[tuple[str, str]]:
    """Move claimed items to `retrying` in one statement. An item moves only while it is still
    `pending` under this scheduler's lease: an operator resubmit that took it meanwhile wins,
    and the item is not re-driven twice."""
    params = [watchdog, watchdog, now, *_key_lists(items), owner]
    return {(str(r[0]), str(r[1])) for r in con.execute(_MARK, params).fetchall()}


def _put_back(con: Con, items: list[RetryItem], owner: str, due: datetime, now: datetime) -> None:
    con.execute(_PUT_BACK, [due, now, *_key_lists(items), owner])


@dataclass
class SchedulerStats:
    runs: int = 0
    published: int = 0
    lost: int = 0
    abandoned: int = 0
    missing_changes: int = 0
    publish_failures: int = 0
    store_failures: int = 0


class RetryScheduler(Periodic):
    """Re-drives due retry items; see the module docstring."""

    task_name = "retry-scheduler"

    def __init__(
        self,
        store: Store,
        publish: Publish,
        clock: Clock = utc_now,
        schedule: RetrySchedule = DEFAULT_SCHEDULE,
        *,
        owner: str | None = None,
        jitter: Jitter = random.random,
    ) -> None:
        self._store = store
        self._publish = publish
        self._clock = clock
        self.schedule = schedule
        self.owner = owner or f"scheduler:{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._jitter = jitter
        self.stats = SchedulerStats()
        super().__init__()

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim what is due at `now`, re-drive it; returns the number of redrives published."""
        now = now or self._clock()
        self.stats.runs += 1
        s = self.schedule
        claimed = await self._store.claim_due_retries(
            now=now, limit=s.batch_size, owner=self.owner, lease_until=now + s.lease
        )
        if not claimed:
            return 0
        changes = await self._store.get_changes(i.change_id for i in claimed)
        wanted: list[RetryItem] = []
        for item in claimed:
            if item.status == "retrying":
                lost = lost_attempt(item, schedule=s, now=now, jitter=self._jitter)
                if await self._store.compare_and_set_retry(lost, expected=("retrying",)):
                    self.stats.lost += 1
                    if lost.status == "abandoned":
                        self.stats.abandoned += 1
                    log.warning("retry %s/%s: %s", item.change_id, item.flow_id, lost.last_error)
                continue
            if item.category == "data":
                # held for the operator: never re-driven by the schedule
                await self._store.compare_and_set_retry(
                    replace(item, next_attempt_at=None, lease_owner=None, lease_until=None),
                    expected=("pending",),
                )
                continue
            row = changes.get(item.change_id)
            if row is None:
                gone = replace(
                    item,
                    status="abandoned",
                    next_attempt_at=None,
                    last_error="the archived change is missing; cannot retry",
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
                if await self._store.compare_and_set_retry(gone, expected=("pending",)):
                    self.stats.missing_changes += 1
                continue
            wanted.append(item)
        if not wanted:
            return 0
        watchdog = now + s.outcome_timeout
        taken = await self._store.write(
            lambda con: _mark_retrying(con, wanted, self.owner, watchdog, now)
        )
        marked = [i for i in wanted if (i.change_id, i.flow_id) in taken]
        records = [
            redrive_record(
                changes[i.change_id],
                Redrive(flow_id=i.flow_id, attempt=i.attempts + 1, kind="retry"),
            )
            for i in marked
        ]
        if not records:
            return 0
        try:
            await self._publish(records)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.stats.publish_failures += 1
            log.error(
                "cannot publish %d retries (%s: %s); due again in %s",
                len(records),
                type(error).__name__,
                error,
                s.publish_backoff,
            )
            again = now + s.publish_backoff
            await self._store.write(lambda con: _put_back(con, marked, self.owner, again, now))
            return 0
        self.stats.published += len(records)
        log.info("re-drove %d due retries", len(records))
        return len(records)

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; a store or broker failure is logged and retried next round."""
        while True:
            try:
                published = await self.run_once(self._clock())
                if published >= self.schedule.batch_size:
                    self._wake.set()  # more may be due: go again without waiting
            except asyncio.CancelledError:
                raise
            except StoreError as error:
                self.stats.store_failures += 1
                log.error("retry scheduler: store failed: %s", error)
            except Exception:
                self.stats.store_failures += 1
                log.exception("retry scheduler round failed")
            await self.pause(self.schedule.poll_interval_s)
