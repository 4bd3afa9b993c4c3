"""A replay says what it does: progress counts published, delivered, failed, not sent and
pending pairs as their outcomes arrive, and "done" waits for the last final outcome; publishing
keeps a bounded number of pairs awaiting their outcome, so cancel stops what is not published
yet; "only changes not yet delivered" leaves delivered pairs out; `csignal replay --cancel`
exits 0 only when it stopped a replay. Real store, broker topic, operator API and CLI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stream.control.recorder import outcome_row
from stream.control.replay import ReplayManager
from stream.control.replay_dry_run import dry_run
from stream.control.replay_scope import ReplayError, ReplayScope
from stream.messages import FailureCategory, OutcomeRecord, OutcomeStatus
from stream.store import Store
from tests.retry.retry_helpers import OpsApi, RedriveTopic, StaticConfig, account, event
from tests.retry.retry_helpers import registration_dict as reg
from tests.retry.test_retry_commands import csignal
from tests.support.changes import catalog, change_row
from tests.support.clock import FIXED, FakeClock
from tests.support.waiting import until

SCOPE = ReplayScope("nurture", event_code="SUMMIT26")


def config() -> StaticConfig:
    return StaticConfig(account(), catalog(event()))


async def archive(store: Store, n: int) -> list[str]:
    ids = [f"c{i:03d}" for i in range(n)]
    rows = [change_row(reg(c, occurred_at=FIXED + timedelta(seconds=i))) for i, c in enumerate(ids)]
    await store.archive_changes(rows)
    return ids


def outcome(
    change_id: str, status: OutcomeStatus, *, replay_id: str | None = None, minutes: int = 60
) -> OutcomeRecord:
    return OutcomeRecord(
        change_id=change_id,
        flow_id="nurture",
        flow_name="Nurture",
        mode="live",
        status=status,
        category=FailureCategory.DATA if status is OutcomeStatus.FAILED else None,
        reason="email: required" if status is OutcomeStatus.FAILED else None,
        occurred_at=FIXED,
        processed_at=FIXED + timedelta(minutes=minutes),
        replay_id=replay_id,
    )


async def answer(
    store: Store, replay_id: str, statuses: dict[str, OutcomeStatus], minutes: int = 60
) -> None:
    """The pipeline's outcomes for these changes of the replay, `minutes` after FIXED."""
    await store.record_outcomes(
        [
            outcome_row(outcome(c, s, replay_id=replay_id, minutes=minutes))
            for c, s in statuses.items()
        ]
    )


async def test_progress_counts_outcomes_and_is_done_only_when_every_pair_answered(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    ids = await archive(store, 6)
    manager = ReplayManager(store, redrive.publish, config(), clock)
    replay = await manager.start(SCOPE, "ana")
    assert replay.task is not None
    await replay.task
    queued = {ids[0]: OutcomeStatus.QUEUED, ids[1]: OutcomeStatus.QUEUED}
    await answer(store, replay.id, queued, minutes=50)
    progress = await manager.progress(replay.id)
    assert progress is not None
    assert (progress["state"], progress["published"], progress["pending"]) == (
        "awaiting_outcomes",
        6,
        6,
    ), "a queued row is in flight, not an outcome"
    assert progress["summary"].startswith("published 6, 6 awaiting outcome")
    await answer(
        store,
        replay.id,
        {
            ids[0]: OutcomeStatus.DELIVERED,
            ids[1]: OutcomeStatus.FAILED,
            ids[2]: OutcomeStatus.NOT_ACTIVATED,
            ids[3]: OutcomeStatus.PARKED,
        },
    )
    progress = await manager.progress(replay.id)
    assert progress is not None
    got = {k: progress[k] for k in ("state", "delivered", "failed", "not_sent", "pending")}
    assert got == {
        "state": "awaiting_outcomes",
        "delivered": 1,
        "failed": 1,
        "not_sent": 1,
        "pending": 3,
    }, "a parked delivery still awaits its outcome"
    await answer(store, replay.id, {c: OutcomeStatus.DELIVERED for c in ids[3:]}, minutes=70)
    progress = await manager.progress(replay.id)
    assert progress is not None
    assert (progress["state"], progress["finished"], progress["delivered"]) == ("done", True, 4)
    assert progress["summary"] == "done: published 6 · 4 delivered, 1 failed, 1 not sent"
    with pytest.raises(ReplayError, match="nothing left to cancel: all 6 changes were published"):
        await manager.cancel(replay.id, "bo")


async def test_publishing_waits_for_outcomes_and_cancel_stops_the_rest(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    ids = await archive(store, 30)
    manager = ReplayManager(
        store, redrive.publish, config(), clock, chunk=5, max_pending=5, wait_s=0.02
    )
    replay = await manager.start(SCOPE, "ana")

    async def waiting() -> bool:
        return replay.waiting_for_outcomes

    await until(waiting, "the replay waits for the outcomes of its first chunk", every=0.02)
    assert replay.published == 5
    progress = await manager.progress(replay.id)
    assert progress is not None and progress["state"] == "publishing"
    assert "waiting for outcomes before publishing more" in progress["summary"]
    await answer(store, replay.id, {c: OutcomeStatus.DELIVERED for c in ids[:5]})

    async def second_chunk() -> bool:
        return replay.published == 10 and replay.waiting_for_outcomes

    await until(second_chunk, "the next chunk published once the first answered", every=0.02)
    cancelled = await manager.cancel(replay.id, "bo")
    assert cancelled is not None and cancelled.publishing == "cancelled"
    progress = await manager.progress(replay.id)
    assert progress is not None
    assert (progress["state"], progress["published"], progress["pending"]) == ("cancelled", 10, 5)
    assert progress["finished"] is False, "five published changes still await their outcome"
    assert progress["summary"].startswith("cancelled by bo after publishing 10;")
    assert len(await redrive.read(10, settle_s=0.3)) == 10, "nothing more went out"
    await answer(store, replay.id, {c: OutcomeStatus.DELIVERED for c in ids[5:10]})
    progress = await manager.progress(replay.id)
    assert progress is not None and progress["finished"] is True
    assert progress["state"] == "cancelled"


async def test_only_undelivered_leaves_delivered_pairs_out(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    ids = await archive(store, 5)
    await store.record_outcomes(
        [
            outcome_row(outcome(ids[0], OutcomeStatus.DELIVERED)),
            outcome_row(outcome(ids[1], OutcomeStatus.DELIVERED)),
            outcome_row(outcome(ids[2], OutcomeStatus.FAILED)),
        ]
    )
    report = (await dry_run(store, config(), SCOPE, only_undelivered=True)).to_dict()
    assert (report["in_scope"], report["skipped_delivered"], report["counts"]["would_send"]) == (
        5,
        2,
        3,
    )
    everything = (await dry_run(store, config(), SCOPE)).to_dict()
    assert (everything["skipped_delivered"], everything["counts"]["would_send"]) == (0, 5)
    manager = ReplayManager(store, redrive.publish, config(), clock)
    replay = await manager.start(SCOPE, "ana", only_undelivered=True)
    assert replay.task is not None
    await replay.task
    sent = await redrive.read(3)
    assert sorted(r.change["changeId"] for _, r in sent) == ids[2:]
    progress = await manager.progress(replay.id)
    assert progress is not None
    assert (progress["published"], progress["skipped_delivered"]) == (3, 2)
    assert "2 already delivered, skipped" in progress["summary"]
    audit = await store.config_audit(kind="replay")
    assert audit[0].change["only_undelivered"] is True


async def test_the_api_and_csignal_cancel_only_what_they_can(
    ops_api: OpsApi, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await archive(ops_api.store, 40)
    ops = ops_api.ops
    ops.replays = ReplayManager(
        ops_api.store, redrive.publish, ops_api.config, clock, chunk=2, pace_s=0.5
    )
    code, _, err = await csignal(ops_api, "replay", "--cancel", "rp-nope")
    assert code == 1 and "no replay 'rp-nope'" in err
    status, body = await ops_api.call(
        "POST",
        "/api/v1/replays",
        json={"flow_id": "nurture", "event_code": "SUMMIT26", "only_undelivered": True},
    )
    assert status == 202 and body["state"] == "publishing" and body["only_undelivered"] is True
    replay_id = body["id"]
    code, out, err = await csignal(ops_api, "replay", "--cancel", replay_id, actor="bo")
    assert code == 0, err
    assert f"replay {replay_id} cancelled" in err
    assert f"{replay_id}: cancelled by bo after publishing" in out
    code, _, err = await csignal(ops_api, "replay", "--cancel", replay_id)
    assert code == 1 and "cancelled already by bo" in err
    code, _, err = await csignal(ops_api, "replay", "--cancel", replay_id, "--status", replay_id)
    assert code == 2 and "not both" in err
    status, body = await ops_api.call("GET", "/api/v1/replays")
    listed: list[dict[str, Any]] = body["replays"]
    assert [(r["id"], r["state"]) for r in listed] == [(replay_id, "cancelled")]
    assert listed[0]["published"] < 40
