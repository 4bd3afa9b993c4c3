"""Operator resubmit against a real store and broker: nothing is sent twice, a resubmit uses the
configuration of now, every resubmit is audited (E-03, E-04, E-06, D-05)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from stream.certain.events import ChangeEvent
from stream.control.recorder import outcome_row
from stream.control.resubmit import Resubmitter, parse_filter
from stream.control.retry_scheduler import DEFAULT_SCHEDULE, RetryScheduler
from stream.core.evaluate import evaluate
from stream.core.results import DataFailure
from stream.messages import FailureCategory, OutcomeRecord, OutcomeStatus
from stream.pipeline.route import route_change
from stream.store import RetryFilter, Store
from tests.retry.retry_helpers import (
    RedriveTopic,
    account,
    event,
    item_of,
    record_new_outcomes,
    record_outcome,
    registration_dict,
)
from tests.support.changes import catalog, change_row
from tests.support.clock import FIXED, FakeClock

S = DEFAULT_SCHEDULE


def outcome(cid: str, status: OutcomeStatus, attempt: int = 1, **extra: Any) -> OutcomeRecord:
    fields: dict[str, Any] = {
        "change_id": cid,
        "flow_id": "nurture",
        "flow_name": "Nurture",
        "mode": "live",
        "connection_id": "mkto",
        "status": status,
        "attempt": attempt,
        "occurred_at": FIXED,
        "registration_code": f"R-{cid}",
    }
    if status is OutcomeStatus.FAILED:
        fields.setdefault("category", FailureCategory.DATA)
        fields.setdefault("reason", "registration.registrationStatusLabel: untagged")
    fields.update(extra)
    return OutcomeRecord(**fields)


async def held(store: Store, clock: FakeClock, *ids: str, **extra: Any) -> None:
    await store.archive_changes([change_row(registration_dict(i)) for i in ids])
    records = [outcome(c, OutcomeStatus.FAILED, processed_at=clock.now, **extra) for c in ids]
    await record_new_outcomes(store, records, S, clock.now)


async def test_a_held_item_is_resubmitted_once_and_audited(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await held(store, clock, "c1")
    resubmitter = Resubmitter(store, redrive.publish, clock, S)
    clock.advance(minutes=3)
    result = await resubmitter.resubmit([("c1", "nurture")], "ana")
    assert (result.submitted, result.skipped_already_resolved, result.skipped_in_flight) == (
        1,
        0,
        0,
    )
    item = await item_of(store, "c1", "nurture")
    assert (item.status, item.resubmitted_by, item.resubmitted_at) == ("retrying", "ana", clock.now)
    [(key, request)] = await redrive.read(1)
    assert key == b"R-c1"
    assert (request.redrive.kind, request.redrive.attempt, request.redrive.actor) == (
        "resubmit",
        2,
        "ana",
    )
    again = await resubmitter.resubmit([("c1", "nurture")], "bo")
    assert (again.submitted, again.skipped_in_flight) == (0, 1)
    [entry, first] = await store.config_audit(kind="retry_queue")
    assert (first.actor, first.object_id, first.action) == ("ana", "c1/nurture", "resubmit")
    assert first.change["result"]["submitted"] == 1
    assert first.change["items"] == [["c1", "nurture"]]
    assert entry.actor == "bo" and entry.change["result"]["skipped_in_flight"] == 1
    assert len(await redrive.read(1)) == 1


async def test_resubmitting_a_succeeded_item_is_a_no_op(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await held(store, clock, "c1", "c2")
    await record_outcome(
        store,
        outcome("c1", OutcomeStatus.DELIVERED, 2, processed_at=clock.advance(seconds=5)),
        S,
        clock.now,
    )
    assert (await item_of(store, "c1", "nurture")).status == "resolved"
    # c2 was delivered (e.g. by an earlier resubmit) but its item was not resolved yet
    delivered = outcome("c2", OutcomeStatus.DELIVERED, 2, processed_at=clock.now)
    await store.record_outcomes([outcome_row(delivered)])
    c2 = await item_of(store, "c2", "nurture")
    await store.upsert_retry_items([replace(c2, status="pending", updated_at=clock.now)])
    resubmitter = Resubmitter(store, redrive.publish, clock, S)
    result = await resubmitter.resubmit([("c1", "nurture"), ("c2", "nurture")], "ana")
    assert (result.submitted, result.skipped_already_resolved) == (0, 2)
    assert (await item_of(store, "c2", "nurture")).status == "resolved"
    assert await redrive.read(settle_s=0.3) == []


async def test_two_operators_at_once_send_one(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await held(store, clock, "c1")
    one = Resubmitter(store, redrive.publish, clock, S)
    two = Resubmitter(store, redrive.publish, clock, S)
    results = await asyncio.gather(
        one.resubmit([("c1", "nurture")], "ana"), two.resubmit([("c1", "nurture")], "bo")
    )
    assert sorted(r.submitted for r in results) == [0, 1]
    assert sorted(r.skipped_in_flight for r in results) == [0, 1]
    assert len(await redrive.read(1)) == 1


async def test_resubmit_and_scheduler_racing_for_one_item_send_once(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await held(
        store, clock, "c1", category=FailureCategory.TECHNICAL, reason="HTTP 503", retryable=True
    )
    clock.advance(minutes=6)
    sched = RetryScheduler(store, redrive.publish, clock, S)
    resubmitter = Resubmitter(store, redrive.publish, clock, S)
    published, result = await asyncio.gather(
        sched.run_once(clock.now), resubmitter.resubmit([("c1", "nurture")], "ana")
    )
    assert published + result.submitted == 1
    sent = await redrive.read(1)
    assert len(sent) == 1 and sent[0][1].redrive.attempt == 2


async def test_resubmit_uses_the_configuration_of_now(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    """An untagged status is a data failure; tagging it in the event setup (a catalog change)
    and resubmitting makes the pipeline deliver it."""
    acct = account()
    before = catalog(event())
    data = registration_dict("c1", status="Waitlist")
    change = ChangeEvent.model_validate(data)
    flow = acct.flow("nurture")
    assert flow is not None
    result = evaluate(change, flow, acct, before)
    assert isinstance(result, DataFailure) and "Waitlist" in result.reason
    await store.archive_changes([change_row(data)])
    await record_outcome(
        store,
        outcome("c1", OutcomeStatus.FAILED, reason=result.reason, processed_at=clock.now),
        S,
        clock.now,
    )
    fixed = event(
        change_id="evt-2",
        occurred_at=FIXED + timedelta(hours=1),
        statuses=[
            {"label": "New", "classification": "Accepted", "tags": []},
            {"label": "Waitlist", "classification": "Pending", "tags": ["registered"]},
        ],
    )
    after = before.apply(fixed)
    resubmitter = Resubmitter(store, redrive.publish, clock, S)
    assert (await resubmitter.resubmit([("c1", "nurture")], "ana")).submitted == 1
    [(_, request)] = await redrive.read(1)
    redriven = ChangeEvent.model_validate(request.change)
    routed = route_change(redriven, acct, after, now=clock.now, redrive=request.redrive)
    assert routed.outcomes == []
    [delivery] = routed.deliveries
    assert (delivery.change_id, delivery.flow_id, delivery.attempt) == ("c1", "nurture", 2)
    assert delivery.redrive_kind == "resubmit"
    assert delivery.payload["email"] == "r-c1@example.com"
    stale = route_change(redriven, acct, before, now=clock.now, redrive=request.redrive)
    assert stale.deliveries == [] and stale.outcomes[0].category is FailureCategory.DATA


async def test_resubmit_by_filter_reports_progress_and_skips_resolved(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    ids = [f"c{i:03d}" for i in range(450)]
    await held(store, clock, *ids)
    later = clock.now + timedelta(seconds=1)
    await store.record_outcomes(
        [outcome_row(outcome(c, OutcomeStatus.DELIVERED, 2, processed_at=later)) for c in ids[:10]]
    )
    seen: list[tuple[int, int]] = []
    resubmitter = Resubmitter(store, redrive.publish, clock, S)
    result = await resubmitter.resubmit_matching(
        RetryFilter(category="data", status="pending"),
        "ops",
        progress=lambda d, t: seen.append((d, t)),
    )
    assert result.selected == 440 and result.submitted == 440
    assert seen == [(200, 440), (400, 440), (440, 440)]
    assert len(await redrive.read(440, settle_s=0.5)) == 440
    [entry] = await store.config_audit(kind="retry_queue")
    assert entry.object_id == "filter"
    assert entry.change["filter"] == {"category": "data", "status": "pending"}
    again = await resubmitter.resubmit_matching(RetryFilter(category="data"), "ops")
    assert (again.submitted, again.skipped_in_flight, again.skipped_already_resolved) == (
        0,
        440,
        10,
    )


async def test_a_refused_publish_leaves_items_as_they_were(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await held(store, clock, "c1")
    redrive.fail_next = 1
    resubmitter = Resubmitter(store, redrive.publish, clock, S)
    with pytest.raises(ConnectionError):
        await resubmitter.resubmit([("c1", "nurture")], "ana")
    item = await item_of(store, "c1", "nurture")
    assert item.status == "pending"
    assert (await resubmitter.resubmit([("c1", "nurture")], "ana")).submitted == 1


async def test_unknown_items_and_bad_filters_are_named(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    result = await Resubmitter(store, redrive.publish, clock, S).resubmit([("nope", "x")], "ana")
    assert (result.not_found, result.submitted) == (1, 0)
    with pytest.raises(ValueError, match="unknown filter key"):
        parse_filter({"colour": "red"})
    with pytest.raises(ValueError, match="status must be"):
        parse_filter({"status": "done"})
    assert parse_filter({"category": "data", "integration": ""}) == RetryFilter(category="data")
