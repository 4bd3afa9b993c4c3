"""The retry schedule of reliability.md §7 as `RetryPolicy` applies it to outcomes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stream.control.retry_policy import RetryPolicy
from stream.messages import OutcomeRecord

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=5)


def record(status: str, **extra: Any) -> OutcomeRecord:
    fields: dict[str, Any] = {
        "change_id": "c",
        "flow_id": "f",
        "flow_name": "F",
        "mode": "live",
        "status": status,
        "occurred_at": T0,
        "processed_at": T0 + timedelta(seconds=1),
        "connection_id": "mkto",
    }
    fields.update(extra)
    return OutcomeRecord(**fields)


@pytest.mark.parametrize(("attempt", "base"), [(1, 300), (2, 1800), (3, 7200)])
def test_technical_failures_follow_the_schedule_within_jitter(attempt: int, base: int) -> None:
    policy = RetryPolicy(rng=random.Random(7))
    processed = T0 + timedelta(seconds=1)
    delays = []
    for _ in range(200):
        item = policy.item_for(
            record("failed", category="technical", attempt=attempt, reason="HTTP 503"), NOW
        )
        assert item is not None
        assert (item.status, item.category, item.attempts) == ("pending", "technical", attempt)
        assert item.next_attempt_at is not None
        delays.append((item.next_attempt_at - processed).total_seconds())
    assert min(delays) >= base * 0.8
    assert max(delays) <= base * 1.2
    assert max(delays) - min(delays) > base * 0.2  # actually jittered


def test_after_the_third_retry_the_item_is_abandoned() -> None:
    item = RetryPolicy().item_for(record("failed", category="technical", attempt=4), NOW)
    assert item is not None
    assert (item.status, item.next_attempt_at, item.attempts) == ("abandoned", None, 4)


def test_data_failures_are_held_for_the_operator() -> None:
    item = RetryPolicy().item_for(
        record("failed", category="data", reason="email is empty", marketo_code="1003"), NOW
    )
    assert item is not None
    assert (item.status, item.category, item.next_attempt_at) == ("pending", "data", None)
    assert item.last_error == "1003: email is empty"
    assert item.integration == "mkto"


def test_failed_without_category_counts_as_technical() -> None:
    item = RetryPolicy().item_for(record("failed"), NOW)
    assert item is not None and item.category == "technical"


def test_parked_waits_for_the_resume_time_without_spending_a_retry() -> None:
    resume = T0 + timedelta(hours=9)
    item = RetryPolicy().item_for(record("parked", attempt=2, resume_at=resume), NOW)
    assert item is not None
    assert (item.status, item.category, item.attempts) == ("pending", "technical", 1)
    assert item.next_attempt_at == resume
    fallback = RetryPolicy().item_for(record("parked"), NOW)
    assert fallback is not None and fallback.next_attempt_at == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    "status", ["delivered", "not_activated", "filtered_out", "skipped_duplicate", "would_send"]
)
def test_other_outcomes_need_no_item(status: str) -> None:
    assert RetryPolicy().item_for(record(status), NOW) is None


def test_configurable_delays_and_no_jitter() -> None:
    policy = RetryPolicy(delays_s=(1.0, 2.0), jitter=0.0)
    assert policy.max_retries == 2
    item = policy.item_for(record("failed", category="technical", attempt=2), NOW)
    assert item is not None
    assert item.next_attempt_at == T0 + timedelta(seconds=3)
    abandoned = policy.item_for(record("failed", category="technical", attempt=3), NOW)
    assert abandoned is not None and abandoned.status == "abandoned"
    with pytest.raises(ValueError):
        RetryPolicy(delays_s=(-1.0,))
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)
