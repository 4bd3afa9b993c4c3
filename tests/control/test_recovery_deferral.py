"""Deferred changes are bounded: a change recovery cannot decide on (its event unknown to
control's catalog) waits at most `defer_max`, and at most `defer_limit` changes wait at once;
beyond either bound the change is recorded as `failed` for the flows that wait for its event
(through `signal-outcomes` and the real recorder into a real DuckDB file), never dropped, and
the counts are in the troubleshooting figures and Prometheus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from stream.control.recorder import Recorder
from stream.control.recovery import Recovery, RecoveryPolicy
from stream.messages import OutcomeRecord
from stream.metrics.prometheus import recovery_families, render
from stream.store import Store
from tests.control.test_recovery import FLOW, Broker, Config, archived
from tests.support.changes import catalog, event_change
from tests.support.clock import FIXED, FakeClock

GRACE = timedelta(seconds=60)
DEFER_MAX = timedelta(minutes=10)


def policy(**changes: Any) -> RecoveryPolicy:
    base: dict[str, Any] = {
        "grace": GRACE,
        "horizon": timedelta(days=7),
        "every_s": 0.05,
        "defer_max": DEFER_MAX,
        "defer_limit": 100,
    }
    return RecoveryPolicy(**{**base, **changes})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "signal.duckdb", reader_threads=2, threads=2)
    try:
        yield s
    finally:
        await s.close()


def make(
    store: Store,
    wire: Broker,
    clock: FakeClock,
    bounds: RecoveryPolicy,
    config: Config | None = None,
) -> Recovery:
    return Recovery(
        store,
        config or Config(),
        publish_changes=wire.publisher("changes"),
        publish_redrives=wire.publisher("redrive"),
        publish_delivered=wire.publisher("delivered"),
        publish_outcomes=wire.publisher("outcomes"),
        policy=bounds,
        clock=clock,
        started_at=clock() - timedelta(hours=1),
    )


async def record_published(store: Store, wire: Broker, recorded: int) -> list[OutcomeRecord]:
    """What recovery published to `signal-outcomes` after the first `recorded`, recorded by
    control's recorder as the record agent would."""
    values = [value for _, value in wire.records("outcomes")[recorded:]]
    recorder = Recorder(store, cast(Any, None))
    await recorder.record_outcomes(values)
    return [OutcomeRecord.loads(v) for v in values]


async def test_a_change_waits_at_most_defer_max_then_is_recorded_failed(store: Store) -> None:
    clock, wire = FakeClock(FIXED), Broker()
    now = clock()
    await store.archive_changes(
        [archived("later", now - timedelta(minutes=5), event_code="LATER26")]
    )
    recovery = make(store, wire, clock, policy())

    assert (await recovery.scan()).deferred == 1
    assert recovery.status().deferred == 1
    for _ in range(9):  # evaluated again each grace; still within defer_max
        clock.advance(seconds=61)
        result = await recovery.scan()
        assert (result.deferred, result.deferral_expired) == (1, 0)
    assert wire.records("outcomes") == [] and wire.redrives() == []

    clock.advance(seconds=61)  # 10:10 since it was first deferred
    result = await recovery.scan()
    assert (result.deferred, result.deferral_expired) == (0, 1)
    [failed] = await record_published(store, wire, 0)
    assert wire.records("outcomes")[0][0] == b"later", "keyed by change id, like any outcome"
    assert (failed.change_id, failed.flow_id, failed.status, failed.category) == (
        "later",
        FLOW,
        "failed",
        "data",
    )
    assert "LATER26" in str(failed.reason) and "gave up after waiting 0:10:10" in str(failed.reason)
    assert not failed.retryable

    outcomes = await store.query(
        "SELECT change_id, flow_id, status, category, reason FROM outcomes"
    )
    assert [row[:4] for row in outcomes.rows] == [("later", FLOW, "failed", "data")]
    held = await store.query("SELECT status FROM retry_queue WHERE change_id = 'later'")
    assert held.rows, "held in the retry queue for an operator's resubmit"
    log = await store.query("SELECT reason, stranded_at IS NOT NULL, first_at FROM recovery_log")
    assert log.rows == (("deferral_expired", True, now),)

    clock.advance(seconds=61)
    result = await recovery.scan()
    assert (result.deferred, result.deferral_expired, result.redriven_unrouted) == (0, 0, 0)
    status = recovery.status()
    assert (status.deferred, status.deferral_expired, status.unrouted, status.stranded) == (
        0,
        1,
        0,
        0,
    )
    assert len(wire.records("outcomes")) == 1, "recorded once"
    text = render(recovery_families(status)).splitlines()
    for line in (
        "signal_recovery_deferred_changes 0",
        "signal_recovery_deferral_expired_total 1",
        "signal_recovery_defer_max_seconds 600",
        "signal_recovery_defer_limit 100",
    ):
        assert line in text, line


async def test_no_more_than_defer_limit_changes_wait(store: Store) -> None:
    clock, wire = FakeClock(FIXED), Broker()
    now = clock()
    await store.archive_changes(
        [
            archived(f"later-{n}", now - timedelta(minutes=5, seconds=n), event_code="LATER26")
            for n in range(5)
        ]
    )
    recovery = make(store, wire, clock, policy(defer_limit=2))

    result = await recovery.scan()
    assert (result.deferred, result.deferral_expired) == (2, 3)
    failed = await record_published(store, wire, 0)
    assert len(failed) == 3 and all("2 changes already wait" in str(o.reason) for o in failed)
    assert {o.change_id for o in failed} == {"later-0", "later-1", "later-2"}, (
        "the oldest two keep waiting"
    )
    assert (recovery.status().deferred, recovery.status().deferral_expired) == (2, 3)

    # the two waiting ones are evaluated again and keep their place under the limit
    clock.advance(seconds=61)
    assert ((await recovery.scan()).deferred, recovery.status().deferred) == (2, 2)
    await store.archive_changes(
        [archived("later-new", clock() - timedelta(minutes=2), event_code="LATER26")]
    )
    result = await recovery.scan()
    assert (result.deferred, result.deferral_expired) == (0, 1), "no room for a third"


async def test_an_event_known_in_time_ends_the_wait_with_a_delivery(store: Store) -> None:
    clock, wire = FakeClock(FIXED), Broker()
    await store.archive_changes(
        [archived("later", clock() - timedelta(minutes=5), event_code="LATER26")]
    )
    config = Config()
    recovery = make(store, wire, clock, policy(), config)
    assert (await recovery.scan()).deferred == 1
    config.catalog = catalog(event_change(), event_change("LATER26"))
    clock.advance(minutes=9)
    result = await recovery.scan()
    assert (result.deferred, result.deferral_expired, result.redriven_unrouted) == (0, 0, 1)
    assert wire.records("outcomes") == []


async def test_a_failed_publish_gives_up_on_nothing_and_the_next_scan_does(store: Store) -> None:
    clock, wire = FakeClock(FIXED), Broker()
    await store.archive_changes(
        [archived("later", clock() - timedelta(minutes=5), event_code="LATER26")]
    )
    recovery = make(store, wire, clock, policy(defer_max=timedelta(seconds=30)))
    assert (await recovery.scan()).deferred == 1
    clock.advance(seconds=61)
    wire.down = True
    with pytest.raises(ConnectionError):
        await recovery.scan()
    log = await store.query("SELECT reason FROM recovery_log")
    assert log.rows == (("deferred",),), "not closed while its outcomes are not published"
    assert recovery.status().deferred == 1

    wire.down = False
    result = await recovery.scan()
    assert result.deferral_expired == 1
    [failed] = await record_published(store, wire, 0)
    assert failed.status == "failed" and recovery.status().deferral_expired == 1


async def test_without_an_outcomes_publisher_a_change_keeps_waiting(store: Store) -> None:
    clock, wire = FakeClock(FIXED), Broker()
    await store.archive_changes(
        [archived("later", clock() - timedelta(minutes=5), event_code="LATER26")]
    )
    recovery = Recovery(
        store,
        Config(),
        publish_changes=wire.publisher("changes"),
        publish_redrives=wire.publisher("redrive"),
        publish_delivered=wire.publisher("delivered"),
        policy=policy(defer_max=timedelta(seconds=30), defer_limit=0),
        clock=clock,
        started_at=clock() - timedelta(hours=1),
    )
    assert (await recovery.scan()).deferred == 1
    clock.advance(hours=2)
    assert (await recovery.scan()).deferred == 1
    assert recovery.status().deferred == 1


def test_the_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="deferral"):
        policy(defer_max=timedelta(0))
    with pytest.raises(ValueError, match="defer_limit"):
        policy(defer_limit=-1)
