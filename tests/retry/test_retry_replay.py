"""Replays against a real store and broker: the dry run computes what would be sent without
publishing; a real replay publishes exactly the flow's in-scope changes; cancel stops it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from stream.control.recorder import outcome_row
from stream.control.replay import ReplayManager
from stream.control.replay_dry_run import dry_run
from stream.control.replay_scope import ReplayError, ReplayScope
from stream.messages import OutcomeRecord, OutcomeStatus
from stream.store import Store
from tests.retry.retry_helpers import (
    RedriveTopic,
    StaticConfig,
    account,
    event,
    registration_dict,
)
from tests.support.changes import catalog, change_row
from tests.support.clock import FIXED, FakeClock
from tests.support.waiting import until

# Replays take their clock from the test (a FakeClock) and their scope from the arguments: the
# fixed dates never meet the real clock.


def config() -> StaticConfig:
    return StaticConfig(account(), catalog(event(), event("OTHER", change_id="e2")))


async def seed(store: Store) -> None:
    """SUMMIT26: 6 status changes (4 New → would send, 1 Attended → not activated, 1 Waitlist →
    untagged data failure), 1 session change (another flow's source) and 1 event change;
    OTHER: 2 New registrations; and one SUMMIT26 change outside the time range."""
    rows = [change_row(event(occurred_at=FIXED - timedelta(hours=1)))]
    statuses = ["New", "New", "Attended", "New", "Waitlist", "New"]
    for n, status in enumerate(statuses):
        data = registration_dict(f"s{n}", status=status, occurred_at=FIXED + timedelta(minutes=n))
        rows.append(change_row(data))
    rows.append(
        change_row(
            registration_dict(
                "sess",
                change_type="session_registration.status_change",
                occurred_at=FIXED + timedelta(minutes=10),
            )
            | {
                "session": {
                    "sessionCode": "K1",
                    "sessionName": "Keynote",
                    "regSessionStatus": "Attended",
                }
            }
        )
    )
    for n in range(2):
        data = registration_dict(
            f"o{n}", event_code="OTHER", occurred_at=FIXED + timedelta(minutes=20 + n)
        )
        rows.append(change_row(data))
    rows.append(change_row(registration_dict("late", occurred_at=FIXED + timedelta(days=3))))
    await store.archive_changes(rows)


async def test_dry_run_of_one_event_counts_and_samples_without_publishing(
    store: Store, redrive: RedriveTopic
) -> None:
    await seed(store)
    report = await dry_run(
        store, config(), ReplayScope("nurture", event_code="SUMMIT26"), sample_size=3
    )
    data = report.to_dict()
    assert data["scanned"] == 9
    assert data["in_scope"] == 7
    assert data["counts"] == {
        "would_send": 5,
        "not_activated": 1,
        "filtered_out": 0,
        "data_failure": 1,
        "unreadable": 0,
    }
    assert [s["change_id"] for s in data["sample"]] == ["s0", "s1", "s3"]
    first = data["sample"][0]
    assert first["payload"] == {
        "email": "r-s0@example.com",
        "firstName": "Ana",
        "lastName": "Ruiz",
        "company": "Acme",
    }
    assert first["campaign_id"] == 1001 and first["status"] == "would_send"
    assert any("Waitlist" in r["reason"] for r in data["reasons"])
    assert data["warnings"] == []
    assert await redrive.read(settle_s=0.3) == []


async def test_dry_run_warns_when_a_replay_would_send_nothing(store: Store) -> None:
    await seed(store)
    cfg = config()
    flow = cfg.account.flow("nurture")
    assert flow is not None
    flow.active = False
    report = await dry_run(store, cfg, ReplayScope("nurture", event_code="SUMMIT26"))
    assert report.would_send == 5
    assert report.warnings and "inactive" in report.warnings[0]
    with pytest.raises(ReplayError) as refused:
        await ReplayManager(store, _never, cfg).start(
            ReplayScope("nurture", event_code="SUMMIT26"), "ana"
        )
    assert refused.value.status == 422
    with pytest.raises(ReplayError) as missing:
        await dry_run(store, cfg, ReplayScope("nope", event_code="SUMMIT26"))
    assert missing.value.status == 404


async def _never(records: object) -> None:
    raise AssertionError("nothing may be published")


def test_scope_is_checked() -> None:
    with pytest.raises(ReplayError, match="either a date range"):
        ReplayScope("nurture")
    with pytest.raises(ReplayError, match="either a date range"):
        ReplayScope(
            "nurture", occurred_from=FIXED, occurred_to=FIXED + timedelta(1), event_code="E"
        )
    with pytest.raises(ReplayError, match="before"):
        ReplayScope("nurture", occurred_from=FIXED, occurred_to=FIXED)
    with pytest.raises(ReplayError, match="time zone"):
        ReplayScope("nurture", occurred_from=FIXED.replace(tzinfo=None), occurred_to=FIXED)


async def test_a_replay_publishes_exactly_the_flows_changes_in_range(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await seed(store)
    manager = ReplayManager(store, redrive.publish, config(), clock, page_size=3, chunk=2)
    scope = ReplayScope("nurture", occurred_from=FIXED, occurred_to=FIXED + timedelta(days=1))
    replay = await manager.start(scope, "ana")
    assert replay.task is not None
    await replay.task
    sent = await redrive.read(8)
    expected = ["s0", "s1", "s2", "s3", "s4", "s5", "o0", "o1"]
    assert sorted(r.change["changeId"] for _, r in sent) == sorted(expected)
    assert {(r.redrive.kind, r.redrive.flow_id, r.redrive.replay_id) for _, r in sent} == {
        ("replay", "nurture", replay.id)
    }
    assert {k for k, _ in sent} == {f"R-{c}".encode() for c in expected}
    progress = await manager.progress(replay.id)
    assert progress is not None
    assert (progress["state"], progress["scanned"], progress["published"]) == (
        "awaiting_outcomes",
        9,
        8,
    ), "everything is published, nothing answered yet: not done"
    assert (progress["outcomes_seen"], progress["pending"], progress["finished"]) == (0, 8, False)
    # the pipeline's outcomes carry the replay id: they are counted and marked replayed
    records = [
        OutcomeRecord(
            change_id=r.change["changeId"],
            flow_id="nurture",
            flow_name="Nurture",
            mode="live",
            status=OutcomeStatus.DELIVERED,
            occurred_at=FIXED,
            processed_at=FIXED + timedelta(hours=1),
            replay_id=replay.id,
        )
        for _, r in sent[:5]
    ]
    await store.record_outcomes([outcome_row(r) for r in records])
    progress = await manager.progress(replay.id)
    assert progress is not None
    assert progress["outcomes_seen"] == 5 and progress["outcomes"] == {"delivered": 5}
    assert (progress["state"], progress["delivered"], progress["pending"]) == (
        "awaiting_outcomes",
        5,
        3,
    )
    result = await store.query(
        f"SELECT count(*) FROM outcome_attempts WHERE replay_id = '{replay.id}' AND replayed"
    )
    assert result.rows[0][0] == 5
    audit = await store.config_audit(kind="replay")
    assert [(a.action, a.actor, a.object_id) for a in audit] == [("start", "ana", replay.id)]


async def test_cancel_stops_a_running_replay(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    rows = [change_row(event(occurred_at=FIXED - timedelta(hours=1)))]
    rows += [
        change_row(registration_dict(f"c{n:04d}", occurred_at=FIXED + timedelta(seconds=n)))
        for n in range(400)
    ]
    await store.archive_changes(rows)
    manager = ReplayManager(
        store, redrive.publish, config(), clock, page_size=50, chunk=10, pace_s=0.05
    )
    replay = await manager.start(ReplayScope("nurture", event_code="SUMMIT26"), "ana")

    async def under_way() -> bool:
        return replay.published >= 30

    await until(under_way, "30 changes of the replay published", every=0.02)
    cancelled = await manager.cancel(replay.id, "bo")
    assert cancelled is not None and cancelled.publishing == "cancelled"
    stopped_at = replay.published
    assert 30 <= stopped_at < 400
    # A deliberate lower bound: a replay that kept going would publish a chunk every 0.05 s,
    # several of them in this time.
    await asyncio.sleep(0.3)
    progress = await manager.progress(replay.id)
    assert progress is not None
    assert progress["published"] == stopped_at and progress["state"] == "cancelled"
    assert progress["cancelled_by"] == "bo"
    assert len(await redrive.read(stopped_at, settle_s=0.5)) == stopped_at
    assert [a.action for a in await store.config_audit(kind="replay")] == ["cancel", "start"]
    assert await manager.cancel("rp-unknown", "bo") is None
    with pytest.raises(ReplayError, match="cancelled already by bo") as again:
        await manager.cancel(replay.id, "bo")
    assert again.value.status == 409
