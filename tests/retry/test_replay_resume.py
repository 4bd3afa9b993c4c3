"""A replay outlives the control that ran it: its progress is saved in the ledger (a real DuckDB
file) after each chunk the broker (the real embedded one) acknowledged, and a new manager on the
same ledger — a restarted control — resumes it after the last saved change, once it is told the
delivered keys are back; what it can no longer replay it reports as interrupted. The SIGKILL of
a real control mid-replay is in tests/e2e/test_e2e_replay_restart.py."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from stream.control.replay import ReplayManager
from stream.control.replay_scope import ReplayScope
from stream.store import Store
from stream.store.replays import load_replays
from tests.retry.retry_helpers import RedriveTopic, StaticConfig, account, event, registration_dict
from tests.support.changes import catalog, change_row
from tests.support.clock import FIXED, FakeClock
from tests.support.waiting import until

CHANGES = 400
CHUNK = 10


def config(*, active: bool = True) -> StaticConfig:
    acct = account()
    if not active:
        acct = acct.model_copy(
            update={"flows": [f.model_copy(update={"active": False}) for f in acct.flows]}
        )
    return StaticConfig(acct, catalog(event()))


async def seed(store: Store) -> None:
    rows = [change_row(event(occurred_at=FIXED - timedelta(hours=1)))]
    rows += [
        change_row(registration_dict(f"r{n:03d}", occurred_at=FIXED + timedelta(seconds=n)))
        for n in range(CHANGES)
    ]
    await store.archive_changes(rows)


def manager(
    store: Store, redrive: RedriveTopic, clock: FakeClock, cfg: StaticConfig | None = None
) -> ReplayManager:
    return ReplayManager(
        store,
        redrive.publish,
        cfg or config(),
        clock,
        page_size=50,
        chunk=CHUNK,
        pace_s=0.02,
    )


async def test_a_restarted_control_resumes_a_replay_after_its_last_saved_chunk(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await seed(store)
    first = manager(store, redrive, clock)
    replay = await first.start(ReplayScope("nurture", event_code="SUMMIT26"), "ana")
    [saved] = await load_replays(store)
    assert (saved.id, saved.publishing, saved.published) == (replay.id, "publishing", 0)

    async def under_way() -> bool:
        return replay.published >= 60

    await until(under_way, "60 changes of the replay published", every=0.01)
    await first.close()  # control stops: the ledger keeps the replay publishing
    [saved] = await load_replays(store)
    assert saved.publishing == "publishing"
    assert 0 < saved.published <= replay.published < CHANGES, "saved up to the last chunk"
    assert saved.after_change_id is not None

    ready = asyncio.Event()
    second = manager(store, redrive, clock)
    [resumed] = await second.resume(ready=ready.wait)
    assert resumed.id == replay.id and resumed.resumes == 1
    # a save under way when the first manager stopped still lands: resume reads what did
    saved_published = resumed.published
    assert saved.published <= saved_published <= replay.published
    await asyncio.sleep(0.2)
    assert resumed.published == saved_published, "nothing published before the keys are back"
    ready.set()
    assert resumed.task is not None
    await asyncio.wait_for(resumed.task, 60)

    sent = await redrive.read(CHANGES)
    ids = Counter(r.change["changeId"] for _, r in sent)
    assert set(ids) == {f"r{n:03d}" for n in range(CHANGES)}, "every change of the scope"
    again = sum(n - 1 for n in ids.values())
    assert again <= CHUNK, f"at most the chunk after the last save goes out twice ({again})"
    assert {r.redrive.replay_id for _, r in sent} == {replay.id}
    progress = await second.progress(replay.id)
    assert progress is not None
    assert (progress["publishing"], progress["published"], progress["in_scope"]) == (
        "published",
        CHANGES,
        CHANGES,
    )
    assert progress["scanned"] == CHANGES + 1, "the event change is scanned, not replayed"
    assert progress["resumes"] == 1

    third = manager(store, redrive, clock)
    assert await third.resume(ready=ready.wait) == []
    listed = await third.progress(replay.id)
    assert listed is not None and listed["publishing"] == "published", "history is kept"
    audit = await store.query(
        f"SELECT action FROM config_audit_log WHERE object_id = '{replay.id}' ORDER BY seq"
    )
    assert [row[0] for row in audit.rows] == ["start", "resume"]


async def test_a_replay_that_cannot_go_on_is_reported_interrupted(
    store: Store, redrive: RedriveTopic, clock: FakeClock
) -> None:
    await seed(store)
    first = manager(store, redrive, clock)
    replay = await first.start(ReplayScope("nurture", event_code="SUMMIT26"), "ana")

    async def under_way() -> bool:
        return replay.published >= 30

    await until(under_way, "30 changes of the replay published", every=0.01)
    await first.close()
    await store.write(lambda con: None)  # one writer: a save under way has landed

    async def never() -> None:
        raise AssertionError("an interrupted replay waits for nothing")

    second = manager(store, redrive, clock, config(active=False))
    assert await second.resume(ready=never) == []
    progress = await second.progress(replay.id)
    assert progress is not None
    published = progress["published"]
    assert progress["state"] == "interrupted" and 0 < published <= replay.published
    assert "inactive" in progress["error"]
    assert f"interrupted by a control restart after publishing {published}" in progress["summary"]
    [saved] = await load_replays(store)
    assert saved.publishing == "interrupted" and saved.finished_at is not None
    assert saved.published == published
