"""The deliver stage's fence (`deliver_stage.Fence`): a completing call is withdrawn, not sent,
when a rebalance began during its batch or another worker delivered or began sending one of its
pairs meanwhile; the withdrawn requests are queued again instead of given an outcome, and the
worker that owns the connection then delivers each once.

The stage is the worker's own `DeliverStage` against a real Marketo sandbox over HTTP, with the
broker left out: what it publishes is kept in a list. The rebalance count, which the worker reads
from its Faust app, is played by the test.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from config.models import Account
from simulators.marketo.sandbox import Sandbox
from stream.core.catalog import EventCatalog
from stream.marketo.errors import CallWithdrawn
from stream.messages import ApiCallRecord, DeliveryRequest, OutcomeRecord, OutcomeStatus
from stream.pipeline.app import Counters, PipelineOptions
from stream.pipeline.clients import ClientPool
from stream.pipeline.deliver_stage import DeliverStage, Fence
from stream.pipeline.delivered import delivery_key
from stream.pipeline.delivered_log import DeliveredLog
from stream.pipeline.marks_journal import MarksJournal
from stream.pipeline.publisher import Record
from stream.pipeline.snapshot import ConfigView, Snapshot
from stream.topics import DELIVERED, DELIVERIES, OUTCOMES
from tests.pipeline.pipeline_support import SECRET, account, lead, request
from tests.support.fixtures import MakeSandbox

CAMPAIGN = 1001


class Stage(DeliverStage):
    """The deliver stage of a worker whose broker is a list and whose rebalances the test
    counts (`rebalanced`)."""

    def __init__(self, account: Account, tmp_path: Path) -> None:
        self.options = PipelineOptions(broker_url="kafka://127.0.0.1:9", data_dir=tmp_path)
        self.view = ConfigView()
        secrets = {c.id: SECRET for c in account.connections}
        self.view.take(Snapshot(1, account, secrets, EventCatalog()))
        self.counters = Counters()
        self.calls: list[ApiCallRecord] = []
        self.pool = ClientPool(self.calls.append)
        self.delivered = DeliveredLog()
        self.delivered._loaded.set()  # nothing to read: the log is what the test applies
        self.journal = MarksJournal(tmp_path / "journal")
        self._journal_replayed = True
        self.published: list[Record] = []
        self.rebalanced: Callable[[], int] = lambda: 0

    def rebalances(self) -> int:
        return self.rebalanced()

    async def publish(self, records: Sequence[Record]) -> None:
        self.published.extend(records)

    def on(self, topic: str) -> list[Record]:
        return [r for r in self.published if r[0] == topic]


@pytest.fixture
async def world(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> AsyncIterator[tuple[Sandbox, Account]]:
    sandbox = await make_sandbox()
    yield sandbox, account(sandbox.url)


@pytest.fixture
async def stages(
    world: tuple[Sandbox, Account], tmp_path: Path
) -> AsyncIterator[tuple[Stage, Stage]]:
    _, acct = world
    first, second = Stage(acct, tmp_path / "first"), Stage(acct, tmp_path / "second")
    try:
        yield first, second
    finally:
        for stage in (first, second):
            await stage.pool.close()
            stage.journal.close()


def events(requests: Sequence[DeliveryRequest]) -> list[SimpleNamespace]:
    """Faust events as the stage reads them (`event.message.value`)."""
    return [SimpleNamespace(message=SimpleNamespace(value=r.dumps())) for r in requests]


def runs_per_lead(sandbox: Sandbox) -> dict[int, int]:
    runs: dict[int, int] = {}
    for run in sandbox.state.campaign_runs:
        for lead_id in run["leadIds"]:
            runs[lead_id] = runs.get(lead_id, 0) + 1
    return runs


def hand_over(source: Stage, target: Stage) -> None:
    """What `target`'s delivered-keys reader would read of `source`'s records."""
    for _, key, value in source.on(DELIVERED.name):
        assert value is None or isinstance(value, bytes)
        target.delivered.apply(key, value)


async def test_a_rebalance_mid_batch_withdraws_the_calls_not_yet_sent(
    world: tuple[Sandbox, Account], stages: tuple[Stage, Stage]
) -> None:
    sandbox, _ = world
    old, new = stages
    batch = [request("create_update_lead", lead(n), campaign_id=CAMPAIGN) for n in range(250)]
    # A rebalance begins once the batch's first campaign call (100 leads) went out.
    old.rebalanced = lambda: 1 if sandbox.state.campaign_runs else 0
    await old.deliver_events(events(batch))

    assert len(sandbox.state.campaign_runs) == 1  # the two calls left were withdrawn
    outcomes = [value for _, _, value in old.on(OUTCOMES.name)]
    assert isinstance(outcomes[0], OutcomeRecord)
    assert len(outcomes) == 100
    assert {o.status for o in outcomes if isinstance(o, OutcomeRecord)} == {OutcomeStatus.DELIVERED}
    queued = [value for _, _, value in old.on(DELIVERIES.name)]
    assert len(queued) == 150
    assert all(isinstance(r, DeliveryRequest) for r in queued)
    assert {r.change_id for r in queued if isinstance(r, DeliveryRequest)} | {
        o.change_id for o in outcomes if isinstance(o, OutcomeRecord)
    } == {r.change_id for r in batch}
    # The withdrawn calls were never marked, and no tombstone clears another worker's mark.
    withdrawn_keys = {delivery_key(r) for r in queued if isinstance(r, DeliveryRequest)}
    marked = {key for _, key, _ in old.on(DELIVERED.name)}
    assert not withdrawn_keys & marked
    assert old.counters.withdrawn == 150

    # The partition's new owner gets the batch again from the last committed offset, then the
    # requests queued again: each lead is requested once in all.
    hand_over(old, new)
    await new.deliver_events(events(batch))
    await new.deliver_events(events([r for r in queued if isinstance(r, DeliveryRequest)]))
    runs = runs_per_lead(sandbox)
    assert len(runs) == 250 and set(runs.values()) == {1}
    statuses = [value.status for _, _, value in new.on(OUTCOMES.name)]  # type: ignore[union-attr]
    assert statuses.count(OutcomeStatus.DELIVERED) == 150
    assert statuses.count(OutcomeStatus.SKIPPED_DUPLICATE) == 250


async def test_a_pair_another_worker_sends_meanwhile_is_withdrawn_once_its_mark_is_seen(
    world: tuple[Sandbox, Account], stages: tuple[Stage, Stage], caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers given the same batch (one dropped from the group while it worked): each
    withdraws a call whose pairs the other marked "sending" after the batch began."""
    sandbox, _ = world
    first, _ = stages
    batch = [request("create_update_lead", lead(n), campaign_id=CAMPAIGN) for n in range(120)]
    keys = [delivery_key(r) for r in batch]
    # The other worker's mark for a pair of the second call arrives after the batch began.
    marks_seen = 0

    def rebalanced() -> int:
        nonlocal marks_seen
        if sandbox.state.campaign_runs and not marks_seen:
            first.delivered.apply(keys[110], b"sending:1767225600.5")
            marks_seen = 1
        return 0

    first.rebalanced = rebalanced
    await first.deliver_events(events(batch))
    assert len(sandbox.state.campaign_runs) == 1
    assert len(first.on(DELIVERIES.name)) == 20
    assert "20 deliveries withdrawn" in caplog.text
    assert "another worker began sending them meanwhile" in caplog.text
    assert [value for _, _, value in first.on(DELIVERED.name) if value is None] == []


def test_the_fence_withdraws_on_a_rebalance_a_delivery_or_a_fresh_mark() -> None:
    log = DeliveredLog()
    a, b, c = (f"{change}\x1fflow-1" for change in "abc")
    log.apply(a, b"sending:100.0")  # a mark from an attempt before the batch: not fresh
    fence = Fence(3, {a: 100.0, b: None, c: None})
    fence.check(3, [a, b], log)  # nothing changed: the call may go
    fence.mine.update([a, b])
    log.apply(b, b"sending:200.0")  # the batch's own mark coming back from the topic
    fence.check(3, [b], log)

    log.apply(c, b"sending:300.0")
    with pytest.raises(CallWithdrawn, match="began sending change 'c', flow 'flow-1'"):
        fence.check(3, [c], log)
    log.apply(c, repr(time.time()).encode())  # delivered now (older keys have expired)
    with pytest.raises(CallWithdrawn, match="delivered change 'c', flow 'flow-1'"):
        fence.check(3, [c], log)
    with pytest.raises(CallWithdrawn, match="rebalance"):
        fence.check(4, [b], log)


class Lagging(DeliveredLog):
    """A delivered-keys reader behind the topic: the records it has not read yet are `held`
    until `sync` catches up with the topic's end."""

    def __init__(self) -> None:
        super().__init__()
        self._loaded.set()
        self.held: list[tuple[str, bytes]] = []
        self.syncs = 0

    async def sync(self, timeout_s: float = 10.0) -> bool:
        self.syncs += 1
        for key, value in self.held:
            self.apply(key, value)
        self.held.clear()
        return True


async def test_the_first_batch_after_a_rebalance_reads_the_log_to_its_end(
    world: tuple[Sandbox, Account], stages: tuple[Stage, Stage]
) -> None:
    """A pair the partition's previous owner delivered a moment before the rebalance is a
    duplicate for the new owner even when its reader had not got that far."""
    sandbox, _ = world
    stage, _ = stages
    log = stage.delivered = Lagging()
    first = [request("create_update_lead", lead(n), campaign_id=CAMPAIGN) for n in range(2)]
    await stage.deliver_events(events(first))
    assert log.syncs == 0 and len(sandbox.state.campaign_runs) == 1

    taken_over = request("create_update_lead", lead(7), campaign_id=CAMPAIGN)
    log.held.append((delivery_key(taken_over), repr(time.time()).encode()))
    stage.rebalanced = lambda: 1
    fresh = request("create_update_lead", lead(8), campaign_id=CAMPAIGN)
    await stage.deliver_events(events([taken_over, fresh]))
    assert log.syncs == 1
    statuses = {
        value.change_id: value.status
        for _, _, value in stage.on(OUTCOMES.name)
        if isinstance(value, OutcomeRecord)
    }
    assert statuses[taken_over.change_id] is OutcomeStatus.SKIPPED_DUPLICATE
    assert statuses[fresh.change_id] is OutcomeStatus.DELIVERED
    assert len(sandbox.state.campaign_runs) == 2  # the fresh lead's call only

    await stage.deliver_events(events([request("create_update_lead", lead(9))]))
    assert log.syncs == 1  # no rebalance since: no second wait
