"""Per-connection circuit breakers in the deliver stage, against two real Marketo sandboxes over
HTTP: an outage on one connection opens its breaker while the other keeps delivering; when it
is back, the probe closes the breaker and the deliveries parked meanwhile go out once.

The stage is the worker's own `DeliverStage` (connection lookup, client pool, delivered-keys log
and hooks) with the broker left out: what it publishes is kept in a list. The breakers run on a
fake monotonic clock, so the back-off passes when the test says; the retry queue's part (a
parked outcome comes back at its `resume_at`, attempt not spent) is played by delivering the
parked requests again. An operator's passing test reaches the stage as control's snapshot
would carry it (`ConfigSnapshot.tested`).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.models import Account
from simulators.marketo.sandbox import Sandbox
from stream.control.config_secrets import seal_snapshot
from stream.core.breaker import BreakerPolicy, BreakerState
from stream.core.catalog import EventCatalog
from stream.marketo.breaker_edge import CIRCUIT_OPEN
from stream.messages import (
    ApiCallRecord,
    ConfigSnapshot,
    DeliveryRequest,
    OutcomeRecord,
    OutcomeStatus,
)
from stream.pipeline.app import Counters, PipelineOptions
from stream.pipeline.clients import ClientPool
from stream.pipeline.deliver_stage import DeliverStage
from stream.pipeline.delivered_log import DeliveredLog
from stream.pipeline.marks_journal import MarksJournal
from stream.pipeline.publisher import Record
from stream.pipeline.snapshot import ConfigView, Snapshot, build_snapshot
from tests.pipeline.pipeline_support import BOX, SECRET, account_data, lead, request
from tests.support.fixtures import MakeSandbox

DOWN, UP = "mkto-down", "mkto-up"
CAMPAIGN = 1001
POLICY = BreakerPolicy(threshold=2, open_s=30.0, max_open_s=120.0)
QUICK = {"backoff_base_s": 0.01, "backoff_cap_s": 0.02, "max_attempts": 1}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Stage(DeliverStage):
    """The deliver stage of a worker whose broker is a list."""

    def __init__(self, account: Account, tmp_path: Path, clock: Clock) -> None:
        self.options = PipelineOptions(broker_url="kafka://127.0.0.1:9", data_dir=tmp_path)
        self.view = ConfigView()
        secrets = {c.id: SECRET for c in account.connections}
        self.view.take(Snapshot(1, account, secrets, EventCatalog()))
        self.counters = Counters()
        self.calls: list[ApiCallRecord] = []
        self.pool = ClientPool(self.calls.append, overrides=QUICK, breaker=POLICY, clock=clock)
        self.delivered = DeliveredLog()
        self.journal = MarksJournal(tmp_path / "journal")
        self._journal_replayed = True
        self.published: list[Record] = []

    async def publish(self, records: Sequence[Record]) -> None:
        self.published.extend(records)

    async def deliver(self, requests: list[DeliveryRequest]) -> list[OutcomeRecord]:
        outcomes, _, withdrawn = await self._deliver(requests)
        assert withdrawn == []
        return outcomes

    def calls_to(self, connection_id: str) -> int:
        return sum(1 for c in self.calls if c.connection_id == connection_id)


def two_connections(down_url: str, up_url: str) -> Account:
    data = account_data(down_url)
    first = data["connections"][0]
    second = copy.deepcopy(first)
    first["id"], second["id"] = DOWN, UP
    second.update(service_url=up_url, name="Second instance")
    data["connections"].append(second)
    for flow in data["flows"]:
        flow["destination"]["connection"] = DOWN
    return Account.model_validate(data)


def on(connection_id: str, n: int) -> DeliveryRequest:
    made = request("create_update_lead", lead(n), campaign_id=CAMPAIGN)
    return made.model_copy(update={"connection_id": connection_id})


def runs_of(sandbox: Sandbox, email: str) -> int:
    [lead_id] = sandbox.state.find("email", email)
    return sum(lead_id in run["leadIds"] for run in sandbox.state.campaign_runs)


@pytest.fixture
async def world(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> AsyncIterator[tuple[Stage, Sandbox, Sandbox, Clock]]:
    down, up = await make_sandbox(), await make_sandbox()
    clock = Clock()
    stage = Stage(two_connections(down.url, up.url), tmp_path, clock)
    try:
        yield stage, down, up, clock
    finally:
        await stage.pool.close()
        stage.journal.close()


def statuses(outcomes: Sequence[OutcomeRecord], connection_id: str) -> set[OutcomeStatus]:
    return {o.status for o in outcomes if o.connection_id == connection_id}


async def test_an_outage_opens_one_breaker_and_the_parked_deliveries_go_out_once(
    world: tuple[Stage, Sandbox, Sandbox, Clock],
) -> None:
    stage, down, up, clock = world
    down.start_outage(3600)
    n = iter(range(1, 1000))
    # Two batches fail on the instance that is down (one upsert call each): the breaker opens.
    for _ in range(2):
        batch = [on(DOWN, next(n)) for _ in range(3)] + [on(UP, next(n)) for _ in range(3)]
        outcomes = await stage.deliver(batch)
        assert statuses(outcomes, DOWN) == {OutcomeStatus.FAILED}
        assert statuses(outcomes, UP) == {OutcomeStatus.DELIVERED}
    breakers = stage.pool.breakers()
    assert breakers[DOWN].state is BreakerState.OPEN and breakers[DOWN].failures == 2
    assert "503" in (breakers[DOWN].reason or "")
    assert breakers[UP].state is BreakerState.CLOSED

    # While open: the down connection's deliveries park without a call, the other delivers.
    before = stage.calls_to(DOWN)
    held = [on(DOWN, next(n)) for _ in range(5)]
    outcomes = await stage.deliver(held + [on(UP, next(n)) for _ in range(4)])
    assert stage.calls_to(DOWN) == before, "an open breaker sends nothing"
    parked = [o for o in outcomes if o.connection_id == DOWN]
    assert {o.status for o in parked} == {OutcomeStatus.PARKED}
    assert {o.marketo_code for o in parked} == {CIRCUIT_OPEN}
    assert all(o.resume_at is not None and o.category is None for o in parked)
    assert all("circuit breaker" in (o.reason or "") for o in parked)
    assert statuses(outcomes, UP) == {OutcomeStatus.DELIVERED}
    assert len(up.state.leads) == 10

    # Back: once the back-off has passed, the parked deliveries come again and the probe (their
    # upsert) closes the breaker.
    down.end_outage()
    clock.t += POLICY.open_s
    outcomes = await stage.deliver(held)
    assert statuses(outcomes, DOWN) == {OutcomeStatus.DELIVERED}
    assert not any(o.possible_repeat for o in outcomes)
    assert stage.pool.breakers()[DOWN].state is BreakerState.CLOSED
    assert [runs_of(down, r.payload["email"]) for r in held] == [1] * 5
    # Delivered once: the same requests again are duplicates, and nothing more reaches Marketo.
    again = await stage.deliver(held)
    assert {o.status for o in again} == {OutcomeStatus.SKIPPED_DUPLICATE}
    assert [runs_of(down, r.payload["email"]) for r in held] == [1] * 5


async def test_a_failed_probe_opens_it_again_for_longer_and_parks_the_rest(
    world: tuple[Stage, Sandbox, Sandbox, Clock],
) -> None:
    stage, down, _, clock = world
    down.start_outage(3600)
    for n in range(2):
        await stage.deliver([on(DOWN, n)])
    first = stage.pool.breakers()[DOWN]
    assert first.state is BreakerState.OPEN and first.retry_at == POLICY.open_s
    clock.t += POLICY.open_s
    before = stage.calls_to(DOWN)
    # Forms go out concurrently: one of them is the probe, the others are refused meanwhile.
    forms = [
        request("form_post", lead(n), campaign_id=None, form_id=1234).model_copy(
            update={"connection_id": DOWN}
        )
        for n in range(10, 14)
    ]
    outcomes = await stage.deliver(forms)
    assert stage.calls_to(DOWN) == before + 1, "only the probe went out"
    assert sorted(o.status for o in outcomes) == sorted(
        [OutcomeStatus.FAILED] + [OutcomeStatus.PARKED] * 3
    )
    again = stage.pool.breakers()[DOWN]
    assert again.state is BreakerState.OPEN
    assert again.retry_at == clock.t + 2 * POLICY.open_s


def stamped(stage: Stage, version: int, tested: dict[str, datetime]) -> None:
    """Control's next snapshot with these passing-test stamps, as a worker reads it: sealed and
    tagged by control (`seal_snapshot`), sent as bytes, verified and rebuilt by the worker."""
    account = stage.view.account.model_copy(deep=True)
    for connection in account.connections:
        connection.client_secret = SecretStr(SECRET)
    sent = seal_snapshot(version, account, EventCatalog(), BOX, tested).dumps()
    message = ConfigSnapshot.loads(sent)
    BOX.verify(message.authenticated_bytes(), message.auth)
    stage.view.take(build_snapshot(message, BOX))


async def test_an_operators_passing_test_closes_an_open_breaker_before_its_back_off(
    world: tuple[Stage, Sandbox, Sandbox, Clock],
) -> None:
    stage, down, _, _ = world
    down.start_outage(3600)
    for n in range(2):
        await stage.deliver([on(DOWN, n)])
    assert stage.pool.breakers()[DOWN].state is BreakerState.OPEN
    down.end_outage()  # fixed outside Signal; the back-off (30 s on the clock) has not passed
    tested_at = datetime.now(UTC)

    # Stamps that do not move this connection's close nothing: another connection's, and (once
    # seen) the same stamp again.
    stamped(stage, 2, {UP: tested_at})
    held = [on(DOWN, n) for n in range(10, 13)]
    assert statuses(await stage.deliver(held), DOWN) == {OutcomeStatus.PARKED}
    assert stage.pool.breakers()[DOWN].state is BreakerState.OPEN

    # The operator's test passed: the next delivery finds the stamp and goes out at once.
    stamped(stage, 3, {UP: tested_at, DOWN: tested_at})
    outcomes = await stage.deliver(held)
    assert statuses(outcomes, DOWN) == {OutcomeStatus.DELIVERED}
    assert stage.pool.breakers()[DOWN].state is BreakerState.CLOSED
    assert [runs_of(down, r.payload["email"]) for r in held] == [1] * 3

    # The instance fails again: the stamp already seen does not hold the breaker closed.
    down.start_outage(3600)
    for n in range(20, 22):
        await stage.deliver([on(DOWN, n)])
    stamped(stage, 4, {UP: tested_at, DOWN: tested_at})
    stage.pool.see_tests(stage.view.snapshot.tested)
    assert statuses(await stage.deliver([on(DOWN, 30)]), DOWN) == {OutcomeStatus.PARKED}

    # Without any delivery: the worker's heartbeat applies a newer stamp (`see_tests`), so the
    # breakers it reports show the connection closed.
    down.end_outage()
    stamped(stage, 5, {DOWN: tested_at + timedelta(minutes=1)})
    stage.pool.see_tests(stage.view.snapshot.tested)
    assert stage.pool.breakers()[DOWN].state is BreakerState.CLOSED
    assert UP not in stage.pool.breakers(), "a stamp makes no breaker for an uncalled connection"
