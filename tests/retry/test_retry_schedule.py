"""The retry schedule as plain functions: cap, delays within jitter bounds, what each outcome
does to an item (E-01, reliability §6–§7)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stream.control.retry_scheduler import (
    DEFAULT_SCHEDULE,
    DEMO_SCHEDULE,
    RetrySchedule,
    lost_attempt,
    next_attempt_at,
    plan_retry,
    retry_delay,
    schedule_for,
)
from stream.messages import FailureCategory, OutcomeRecord, OutcomeStatus
from stream.store import RetryItem
from tests.support.clock import FIXED

LOW, MID, HIGH = (lambda: 0.0), (lambda: 0.5), (lambda: 0.999999)


def outcome(status: OutcomeStatus, attempt: int = 1, **extra: Any) -> OutcomeRecord:
    return OutcomeRecord(
        change_id="c1",
        flow_id="nurture",
        flow_name="Nurture",
        mode="live",
        connection_id="mkto",
        status=status,
        attempt=attempt,
        occurred_at=FIXED,
        processed_at=FIXED,
        **extra,
    )


def technical(attempt: int, retryable: bool = True) -> OutcomeRecord:
    return outcome(
        OutcomeStatus.FAILED,
        attempt,
        category=FailureCategory.TECHNICAL,
        reason="HTTP 503",
        retryable=retryable,
    )


def test_default_schedule_is_the_playbooks() -> None:
    assert DEFAULT_SCHEDULE.delays == (
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
    )
    assert DEFAULT_SCHEDULE.jitter == 0.2
    assert DEFAULT_SCHEDULE.max_attempts == 4
    assert schedule_for("demo") is DEMO_SCHEDULE
    assert all(d < timedelta(seconds=10) for d in DEMO_SCHEDULE.delays)
    with pytest.raises(ValueError, match="unknown retry profile"):
        schedule_for("fast")


@pytest.mark.parametrize(
    ("retry", "base"),
    [(1, timedelta(minutes=5)), (2, timedelta(minutes=30)), (3, timedelta(hours=2))],
)
def test_delays_stay_within_twenty_percent(retry: int, base: timedelta) -> None:
    assert retry_delay(DEFAULT_SCHEDULE, retry, LOW) == base * 0.8
    assert retry_delay(DEFAULT_SCHEDULE, retry, MID) == base
    assert base * 0.8 <= retry_delay(DEFAULT_SCHEDULE, retry, HIGH) < base * 1.2
    import random

    rng = random.Random(7)
    for _ in range(500):
        delay = retry_delay(DEFAULT_SCHEDULE, retry, rng.random)
        assert base * 0.8 <= delay <= base * 1.2


def test_delays_grow_even_at_the_jitter_extremes() -> None:
    worst = [retry_delay(DEFAULT_SCHEDULE, r, HIGH) for r in (1, 2)]
    best = [retry_delay(DEFAULT_SCHEDULE, r, LOW) for r in (2, 3)]
    assert worst[0] < best[0] and worst[1] < best[1]


def test_cap_is_one_attempt_plus_three_retries() -> None:
    assert next_attempt_at(DEFAULT_SCHEDULE, 1, FIXED, MID) == FIXED + timedelta(minutes=5)
    assert next_attempt_at(DEFAULT_SCHEDULE, 3, FIXED, MID) == FIXED + timedelta(hours=2)
    assert next_attempt_at(DEFAULT_SCHEDULE, 4, FIXED, MID) is None
    assert next_attempt_at(DEFAULT_SCHEDULE, 9, FIXED, MID) is None
    with pytest.raises(ValueError):
        next_attempt_at(DEFAULT_SCHEDULE, 0, FIXED, MID)
    with pytest.raises(ValueError):
        retry_delay(DEFAULT_SCHEDULE, 4, MID)


def test_a_schedule_is_configurable_and_checked() -> None:
    two = RetrySchedule(delays=(timedelta(seconds=1), timedelta(seconds=3)), jitter=0.0)
    assert two.max_attempts == 3
    assert next_attempt_at(two, 2, FIXED, HIGH) == FIXED + timedelta(seconds=3)
    assert next_attempt_at(two, 3, FIXED, HIGH) is None
    with pytest.raises(ValueError):
        RetrySchedule(jitter=1.0)
    with pytest.raises(ValueError):
        RetrySchedule(delays=(timedelta(0),))


def test_technical_failures_walk_the_schedule_then_abandon() -> None:
    item = plan_retry(technical(1), None, schedule=DEFAULT_SCHEDULE, now=FIXED, jitter=MID)
    assert item is not None
    assert (item.status, item.category, item.attempts) == ("pending", "technical", 1)
    assert item.next_attempt_at == FIXED + timedelta(minutes=5)
    assert item.integration == "mkto" and item.reason == "HTTP 503"
    now = FIXED
    for attempt, wait in ((2, timedelta(minutes=30)), (3, timedelta(hours=2))):
        now += timedelta(minutes=10)
        retrying = RetryItem(**{**_fields(item), "status": "retrying"})
        item = plan_retry(
            technical(attempt), retrying, schedule=DEFAULT_SCHEDULE, now=now, jitter=MID
        )
        assert item is not None and item.status == "pending"
        assert item.attempts == attempt and item.next_attempt_at == now + wait
        assert item.created_at == FIXED
    final = plan_retry(technical(4), item, schedule=DEFAULT_SCHEDULE, now=now, jitter=MID)
    assert final is not None
    assert (final.status, final.attempts, final.next_attempt_at) == ("abandoned", 4, None)


def test_data_failures_are_never_scheduled() -> None:
    failed = outcome(
        OutcomeStatus.FAILED,
        category=FailureCategory.DATA,
        reason="1003 Invalid email",
        marketo_code="1003",
    )
    item = plan_retry(failed, None, schedule=DEFAULT_SCHEDULE, now=FIXED, jitter=MID)
    assert item is not None
    assert (item.status, item.category, item.attempts, item.next_attempt_at) == (
        "pending",
        "data",
        1,
        None,
    )
    assert item.last_error == "1003 Invalid email"


def test_configuration_failures_are_held_for_the_operator() -> None:
    item = plan_retry(technical(1, retryable=False), None, schedule=DEFAULT_SCHEDULE, now=FIXED)
    assert item is not None
    assert (item.status, item.category, item.next_attempt_at) == ("pending", "technical", None)


def test_quota_parks_until_the_reset_without_spending_an_attempt() -> None:
    reset = FIXED + timedelta(hours=11)
    first = plan_retry(
        outcome(OutcomeStatus.PARKED, 1, marketo_code="607", resume_at=reset),
        None,
        schedule=DEFAULT_SCHEDULE,
        now=FIXED,
    )
    assert first is not None
    assert (first.status, first.attempts, first.next_attempt_at) == ("pending", 0, reset)
    # a retry (attempt 3) parked: still two spent, due at the reset
    spent = RetryItem(**{**_fields(first), "attempts": 2, "status": "retrying"})
    again = plan_retry(
        outcome(OutcomeStatus.PARKED, 3, resume_at=reset),
        spent,
        schedule=DEFAULT_SCHEDULE,
        now=FIXED,
    )
    assert again is not None and (again.attempts, again.next_attempt_at) == (2, reset)


def test_success_resolves_and_late_or_foreign_outcomes_are_ignored() -> None:
    open_item = plan_retry(technical(2), None, schedule=DEFAULT_SCHEDULE, now=FIXED, jitter=MID)
    assert open_item is not None
    for status in (
        OutcomeStatus.DELIVERED,
        OutcomeStatus.SKIPPED_DUPLICATE,
        OutcomeStatus.NOT_ACTIVATED,
    ):
        done = plan_retry(outcome(status, 3), open_item, schedule=DEFAULT_SCHEDULE, now=FIXED)
        assert done is not None and done.status == "resolved" and done.next_attempt_at is None
    assert (
        plan_retry(outcome(OutcomeStatus.DELIVERED), None, schedule=DEFAULT_SCHEDULE, now=FIXED)
        is None
    )
    assert plan_retry(technical(1), open_item, schedule=DEFAULT_SCHEDULE, now=FIXED) is None
    replayed = technical(1).model_copy(update={"replay_id": "rp-1"})
    assert plan_retry(replayed, None, schedule=DEFAULT_SCHEDULE, now=FIXED) is None
    dry = outcome(OutcomeStatus.WOULD_SEND)
    assert plan_retry(dry, None, schedule=DEFAULT_SCHEDULE, now=FIXED) is None


def test_a_lost_attempt_counts_and_can_abandon() -> None:
    item = plan_retry(technical(1), None, schedule=DEFAULT_SCHEDULE, now=FIXED, jitter=MID)
    assert item is not None
    retrying = RetryItem(**{**_fields(item), "status": "retrying", "lease_owner": "s"})
    lost = lost_attempt(retrying, schedule=DEFAULT_SCHEDULE, now=FIXED, jitter=MID)
    assert (lost.status, lost.attempts, lost.lease_owner) == ("pending", 2, None)
    assert lost.next_attempt_at == FIXED + timedelta(minutes=30)
    assert "no outcome for attempt 2" in (lost.last_error or "")
    last = RetryItem(**{**_fields(item), "status": "retrying", "attempts": 3})
    assert lost_attempt(last, schedule=DEFAULT_SCHEDULE, now=FIXED).status == "abandoned"


def _fields(item: RetryItem) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__dataclass_fields__}
