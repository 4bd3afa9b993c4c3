"""Control's recovery: the decisions (grace, horizon, cap, nothing expected, deferred) with an
injected clock, the service on a real DuckDB file with recording publishers, a route batch cut
short by a crash, the failure paths, and what metrics show. The run against the real embedded
broker is in test_recovery_broker.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config.models import Account
from stream.api.metrics_routes import add_metrics_routes
from stream.control.recorder import outcome_row, outcome_rows
from stream.control.recovery import PRUNE_EVERY, Recovery
from stream.control.recovery_plan import (
    Decision,
    RecoveryPolicy,
    UnroutedPlan,
    decide,
    plan_unrouted,
    within_horizon,
)
from stream.core.catalog import EventCatalog
from stream.delivery_keys import delivered_value, delivery_key
from stream.messages import DeliveryRequest, OutcomeRecord, RedriveRequest
from stream.metrics.queries import RuntimeStatus
from stream.metrics.recovery import RecoveryStatus
from stream.pipeline import delivered as pipeline_delivered
from stream.pipeline.records import route_records
from stream.pipeline.route import Routed, route_change
from stream.store import ChangeRow, OutcomeRow, Store
from stream.store.delivery_marks import DeliveryMark, record_delivery_marks
from stream.store.recovery import RecoveryEntry
from stream.topics import OUTCOMES
from tests.support.accounts import example_account
from tests.support.changes import (
    catalog,
    change_row,
    event_change,
    registration_change,
    registration_json,
)
from tests.support.clock import FIXED, FakeClock
from tests.support.waiting import until

FLOW = "registered-to-nurture"  # the example account's flow for registration status changes
GRACE = timedelta(seconds=60)
POLICY = RecoveryPolicy(grace=GRACE, horizon=timedelta(days=7), every_s=0.05, max_redrives=5)


# -- the pure decisions ------------------------------------------------------------------------


def entry(redrives: int, last_ago_s: float, *, stranded: bool = False) -> RecoveryEntry:
    last = FIXED - timedelta(seconds=last_ago_s)
    return RecoveryEntry(redrives, last, last if stranded else None)


@pytest.mark.parametrize(
    ("pending_s", "log", "expected"),
    [
        (30, None, Decision.WAIT),
        (60, None, Decision.WAIT),
        (61, None, Decision.REDRIVE),
        (3600, entry(1, 30), Decision.WAIT),
        (3600, entry(1, 61), Decision.REDRIVE),
        (3600, entry(2, 61), Decision.WAIT),
        (3600, entry(2, 121), Decision.REDRIVE),
        (3600, entry(4, 479), Decision.WAIT),
        (3600, entry(4, 481), Decision.REDRIVE),
        (3600, entry(5, 959), Decision.WAIT),
        (3600, entry(5, 961), Decision.STRANDED),
        (3600, entry(5, 6000, stranded=True), Decision.WAIT),
    ],
    ids=[
        "younger-than-grace",
        "exactly-the-grace",
        "older-than-grace",
        "re-driven-within-grace",
        "re-driven-before-grace",
        "second-redrive-waits-twice-the-grace",
        "second-redrive-after-twice-the-grace",
        "fourth-redrive-waits-eight-graces",
        "below-the-cap",
        "at-the-cap-waits-sixteen-graces",
        "at-the-cap",
        "already-stranded",
    ],
)
def test_decide(pending_s: float, log: RecoveryEntry | None, expected: Decision) -> None:
    since = FIXED - timedelta(seconds=pending_s)
    assert decide(since, log, FIXED, POLICY) is expected


@pytest.mark.parametrize(
    ("pending_s", "log", "expected"),
    [
        (5, None, Decision.REDRIVE),
        (0.001, None, Decision.REDRIVE),
        (-5, None, Decision.WAIT),
        (3600, entry(1, 5), Decision.REDRIVE),
        (3600, entry(1, -5), Decision.WAIT),
        (3600, entry(5, 5), Decision.STRANDED),
        (3600, entry(5, 5, stranded=True), Decision.WAIT),
    ],
    ids=[
        "pending-from-before-the-start",
        "a-moment-before-the-start",
        "pending-since-the-start",
        "re-driven-before-the-start",
        "re-driven-since-the-start",
        "at-the-cap",
        "already-stranded",
    ],
)
def test_decide_on_a_fresh_broker(
    pending_s: float, log: RecoveryEntry | None, expected: Decision
) -> None:
    """Against a broker started empty at `FIXED`, what came before it does not wait out the
    grace (nothing of it is in flight); what came after it does; the cap still holds."""
    since = FIXED - timedelta(seconds=pending_s)
    now = FIXED + timedelta(seconds=10)
    assert decide(since, log, now, POLICY, lost_before=FIXED) is expected
    if expected is Decision.REDRIVE:
        assert decide(since, log, now, POLICY) is Decision.WAIT, "the grace, without it"


def test_the_wait_between_redrives_doubles_up_to_the_horizon() -> None:
    waits = [POLICY.redrive_wait(n) for n in range(7)]
    assert waits[:6] == [GRACE, GRACE, 2 * GRACE, 4 * GRACE, 8 * GRACE, 16 * GRACE]
    assert POLICY.redrive_wait(30) == POLICY.horizon, "never longer than the horizon"


def test_horizon() -> None:
    assert within_horizon(FIXED - timedelta(days=7), FIXED, POLICY)
    assert not within_horizon(FIXED - timedelta(days=7, seconds=1), FIXED, POLICY)


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="grace"):
        RecoveryPolicy(grace=timedelta(0))
    with pytest.raises(ValueError, match="horizon"):
        RecoveryPolicy(grace=timedelta(hours=2), horizon=timedelta(hours=1))
    with pytest.raises(ValueError, match="max_redrives"):
        RecoveryPolicy(max_redrives=0)


def test_plan_redrives_the_flows_that_would_act_only() -> None:
    account, events = example_account(), catalog()
    old = FIXED - timedelta(minutes=5)
    plan = plan_unrouted(registration_change("c1"), old, {}, account, events, FIXED, POLICY)
    # vip-attended watches session changes: not activated, so not expected
    assert (plan.redrive, plan.stranded, plan.nothing_expected) == ((FLOW,), (), None)

    capped = {FLOW: entry(5, 16 * 60 + 1)}
    plan = plan_unrouted(registration_change("c1"), old, capped, account, events, FIXED, POLICY)
    assert (plan.redrive, plan.stranded) == ((), (FLOW,))

    young = FIXED - timedelta(seconds=5)
    plan = plan_unrouted(registration_change("c1"), young, {}, account, events, FIXED, POLICY)
    assert (plan.redrive, plan.stranded, plan.nothing_expected) == ((), (), None)
    # On a broker started empty after it arrived, it went with the old broker: at once.
    started = FIXED - timedelta(seconds=2)
    plan = plan_unrouted(
        registration_change("c1"), young, {}, account, events, FIXED, POLICY, started
    )
    assert plan.redrive == (FLOW,)
    plan = plan_unrouted(
        registration_change("c1"), started, {}, account, events, FIXED, POLICY, young
    )
    assert plan.redrive == (), "arrived after the fresh broker's start: the grace holds"


def test_plan_marks_a_change_no_flow_acts_on() -> None:
    account, events = example_account(), catalog()
    old = FIXED - timedelta(minutes=5)
    elsewhere = registration_change("c2", account_code="OTHER")
    plan = plan_unrouted(elsewhere, old, {}, account, events, FIXED, POLICY)
    assert plan.redrive == () and plan.nothing_expected and plan.deferred is None
    nothing_active = account.model_copy(
        update={"flows": [f.model_copy(update={"active": False}) for f in account.flows]}
    )
    plan = plan_unrouted(registration_change("c1"), old, {}, nothing_active, events, FIXED, POLICY)
    assert plan.redrive == () and plan.nothing_expected
    plan = plan_unrouted("archived payload is not JSON", old, {}, account, events, FIXED, POLICY)
    assert plan.nothing_expected == "archived payload is not JSON"


def test_plan_decides_nothing_for_an_event_control_does_not_know() -> None:
    """Every flow that watches the change says "not activated" because its event is not in the
    catalog: that says nothing about whether a flow acts on it, so nothing is decided."""
    account, change, empty = example_account(), registration_change("c3"), EventCatalog()
    old = FIXED - timedelta(minutes=5)
    plan = plan_unrouted(change, old, {}, account, empty, FIXED, POLICY)
    assert (plan.redrive, plan.stranded, plan.nothing_expected) == ((), (), None)
    assert plan.deferred and "SUMMIT26" in plan.deferred and "catalog" in plan.deferred
    young = FIXED - timedelta(seconds=5)
    plan = plan_unrouted(change, young, {}, account, empty, FIXED, POLICY)
    assert plan == UnroutedPlan(), "within the grace nothing is decided at all"


def test_the_shared_key_is_the_pipelines_key() -> None:
    request = DeliveryRequest(
        change_id="c1",
        flow_id="f1",
        flow_name="F",
        mode="live",
        connection_id="mkto",
        action="create_update_lead",
        occurred_at=FIXED,
        payload={},
    )
    assert delivery_key("c1", "f1") == pipeline_delivered.delivery_key(request)
    replay = request.model_copy(update={"replay_id": "rp-9"})
    assert delivery_key("c1", "f1", "rp-9") == pipeline_delivered.delivery_key(replay)
    assert float(delivered_value(FIXED)) == FIXED.timestamp()
    assert delivered_value(FIXED) == repr(FIXED.timestamp()).encode()


# -- the service on a real DuckDB file ---------------------------------------------------------


@dataclass
class Config:
    account: Account = field(default_factory=example_account)
    catalog: EventCatalog = field(default_factory=catalog)


@dataclass
class Broker:
    """Recording publishers, in the order they were called; `down` makes them fail."""

    sent: list[tuple[str, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    down: bool = False

    def publisher(self, topic: str) -> Any:
        async def publish(records: Any) -> None:
            if self.down:
                raise ConnectionError("broker unreachable")
            self.sent.append((topic, list(records)))

        return publish

    def records(self, topic: str) -> list[tuple[bytes, bytes]]:
        return [r for t, batch in self.sent if t == topic for r in batch]

    def redrives(self) -> list[RedriveRequest]:
        return [RedriveRequest.loads(v) for _, v in self.records("redrive")]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "signal.duckdb", reader_threads=2, threads=2)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(FIXED)


@pytest.fixture
def wire() -> Broker:
    return Broker()


def make_recovery(
    store: Store,
    wire: Broker,
    clock: FakeClock,
    policy: RecoveryPolicy = POLICY,
    *,
    config: Config | None = None,
) -> Recovery:
    return Recovery(
        store,
        config or Config(),
        publish_changes=wire.publisher("changes"),
        publish_redrives=wire.publisher("redrive"),
        publish_delivered=wire.publisher("delivered"),
        policy=policy,
        clock=clock,
        started_at=clock() - timedelta(hours=1),
    )


def archived(change_id: str, received_at: datetime, **options: Any) -> ChangeRow:
    """A change archived from the topic (so published when received)."""
    data = registration_json(change_id, code=f"R-{change_id}", occurred_at=received_at, **options)
    return change_row(data, received_at=received_at, source="topic")


def outcome(change_id: str, status: str, processed_at: datetime, **extra: Any) -> OutcomeRow:
    fields: dict[str, Any] = {
        "change_id": change_id,
        "flow_id": FLOW,
        "flow_name": "Registered to nurture",
        "mode": "live",
        "status": status,
        "occurred_at": processed_at - timedelta(seconds=5),
        "processed_at": processed_at,
        "registration_code": f"R-{change_id}",
        "event_code": "SUMMIT26",
        "action": "create_update_lead",
        "connection_id": "mkto-main",
    }
    fields.update(extra)
    return OutcomeRow(**fields)


async def test_a_queued_pair_is_redriven_ever_less_often_then_stranded(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    now = clock()
    await store.archive_changes([archived("q1", now - timedelta(minutes=10))])
    await store.record_outcomes([outcome("q1", "queued", now - timedelta(seconds=90))])
    recovery = make_recovery(store, wire, clock)

    result = await recovery.scan()
    assert result.redriven_queued == 1
    [request] = wire.redrives()
    assert request.change["changeId"] == "q1"
    assert (request.redrive.flow_id, request.redrive.kind, request.redrive.attempt) == (
        FLOW,
        "recovery",
        1,
    )
    assert wire.records("redrive")[0][0] == b"R-q1", "keyed like certain-changes"
    assert recovery.status().queued_overdue == 1 and recovery.status().redriven_total == 1

    await recovery.scan()
    clock.advance(seconds=59)
    await recovery.scan()
    assert len(wire.redrives()) == 1, "not again within the grace"
    # Each redrive waits twice as long as the one before for its outcome: 1, 2, 4, 8 graces.
    since_last = 59
    for n, graces in zip(range(2, 6), (1, 2, 4, 8), strict=True):
        clock.advance(seconds=60 * graces - 1 - since_last)
        await recovery.scan()
        assert len(wire.redrives()) == n - 1, f"redrive {n} not before {graces} graces"
        clock.advance(seconds=2)
        await recovery.scan()
        assert len(wire.redrives()) == n, f"redrive {n} after {graces} graces"
        since_last = 0
    clock.advance(seconds=16 * 60 - 1)
    assert (await recovery.scan()).stranded == 0, "the fifth redrive gets 16 graces"
    clock.advance(seconds=2)
    result = await recovery.scan()
    assert result.stranded == 1 and len(wire.redrives()) == 5, "at most max_redrives"
    status = recovery.status()
    assert (status.stranded, status.redriven_total) == (1, 5)
    clock.advance(hours=1)
    await recovery.scan()
    assert len(wire.redrives()) == 5, "a stranded pair is not re-driven again"

    # once it is delivered after all, it no longer counts as stranded
    await store.record_outcomes([outcome("q1", "delivered", clock())])
    await recovery.scan()
    assert (recovery.status().stranded, recovery.status().queued_overdue) == (0, 0)


async def test_an_unrouted_change_is_evaluated_and_redriven_for_its_flows(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    now = clock()
    await store.archive_changes(
        [
            archived("u1", now - timedelta(minutes=5)),
            archived("young", now - timedelta(seconds=10)),
            archived("elsewhere", now - timedelta(minutes=5), account_code="OTHER"),
            archived("routed", now - timedelta(minutes=5)),
        ]
    )
    await store.record_outcomes([outcome("routed", "delivered", now - timedelta(minutes=4))])
    recovery = make_recovery(store, wire, clock)

    result = await recovery.scan()
    assert (result.redriven_unrouted, result.nothing_expected) == (1, 1)
    [request] = wire.redrives()
    assert (request.change["changeId"], request.redrive.flow_id, request.redrive.kind) == (
        "u1",
        FLOW,
        "recovery",
    )
    marker = await store.query("SELECT change_id, flow_id, reason FROM recovery_log ORDER BY 1")
    assert marker.rows == (("elsewhere", "", "nothing_expected"), ("u1", FLOW, "unrouted"))
    status = recovery.status()
    assert status.unrouted == 1, "u1 (re-driven, no outcome yet); young is not overdue yet"
    clock.advance(seconds=61)
    await recovery.scan()
    redriven = sorted((r.change["changeId"], r.redrive.flow_id) for r in wire.redrives())
    assert redriven == [("u1", FLOW), ("u1", FLOW), ("young", FLOW)]
    again = await store.query("SELECT count(*) FROM recovery_log WHERE flow_id = ''")
    assert again.rows == ((1,),), "the change that expects nothing is not evaluated again"

    # the pipeline's outcome arrives: no longer unrouted
    await store.record_outcomes(
        [
            outcome("u1", "not_activated", clock()),
            outcome("young", "queued", clock()),
        ]
    )
    clock.advance(seconds=61)
    await recovery.scan()
    assert recovery.status().unrouted == 0


async def test_a_change_of_an_unknown_event_is_deferred_not_marked(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    """Control's catalog lacks the change's event: the change is not marked as expecting
    nothing, other changes are scanned meanwhile, and once the event is known (a grace period
    later) it is re-driven for the flow that acts on it."""
    now = clock()
    await store.archive_changes(
        [
            archived("unknown", now - timedelta(minutes=5), event_code="LATER26"),
            archived("known", now - timedelta(minutes=4)),
        ]
    )
    config = Config()
    recovery = make_recovery(store, wire, clock, config=config)
    result = await recovery.scan()
    assert (result.deferred, result.nothing_expected, result.redriven_unrouted) == (1, 0, 1)
    assert [r.change["changeId"] for r in wire.redrives()] == ["known"]
    rows = await store.query("SELECT change_id, flow_id, reason, note FROM recovery_log ORDER BY 1")
    assert [r[:3] for r in rows.rows] == [
        ("known", FLOW, "unrouted"),
        ("unknown", "(deferred)", "deferred"),
    ]
    assert "LATER26" in str(rows.rows[1][3])
    assert recovery.status().nothing_expected == 0 and recovery.status().unrouted == 2

    clock.advance(seconds=30)
    assert (await recovery.scan()).deferred == 0, "not evaluated again within the grace"
    config.catalog = catalog(event_change(), event_change("LATER26"))
    clock.advance(seconds=31)
    result = await recovery.scan()
    assert (result.deferred, result.nothing_expected) == (0, 0)
    redriven = [(r.change["changeId"], r.redrive.flow_id) for r in wire.redrives()]
    assert ("unknown", FLOW) in redriven


async def test_a_route_batch_cut_short_by_a_crash_leaves_no_delivery_unseen(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    """A crash cuts the records of a route batch short: what the ledger holds of each change is
    a prefix of its records (one partition of signal-outcomes per change id, recorded batch by
    batch), and the broker forgets the rest. Whatever the cut, recovery re-drives the delivery
    of every change: as a queued pair, or as a change without any outcome."""
    now = clock()
    routed_at = now - timedelta(minutes=5)
    changes = [archived(f"cut-{n}", now - timedelta(minutes=6)) for n in range(3)]
    await store.archive_changes(changes)
    routed = Routed()
    for row in changes:
        change = registration_change(row.change_id, code=f"R-{row.change_id}")
        routed.extend(route_change(change, example_account(), catalog(), now=routed_at))
    published = [v for topic, _, v in route_records(routed) if topic == OUTCOMES.name]
    recorded: list[OutcomeRecord] = []
    for cut, row in enumerate(changes):
        mine = [o for o in published if isinstance(o, OutcomeRecord)]
        mine = [o for o in mine if o.change_id == row.change_id]
        assert len(mine) == 2, "a delivery (queued) and vip-attended's not_activated"
        recorded.extend(mine[:cut])  # cut-0: nothing, cut-1: the first record, cut-2: both
    await store.record_outcomes([outcome_row(o) for o in recorded])

    recovery = make_recovery(store, wire, clock)
    await recovery.scan()
    redriven = sorted((r.change["changeId"], r.redrive.flow_id) for r in wire.redrives())
    assert redriven == [(row.change_id, FLOW) for row in changes]


async def test_a_crash_between_the_deliveries_of_one_change_loses_neither(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    """Two flows act on each change. Whatever prefix of the route's records the ledger holds,
    recovery re-drives both deliveries: a recorded queued record names its sibling, and control
    marks that one queued too."""
    account = example_account()
    twin = next(f for f in account.flows if f.id == FLOW).model_copy(
        update={"id": "nurture-twin", "name": "Registered to nurture, twin"}
    )
    account.flows.append(twin)
    config = Config(account=account)
    now = clock()
    routed_at = now - timedelta(minutes=5)
    changes = [archived(f"two-{n}", now - timedelta(minutes=6)) for n in range(4)]
    await store.archive_changes(changes)
    routed = Routed()
    for row in changes:
        change = registration_change(row.change_id, code=f"R-{row.change_id}")
        routed.extend(route_change(change, account, config.catalog, now=routed_at))
    published = [v for topic, _, v in route_records(routed) if topic == OUTCOMES.name]
    rows: list[OutcomeRow] = []
    for cut, row in enumerate(changes):
        mine = [o for o in published if isinstance(o, OutcomeRecord)]
        mine = [o for o in mine if o.change_id == row.change_id]
        assert [(o.flow_id, o.status.value, o.siblings) for o in mine[:2]] == [
            (FLOW, "queued", ["nurture-twin"]),
            ("nurture-twin", "queued", [FLOW]),
        ]
        rows.extend(r for o in mine[:cut] for r in outcome_rows(o))
    await store.record_outcomes(rows)

    recovery = make_recovery(store, wire, clock, config=config)
    await recovery.scan()
    redriven = sorted((r.change["changeId"], r.redrive.flow_id) for r in wire.redrives())
    assert redriven == sorted(
        (row.change_id, flow) for row in changes for flow in (FLOW, "nurture-twin")
    )


async def test_the_unrouted_count_leaves_out_young_changes_and_changes_expecting_nothing(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    now = clock()
    await store.archive_changes(
        [
            archived("young", now - timedelta(seconds=10)),
            archived("elsewhere", now - timedelta(minutes=5), account_code="OTHER"),
        ]
    )
    recovery = make_recovery(store, wire, clock)
    await recovery.scan()
    status = recovery.status()
    assert (status.unrouted, status.nothing_expected, status.redriven_total) == (0, 1, 0)
    assert status.oldest_age_s is None, "nothing is overdue"


async def test_nothing_is_overdue_before_control_ran_for_a_grace(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    """Outcomes produced while control was down wait in the topic for its record agent."""
    now = clock()
    await store.archive_changes(
        [archived("q1", now - timedelta(hours=2)), archived("u1", now - timedelta(hours=2))]
    )
    await store.record_outcomes([outcome("q1", "queued", now - timedelta(hours=1))])
    recovery = Recovery(
        store,
        Config(),
        publish_changes=wire.publisher("changes"),
        publish_redrives=wire.publisher("redrive"),
        publish_delivered=wire.publisher("delivered"),
        policy=POLICY,
        clock=clock,
    )
    await recovery.scan()
    clock.advance(seconds=60)
    await recovery.scan()
    assert wire.redrives() == []
    assert recovery.status().queued_overdue == 1, "overdue by the ledger, shown as such"
    clock.advance(seconds=1)
    await recovery.scan()
    assert sorted(r.change["changeId"] for r in wire.redrives()) == ["q1", "u1"]


async def test_on_a_fresh_broker_what_predates_the_start_is_redriven_at_once(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    """`csignal run` started the broker empty for this control (its start, a heal, a rollover):
    the pair queued and the change published a moment before went with the old broker, so the
    first scan re-drives them; a pair queued after the start still gets its grace."""
    now = clock()
    await store.archive_changes(
        [
            archived("q1", now - timedelta(seconds=20)),
            archived("u1", now - timedelta(seconds=10)),
            archived("q2", now + timedelta(seconds=1)),
        ]
    )
    await store.record_outcomes([outcome("q1", "queued", now - timedelta(seconds=15))])
    kwargs: dict[str, Any] = {
        "publish_changes": wire.publisher("changes"),
        "publish_redrives": wire.publisher("redrive"),
        "publish_delivered": wire.publisher("delivered"),
        "policy": POLICY,
        "clock": clock,
    }
    waits = Recovery(store, Config(), **kwargs)
    await waits.scan()
    assert wire.redrives() == [], "an old broker may still hold them: the grace"

    fresh = Recovery(store, Config(), fresh_broker=True, **kwargs)
    clock.advance(seconds=2)
    await store.record_outcomes([outcome("q2", "queued", clock())])
    result = await fresh.scan()
    assert (result.redriven_queued, result.redriven_unrouted) == (1, 1)
    assert sorted(r.change["changeId"] for r in wire.redrives()) == ["q1", "u1"]
    clock.advance(seconds=30)
    await fresh.scan()
    assert len(wire.redrives()) == 2, "re-driven since the start: the grace holds again"
    clock.advance(seconds=31)
    await fresh.scan()
    # A grace after their first redrive, q1 and u1 go again (no outcome came); q2 its first.
    assert sorted(r.change["changeId"] for r in wire.redrives()) == ["q1", "q1", "q2", "u1", "u1"]


async def test_changes_received_before_the_horizon_are_left_alone(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    now = clock()
    old = now - timedelta(days=7, minutes=1)
    await store.archive_changes([archived("old", old), archived("old-q", old)])
    await store.record_outcomes([outcome("old-q", "queued", old + timedelta(seconds=1))])
    recovery = make_recovery(store, wire, clock)
    await recovery.scan()
    assert wire.redrives() == []
    status = recovery.status()
    assert (status.unrouted, status.queued_overdue, status.oldest_age_s) == (0, 0, None)


async def test_the_outbox_is_published_and_marked(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    now = clock()
    pending = archived("api-1", now - timedelta(minutes=2))
    fresh = archived("api-2", now - timedelta(seconds=5))
    await store.accept_changes(
        [
            dataclasses.replace(pending, source="api", published_at=None),
            dataclasses.replace(fresh, source="api", published_at=None),
        ]
    )
    recovery = make_recovery(store, wire, clock)
    assert recovery.status().unpublished == 0  # nothing scanned yet
    result = await recovery.scan()
    assert result.published == 1
    [(key, value)] = wire.records("changes")
    assert key == b"R-api-1" and json.loads(value)["changeId"] == "api-1"
    rows = await store.query("SELECT change_id, published_at FROM changes ORDER BY 1")
    assert rows.rows == (("api-1", now), ("api-2", None))
    assert recovery.status().unpublished == 1, "the fresh one is still the ingest's to publish"
    assert wire.redrives() == [], "a change just published is not unrouted"


async def test_delivered_keys_are_reseeded_before_the_first_redrive(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    now = clock()
    delivered_at = now - timedelta(minutes=30)
    await store.archive_changes(
        [archived("d1", now - timedelta(hours=1)), archived("q1", now - timedelta(minutes=10))]
    )
    await store.record_outcomes(
        [
            outcome("d1", "delivered", delivered_at, lead_result="created"),
            outcome(
                "d1",
                "delivered",
                delivered_at + timedelta(minutes=1),
                replayed=True,
                replay_id="rp-1",
            ),
            outcome("q1", "queued", now - timedelta(minutes=5)),
        ]
    )
    recovery = make_recovery(store, wire, clock)
    await recovery.scan()
    assert [topic for topic, _ in wire.sent] == ["delivered", "redrive"]
    assert sorted(wire.records("delivered")) == sorted(
        [
            (f"d1\x1f{FLOW}".encode(), repr(delivered_at.timestamp()).encode()),
            (
                f"d1\x1f{FLOW}\x1freplay\x1frp-1".encode(),
                repr((delivered_at + timedelta(minutes=1)).timestamp()).encode(),
            ),
        ]
    )
    assert recovery.status().reseeded_keys == 2
    await recovery.scan()
    assert len(wire.records("delivered")) == 2, "once per start"


async def test_a_running_control_forgets_marks_past_the_horizon_hourly(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    def sending(change_id: str, at: datetime) -> DeliveryMark:
        key = delivery_key(change_id, FLOW, None)
        return DeliveryMark(key, change_id, FLOW, None, "sending", at)

    async def kept() -> list[str]:
        found = await store.query("SELECT change_id FROM delivery_marks ORDER BY 1")
        return [str(row[0]) for row in found.rows]

    policy = dataclasses.replace(POLICY, horizon=timedelta(hours=1))
    recovery = make_recovery(store, wire, clock, policy)
    start = clock()
    await record_delivery_marks(store, [sending("old", start - timedelta(minutes=30))], start)
    await recovery.scan()
    assert await kept() == ["old"], "within the horizon at start"
    await record_delivery_marks(store, [sending("new", start)], start)
    clock.advance(minutes=45)
    await recovery.scan()
    assert await kept() == ["new", "old"], "past the horizon, but pruned less than an hour ago"
    clock.advance(seconds=(PRUNE_EVERY - timedelta(minutes=45)).total_seconds())
    await recovery.scan()
    assert await kept() == ["new"]


async def test_a_full_batch_asks_for_another_scan(store: Store, wire: Broker) -> None:
    clock = FakeClock(FIXED)
    now = clock()
    await store.archive_changes([archived(f"u{i}", now - timedelta(minutes=5)) for i in range(3)])
    recovery = make_recovery(store, wire, clock, dataclasses.replace(POLICY, batch_size=2))
    first = await recovery.scan()
    assert (first.redriven_unrouted, first.full) == (2, True)
    second = await recovery.scan()
    assert (second.redriven_unrouted, second.full) == (1, False)


async def test_a_full_batch_that_must_wait_does_not_ask_for_another_scan(
    store: Store, wire: Broker
) -> None:
    clock = FakeClock(FIXED)
    now = clock()
    await store.archive_changes([archived(f"u{i}", now - timedelta(minutes=5)) for i in range(3)])
    recovery = Recovery(
        store,
        Config(),
        publish_changes=wire.publisher("changes"),
        publish_redrives=wire.publisher("redrive"),
        publish_delivered=wire.publisher("delivered"),
        policy=dataclasses.replace(POLICY, batch_size=2),
        clock=clock,
    )  # just started: nothing is overdue for a grace
    result = await recovery.scan()
    assert (result.redriven, result.full) == (0, False)


async def test_a_scan_with_the_broker_down_fails_and_the_next_one_catches_up(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    now = clock()
    await store.archive_changes([archived("q1", now - timedelta(minutes=10))])
    await store.record_outcomes(
        [
            outcome("q1", "queued", now - timedelta(minutes=5)),
            outcome("d1", "delivered", now - timedelta(minutes=5)),
        ]
    )
    recovery = make_recovery(store, wire, clock)
    wire.down = True
    with pytest.raises(ConnectionError):
        await recovery.scan()
    status = recovery.status()
    assert (status.failed_scans, status.reseeded_keys) == (1, None)
    assert status.last_error and "broker unreachable" in status.last_error
    assert status.queued_overdue == 1, "the figures are refreshed even when the scan fails"
    logged = await store.query("SELECT count(*) FROM recovery_log")
    assert logged.rows == ((0,),), "nothing counted as re-driven"

    wire.down = False
    await recovery.scan()
    assert [topic for topic, _ in wire.sent] == ["delivered", "redrive"]
    assert len(wire.redrives()) == 1
    assert recovery.status().last_error is None


async def test_the_loop_survives_failed_scans(store: Store, wire: Broker, clock: FakeClock) -> None:
    now = clock()
    await store.archive_changes([archived("q1", now - timedelta(minutes=10))])
    await store.record_outcomes([outcome("q1", "queued", now - timedelta(minutes=5))])
    recovery = make_recovery(store, wire, clock)
    wire.down = True
    task = recovery.start()
    try:

        async def failed_twice() -> bool:
            return recovery.status().failed_scans >= 2

        await until(failed_twice, "two failed scans")
        assert not task.done(), "the loop keeps running"
        wire.down = False

        async def redriven() -> bool:
            return len(wire.redrives()) == 1

        await until(redriven, "the redrive once the broker is back")
    finally:
        await recovery.stop()
    assert task.done() and task.cancelled()


async def test_a_stop_that_lands_as_a_publish_completes_ends_the_loop(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    """The stop's cancellation reaches the loop just as its publish completes. On Python 3.11
    `asyncio.wait_for` then returned the publish's result and dropped the cancellation: the
    loop scanned on and `stop()` never returned (a 300 s hang of the suite)."""
    now = clock()
    await store.archive_changes([archived("q1", now - timedelta(minutes=10))])
    await store.record_outcomes([outcome("q1", "queued", now - timedelta(minutes=5))])
    tasks: list[asyncio.Task[None]] = []

    def stopped_as_it_completes(publish: Any) -> Any:
        async def publish_then_cancel(records: Any) -> None:
            await publish(records)
            tasks[0].cancel()

        return publish_then_cancel

    recovery = Recovery(
        store,
        Config(),
        publish_changes=stopped_as_it_completes(wire.publisher("changes")),
        publish_redrives=stopped_as_it_completes(wire.publisher("redrive")),
        publish_delivered=wire.publisher("delivered"),
        policy=POLICY,
        clock=clock,
        started_at=clock() - timedelta(hours=1),
    )
    tasks.append(recovery.start())
    done, _ = await asyncio.wait(tasks, timeout=10)
    try:
        assert done, "the loop ran on after its cancellation"
        assert tasks[0].cancelled()
        assert len(wire.sent) == 1, "no scan after the cancellation"
    finally:
        tasks[0].cancel()
        await recovery.stop()


async def test_a_store_failure_fails_the_scan_not_the_loop(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    recovery = make_recovery(store, wire, clock)
    await store.close()
    task = recovery.start()
    try:

        async def failed() -> bool:
            return recovery.status().failed_scans >= 2

        await until(failed, "failed scans on a closed store")
        assert not task.done()
    finally:
        await recovery.stop()


# -- what metrics show -------------------------------------------------------------------------

STATUS = RecoveryStatus(
    grace_s=60.0,
    horizon_s=604800.0,
    every_s=15.0,
    max_redrives=5,
    unpublished=2,
    unrouted=3,
    queued_overdue=4,
    redriven_total=17,
    stranded=1,
    nothing_expected=6,
    oldest_age_s=125.5,
    scans=9,
    failed_scans=1,
    last_scan_at=FIXED,
    reseeded_keys=100,
    reseed_s=0.5,
)


@pytest.fixture
async def client(store: Store) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    add_metrics_routes(app, store, runtime=lambda: RuntimeStatus(recovery=STATUS))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def test_recovery_in_troubleshooting_and_prometheus(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/api/v1/metrics/troubleshooting")
    assert response.status == 200
    recovery = (await response.json())["recovery"]
    assert recovery["grace_s"] == 60.0
    assert (recovery["unpublished"], recovery["unrouted"], recovery["queued_overdue"]) == (2, 3, 4)
    assert (recovery["redriven_total"], recovery["stranded"], recovery["oldest_age_s"]) == (
        17,
        1,
        125.5,
    )
    assert recovery["last_scan_at"] == FIXED.isoformat()

    text = await (await client.get("/metrics")).text()
    for line in (
        "signal_recovery_grace_seconds 60",
        "signal_recovery_unpublished_changes 2",
        "signal_recovery_unrouted_changes 3",
        "signal_recovery_queued_overdue 4",
        "signal_recovery_redriven_total 17",
        "signal_recovery_stranded 1",
        "signal_recovery_oldest_age_seconds 125.5",
        "signal_recovery_scans_failed_total 1",
        "# TYPE signal_recovery_redriven_total counter",
    ):
        assert line in text.splitlines(), line


async def test_without_recovery_troubleshooting_says_null(store: Store) -> None:
    app = web.Application()
    add_metrics_routes(app, store)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        body = await (await c.get("/api/v1/metrics/troubleshooting")).json()
        assert body["recovery"] is None
        assert "signal_recovery" not in await (await c.get("/metrics")).text()


async def test_the_service_status_before_any_scan(
    store: Store, wire: Broker, clock: FakeClock
) -> None:
    status = make_recovery(store, wire, clock).status()
    assert (status.grace_s, status.max_redrives, status.scans, status.oldest_age_s) == (
        60.0,
        5,
        0,
        None,
    )
