"""The configuration publisher on its own: first snapshot retried, bursts debounced, failures
retried and counted, a pending change flushed on stop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from stream.control.snapshot_publisher import SnapshotPublisher
from stream.messages import ConfigSnapshot
from tests.support.waiting import until


class Topic:
    """Stands for `signal-config`: records what was sent; the first `fail` sends raise."""

    def __init__(self, fail: int = 0) -> None:
        self.sent: list[ConfigSnapshot] = []
        self.fail = fail

    async def __call__(self, snapshot: ConfigSnapshot) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker not there yet")
        self.sent.append(snapshot)


class Builder:
    """Numbers each snapshot it builds, so a test can tell which build went out."""

    def __init__(self) -> None:
        self.built = 0

    def __call__(self) -> ConfigSnapshot:
        self.built += 1
        return ConfigSnapshot(version=self.built, account={}, secrets={}, catalog={})


async def test_first_snapshot_is_retried_then_a_burst_goes_out_once() -> None:
    topic, build = Topic(fail=2), Builder()
    publisher = SnapshotPublisher(topic, build, debounce_s=0.2)
    await publisher.start()
    try:
        assert [s.version for s in topic.sent] == [1]
        assert publisher.published is topic.sent[0]
        for _ in range(5):
            publisher.mark_dirty()
        await until(_sent(topic, 2), "the burst published")
        assert build.built == 2  # five marks within the debounce: one snapshot
    finally:
        await publisher.stop()


async def test_a_failed_publication_is_counted_and_retried() -> None:
    topic, build = Topic(), Builder()
    publisher = SnapshotPublisher(topic, build, debounce_s=0.01)
    await publisher.start()
    try:
        topic.fail = 1
        publisher.mark_dirty()
        await until(_async(lambda: publisher.failures == 1), "the failure counted")
        await until(_sent(topic, 2), "the change published on the retry")
        assert publisher.failures == 0
        assert publisher.published is topic.sent[-1]
    finally:
        await publisher.stop()


async def test_stop_flushes_a_pending_change() -> None:
    topic, build = Topic(), Builder()
    publisher = SnapshotPublisher(topic, build, debounce_s=60.0)
    await publisher.start()
    publisher.mark_dirty()
    await publisher.stop()
    assert [s.version for s in topic.sent] == [1, 2]


def _sent(topic: Topic, count: int) -> Callable[[], Awaitable[bool]]:
    return _async(lambda: len(topic.sent) >= count)


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run


async def test_settled_waits_for_the_snapshot_and_gives_up_while_publishing_fails() -> None:
    """`settled` (what a passing connection test waits for before it releases parked
    deliveries): true at once with nothing pending, true once a change's snapshot went out,
    false after its timeout while publishing keeps failing — and true again once it succeeds."""
    topic, build = Topic(), Builder()
    publisher = SnapshotPublisher(topic, build, debounce_s=0.05)
    await publisher.start()
    try:
        assert await publisher.settled(0.01)
        publisher.mark_dirty()
        assert publisher.pending
        assert await publisher.settled(10.0)
        assert [s.version for s in topic.sent] == [1, 2] and not publisher.pending

        topic.fail = 1_000
        publisher.mark_dirty()
        assert not await publisher.settled(0.3)
        assert publisher.pending and len(topic.sent) == 2
        topic.fail = 0
        assert await publisher.settled(30.0)
        assert len(topic.sent) == 3
    finally:
        await publisher.stop()
