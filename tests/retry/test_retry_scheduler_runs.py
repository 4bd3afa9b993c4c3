"""The scheduler against a real DuckDB store and a real broker, with a fake clock: due items are
re-driven once, on schedule, up to the cap; leases make a crashed run's items come back once
(E-01, E-02, C-11)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

from stream.control.retry_scheduler import DEFAULT_SCHEDULE, RetryScheduler
from stream.messages import FailureCategory, OutcomeRecord, OutcomeStatus
from stream.store import Store
from tests.retry.retry_helpers import (
    RedriveTopic,
    item_of,
    record_new_outcomes,
    record_outcome,
    registration_dict,
)
from tests.support.changes import change_row
from tests.support.clock import FIXED, FakeClock
from tests.support.waiting import until

S = DEFAULT_SCHEDULE


def failed(attempt: int, *, category: str | None = "technical", **extra: Any) -> OutcomeRecord:
    fields: dict[str, Any] = {
        "change_id": "c1",
        "flow_id": "nurture",
        "flow_name": "Nurture",
        "mode": "live",
        "connection_id": "mkto",
        "status": OutcomeStatus.FAILED,
        "category": FailureCategory(category) if category else None,
        "reason": "HTTP 503 Service Unavailable",
        "retryable": category == "technical",
        "attempt": attempt,
        "occurred_at": FIXED,
        "registration_code": "R-c1",
    }
    fields.update(extra)
    return OutcomeRecord(**fields)


def scheduler(store: Store, topic: RedriveTopic, clock: FakeClock, **kw: Any) -> RetryScheduler:
    return RetryScheduler(store, topic.publish, clock, S, jitter=lambda: 0.5, **kw)


async def archive(store: Store, *ids: str) -> None:
    await store.archive_changes([change_row(registration_dict(i)) for i in ids])


async def first_failure(store: Store, clock: FakeClock) -> None:
    """c1 archived, and its first delivery failed now (technical: due again in 5 minutes)."""
    await archive(store, "c1")
    await record_outcome(store, failed(1, processed_at=clock.now), S, clock.now)


async def test_technical_failure_is_retried_three_times_then_abandoned(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await archive(store, "c1")
    item = await record_outcome(store, failed(1, processed_at=clock.now), S, clock.now)
    assert item.status == "pending" and item.next_attempt_at == FIXED + timedelta(minutes=5)
    sched = scheduler(store, redrive, clock)
    assert await sched.run_once(clock.advance(minutes=4, seconds=59)) == 0
    waits = [timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2)]
    for attempt in (2, 3, 4):
        due = (await item_of(store, "c1", "nurture")).next_attempt_at
        assert due is not None
        clock.now = due
        assert await sched.run_once(clock.now) == 1
        assert await sched.run_once(clock.now) == 0, "an item in flight is not re-driven"
        current = await item_of(store, "c1", "nurture")
        assert current.status == "retrying" and current.attempts == attempt - 1
        clock.advance(seconds=3)
        after = await record_outcome(store, failed(attempt, processed_at=clock.now), S, clock.now)
        if attempt < 4:
            assert after.status == "pending" and after.attempts == attempt
            assert after.next_attempt_at == clock.now + waits[attempt - 1]
            clock.advance(seconds=1)
    final = await item_of(store, "c1", "nurture")
    assert (final.status, final.attempts, final.next_attempt_at) == ("abandoned", 4, None)
    assert await sched.run_once(clock.advance(days=2)) == 0
    sent = await redrive.read(3)
    assert [r.redrive.attempt for _, r in sent] == [2, 3, 4]
    assert {(r.redrive.kind, r.redrive.flow_id) for _, r in sent} == {("retry", "nurture")}
    assert {key for key, _ in sent} == {b"R-c1"}
    assert all(r.change["changeId"] == "c1" for _, r in sent)


async def test_data_failures_are_never_picked_up(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await archive(store, "c1")
    item = await record_outcome(
        store, failed(1, category="data", processed_at=clock.now), S, clock.now
    )
    assert (item.status, item.category, item.next_attempt_at) == ("pending", "data", None)
    sched = scheduler(store, redrive, clock)
    assert await sched.run_once(clock.advance(days=30)) == 0
    assert await redrive.read(settle_s=0.3) == []
    assert (await item_of(store, "c1", "nurture")).attempts == 1


async def test_quota_park_resumes_at_the_reset_without_spending_an_attempt(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await archive(store, "c1")
    reset = FIXED + timedelta(hours=11)
    parked = failed(
        1,
        status=OutcomeStatus.PARKED,
        category=None,
        marketo_code="607",
        reason="Daily quota reached",
        resume_at=reset,
        processed_at=clock.now,
    )
    item = await record_outcome(store, parked, S, clock.now)
    assert (item.status, item.attempts, item.next_attempt_at) == ("pending", 0, reset)
    sched = scheduler(store, redrive, clock)
    assert await sched.run_once(clock.advance(hours=10, minutes=59)) == 0
    assert await sched.run_once(clock.advance(minutes=1)) == 1
    [(_, request)] = await redrive.read(1)
    assert request.redrive.attempt == 1, "the parked attempt is run again, not counted"
    delivered = failed(
        1, status=OutcomeStatus.DELIVERED, category=None, processed_at=clock.advance(seconds=2)
    )
    done = await record_outcome(store, delivered, S, clock.now)
    assert done.status == "resolved"


async def test_a_crashed_claim_is_picked_up_once_after_its_lease(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await archive(store, "c1", "c2")
    for cid in ("c1", "c2"):
        await record_outcome(
            store,
            failed(1, change_id=cid, registration_code=f"R-{cid}", processed_at=clock.now),
            S,
            clock.now,
        )
    due = clock.advance(minutes=5)
    # a scheduler claims both, then dies before marking or publishing anything
    crashed = await store.claim_due_retries(
        now=due, limit=10, owner="crashed", lease_until=due + S.lease
    )
    assert len(crashed) == 2
    survivor = scheduler(store, redrive, clock, owner="survivor")
    assert await survivor.run_once(clock.advance(seconds=30)) == 0, "the lease still holds"
    assert await survivor.run_once(clock.advance(minutes=2)) == 2
    assert await survivor.run_once(clock.advance(seconds=1)) == 0
    sent = await redrive.read(2)
    assert sorted(r.change["changeId"] for _, r in sent) == ["c1", "c2"]
    for cid in ("c1", "c2"):
        item = await item_of(store, cid, "nurture")
        assert item.status == "retrying" and item.lease_owner == "survivor"


async def test_two_schedulers_at_once_send_each_item_once(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    ids = [f"c{i}" for i in range(30)]
    await archive(store, *ids)
    for cid in ids:
        await record_outcome(
            store,
            failed(1, change_id=cid, registration_code=f"R-{cid}", processed_at=clock.now),
            S,
            clock.now,
        )
    clock.advance(minutes=6)
    a, b = (scheduler(store, redrive, clock, owner=o) for o in ("a", "b"))
    counts = await asyncio.gather(a.run_once(clock.now), b.run_once(clock.now))
    assert sum(counts) == 30
    sent = await redrive.read(30)
    assert sorted(r.change["changeId"] for _, r in sent) == sorted(ids)


async def test_a_refused_publish_puts_items_back_and_retries_later(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await first_failure(store, clock)
    sched = scheduler(store, redrive, clock)
    redrive.fail_next = 1
    assert await sched.run_once(clock.advance(minutes=6)) == 0
    item = await item_of(store, "c1", "nurture")
    assert (item.status, item.attempts, item.lease_owner) == ("pending", 1, None)
    assert item.next_attempt_at == clock.now + S.publish_backoff
    assert sched.stats.publish_failures == 1
    assert await sched.run_once(clock.advance(seconds=29)) == 0
    assert await sched.run_once(clock.advance(seconds=1)) == 1
    [(_, request)] = await redrive.read(1)
    assert request.redrive.attempt == 2


async def test_an_attempt_without_outcome_counts_as_lost(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await first_failure(store, clock)
    sched = scheduler(store, redrive, clock)
    assert await sched.run_once(clock.advance(minutes=6)) == 1
    assert await sched.run_once(clock.advance(minutes=29)) == 0
    assert await sched.run_once(clock.advance(minutes=1, seconds=1)) == 0
    item = await item_of(store, "c1", "nurture")
    assert (item.status, item.attempts) == ("pending", 2)
    assert item.next_attempt_at == clock.now + timedelta(minutes=30)
    assert sched.stats.lost == 1
    # the late answer to the lost attempt does not move the item back
    late = await record_outcome(store, failed(1, processed_at=clock.now), S, clock.now)
    assert late.attempts == 2


async def test_an_item_whose_change_is_not_archived_is_abandoned(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await record_outcome(store, failed(1, processed_at=clock.now), S, clock.now)
    sched = scheduler(store, redrive, clock)
    assert await sched.run_once(clock.advance(minutes=6)) == 0
    item = await item_of(store, "c1", "nurture")
    assert item.status == "abandoned" and "archived change is missing" in (item.last_error or "")


async def test_the_loop_runs_until_stopped(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await first_failure(store, clock)
    clock.advance(minutes=6)
    sched = scheduler(store, redrive, clock)
    sched.start()
    try:

        async def published() -> bool:
            return sched.stats.published > 0

        await until(published, "the scheduler loop publishing the due item")
    finally:
        await sched.stop()
    assert sched.stats.published == 1


async def test_a_clock_jump_neither_strands_nor_stampedes(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    """E-08: after a jump forward everything is due, and goes out in bounded batches; after a
    jump back nothing is lost, it is simply due later."""
    ids = [f"c{i:03d}" for i in range(120)]
    await archive(store, *ids)
    records = [
        failed(1, change_id=c, registration_code=f"R-{c}", processed_at=clock.now) for c in ids
    ]
    await record_new_outcomes(store, records, S, clock.now)
    small = RetryScheduler(
        store, redrive.publish, clock, replace(S, batch_size=50), jitter=lambda: 0.5
    )
    assert await small.run_once(clock.now - timedelta(hours=3)) == 0
    jumped = clock.advance(days=1)
    assert [await small.run_once(jumped) for _ in range(4)] == [50, 50, 20, 0]
    assert len(await redrive.read(120)) == 120
