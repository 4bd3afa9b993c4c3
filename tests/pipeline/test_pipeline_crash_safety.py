"""Crash safety of the pipeline worker, its stages run in this process on a real embedded broker
against a real Marketo sandbox: the `queued` outcome of each delivery request, the delivered-keys
log written call by call ("sending" marks, possible repeats), the catch-up before recovery
redrives, and records that used to be dropped with only a log line.

The stages use Signal's fixed topic names, so this module takes a broker of its own
(`module_broker`); every test uses change ids of its own and reads only its records back.
Figures (time spent writing the log per batch) are printed (run with `-s`), never asserted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from simulators.marketo.sandbox import Sandbox
from stream.broker import EmbeddedBroker
from stream.messages import (
    DeliveryRequest,
    Message,
    OutcomeRecord,
    OutcomeStatus,
    Redrive,
    RedriveRequest,
)
from stream.pipeline import route_stage
from stream.pipeline.app import Pipeline, PipelineOptions
from stream.pipeline.deliver import deliver_batch
from stream.pipeline.deliver_stage import Fence
from stream.pipeline.delivered import delivery_key
from stream.pipeline.delivered_log import DeliveredLog
from stream.pipeline.records import route_records, salvaged_failure
from stream.pipeline.route import ROUTE_FLOW, route_change, route_failure
from stream.pipeline.snapshot import build_snapshot
from stream.topics import ALL_TOPICS, DELIVERED, DELIVERIES, OUTCOMES, declare_topics
from tests.pipeline.pipeline_support import (
    BOX,
    account,
    catalog_with,
    change,
    event_json,
    lead,
    registration_json,
    request,
    snapshot,
)
from tests.support.topics import produce, read_topic
from tests.support.waiting import until

NURTURE, VIP, FORM = "registered-to-nurture", "vip-attended", "complete-form"
EVENT = event_json()


# ---- pure parts ---------------------------------------------------------------------------------


def test_sending_marks_are_not_deliveries() -> None:
    log = DeliveredLog(retention_s=3600)
    now = time.time()
    (mark,) = log.note_sending(["a"], stamp=now)
    assert mark == ("a", b"sending:" + repr(now).encode())
    assert "a" not in log and log.is_sending("a")
    log.note(["a"], stamp=now + 1)
    assert "a" in log and not log.is_sending("a")
    assert log.note_sending(["a"]) == []  # a delivered pair keeps its delivery

    log.apply("b", b"sending:" + repr(now).encode())
    assert log.is_sending("b") and "b" not in log
    assert log.clear_sending(["b"]) == [("b", None)] and not log.is_sending("b")
    log.apply("c", b"sending:" + repr(now).encode())
    log.apply("c", None)
    assert not log.is_sending("c")
    log.apply("d", repr(now).encode())
    log.apply("d", b"sending:" + repr(now + 5).encode())  # read after the delivery: ignored
    assert "d" in log and not log.is_sending("d")
    log.apply("e", b"sending:oops")
    assert not log.is_sending("e")


async def test_sync_without_a_reader_gives_up_with_a_clear_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = DeliveredLog("kafka://127.0.0.1:9")
    with caplog.at_level(logging.WARNING, "signal.pipeline.delivered"):
        assert await log.sync(timeout_s=0.2) is False
    assert "not caught up with the end of signal-delivered within 0.2 s" in caplog.text


def test_route_records_pair_each_request_with_a_queued_outcome() -> None:
    routed = route_change(
        change(registration_json(1)),
        account(),
        catalog_with(EVENT),
        now=datetime.now(UTC),
        redrive=Redrive(flow_id=NURTURE, attempt=2, kind="recovery"),
    )
    (delivery,) = routed.deliveries
    records = route_records(routed)
    assert [(t, k) for t, k, _ in records] == [
        (OUTCOMES.name, delivery.change_id),
        (DELIVERIES.name, delivery.connection_id),
    ]
    queued = records[0][2]
    assert isinstance(queued, OutcomeRecord)
    assert queued.status is OutcomeStatus.QUEUED
    assert (queued.change_id, queued.flow_id, queued.connection_id, queued.action) == (
        delivery.change_id,
        delivery.flow_id,
        delivery.connection_id,
        delivery.action,
    )
    assert (queued.attempt, queued.redrive_kind, queued.replay_id) == (2, "recovery", None)
    assert queued.processed_at == delivery.routed_at and queued.latency_ms is None


def test_route_failure_names_each_flow_or_the_route() -> None:
    broken = change(registration_json(2))
    now = datetime.now(UTC)
    routed = route_failure(broken, account(), reason="internal error: boom", now=now)
    assert sorted(o.flow_id for o in routed.outcomes) == sorted([NURTURE, VIP, FORM])
    assert all(
        o.status is OutcomeStatus.FAILED and o.retryable and o.reason == "internal error: boom"
        for o in routed.outcomes
    )
    retry = Redrive(flow_id=VIP, attempt=3, kind="retry")
    (one,) = route_failure(broken, account(), reason="x", now=now, redrive=retry).outcomes
    assert (one.flow_id, one.attempt, one.redrive_kind) == (VIP, 3, "retry")
    (lone,) = route_failure(broken, None, reason="x", now=now).outcomes
    assert lone.flow_id == ROUTE_FLOW and not lone.retryable


def test_salvaged_failure_keeps_what_validates() -> None:
    fields = {
        "change_id": "c-1",
        "flow_id": NURTURE,
        "mode": "weird",
        "attempt": "not a number",
        "occurred_at": "2026-11-01T08:00:00Z",
        "connection_id": "mkto-prod",
    }
    outcome = salvaged_failure(fields, "unreadable", retryable=True)
    assert outcome is not None
    assert (outcome.mode, outcome.attempt, outcome.connection_id) == ("live", 1, "mkto-prod")
    assert outcome.occurred_at == datetime(2026, 11, 1, 8, tzinfo=UTC)
    assert salvaged_failure({"flow_id": NURTURE}, "x", retryable=True) is None


# ---- the stages on a broker ---------------------------------------------------------------------


_offsets = iter(range(1_000_000))


def event(topic: str, value: bytes | Message | dict[str, Any]) -> Any:
    """A Faust event as the stages read it (message value, topic, partition, offset, time)."""
    if isinstance(value, Message):
        value = value.dumps()
    elif isinstance(value, dict):
        value = json.dumps(value).encode()
    message = SimpleNamespace(
        topic=topic, partition=0, offset=next(_offsets), value=value, timestamp=time.time()
    )
    return SimpleNamespace(message=message)


@pytest.fixture
async def pipeline(
    module_broker: EmbeddedBroker, sandbox: Sandbox, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    await declare_topics(module_broker.url, ALL_TOPICS)
    made = Pipeline(PipelineOptions(broker_url=module_broker.url, data_dir=tmp_path))
    catalog = catalog_with(EVENT).to_dict()
    made.view.take(build_snapshot(snapshot(sandbox.url, catalog=catalog), BOX))
    reader = asyncio.create_task(made.delivered.run())
    try:
        await asyncio.wait_for(made.delivered.wait_loaded(), 60)
        yield made
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await made.pool.close()
        await made.publisher.stop()


async def outcomes_of(
    broker: EmbeddedBroker,
    change_ids: Sequence[str],
    enough: Callable[[list[dict[str, Any]]], bool],
) -> list[dict[str, Any]]:
    """The records on `signal-outcomes` of these changes, read until `enough` of them."""
    wanted = set(change_ids)

    def mine(records: list[Any]) -> list[dict[str, Any]]:
        found = [json.loads(r.value) for r in records]
        return [o for o in found if o["change_id"] in wanted]

    records = await read_topic(
        broker.bootstrap_servers, OUTCOMES.name, until=lambda rs: enough(mine(rs))
    )
    return mine(records)


async def log_values(broker: EmbeddedBroker, keys: set[str]) -> dict[str, bytes | None]:
    """The newest value of each of `keys` on `signal-delivered` (read once to its end)."""
    records = await read_topic(
        broker.bootstrap_servers,
        DELIVERED.name,
        until=lambda rs: keys <= {r.key.decode() for r in rs},
    )
    return {r.key.decode(): r.value for r in records if r.key.decode() in keys}


@pytest.mark.integration
async def test_route_publishes_a_queued_outcome_with_each_request(
    module_broker: EmbeddedBroker, pipeline: Pipeline
) -> None:
    changes = [registration_json(n) for n in range(1, 4)]
    ids = [c["changeId"] for c in changes]
    await pipeline.route_events([event("certain-changes", c) for c in changes], redrive=False)
    found = await outcomes_of(module_broker, ids, lambda os: len(os) >= 9)
    queued = [o for o in found if o["status"] == "queued"]
    assert sorted(o["change_id"] for o in queued) == sorted(ids)
    assert {o["flow_id"] for o in queued} == {NURTURE}
    requests = [
        DeliveryRequest.loads(r.value)
        for r in await read_topic(
            module_broker.bootstrap_servers,
            DELIVERIES.name,
            until=lambda rs: ids[-1].encode() in b"".join(r.value for r in rs),
        )
    ]
    mine = {r.change_id: r for r in requests if r.change_id in ids}
    for outcome in queued:
        sent = mine[outcome["change_id"]]
        assert datetime.fromisoformat(outcome["processed_at"]) == sent.routed_at
        assert outcome["attempt"] == sent.attempt == 1

    # The deliver step's outcome is newer than the queued one.
    await pipeline.deliver_events([event(DELIVERIES.name, r) for r in mine.values()])
    found = await outcomes_of(module_broker, ids, lambda os: len(os) >= 12)
    for change_id in ids:
        pair = [o for o in found if o["change_id"] == change_id and o["flow_id"] == NURTURE]
        (first, final) = sorted(pair, key=lambda o: o["processed_at"])
        assert (first["status"], final["status"]) == ("queued", "delivered")


@pytest.mark.integration
async def test_delivered_keys_are_in_the_log_before_the_next_campaign_call(
    module_broker: EmbeddedBroker, sandbox: Sandbox, pipeline: Pipeline
) -> None:
    batch = [request("create_update_lead", lead(n)) for n in range(100, 350)]
    key_of_email = {r.payload["email"]: delivery_key(r) for r in batch}
    seen: dict[str, bytes | None] = {}
    consumer = AIOKafkaConsumer(
        DELIVERED.name,
        bootstrap_servers=module_broker.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()

    async def follow() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=50)).values():
                seen.update({r.key.decode(): r.value for r in records})

    def keys_of_runs(runs: Sequence[dict[str, Any]]) -> set[str]:
        leads = sandbox.state.leads
        return {key_of_email[leads[i]["email"]] for run in runs for i in run["leadIds"]}

    checked: dict[int, str] = {}

    async def watch() -> None:
        """While campaign call k+1 is in flight, calls 1..k must be in the log as delivered,
        and call k+1's leads marked sending."""
        while len(checked) < 2:
            runs = list(sandbox.state.campaign_runs)
            if sandbox.in_flight and len(runs) in (1, 2) and len(runs) not in checked:
                done = keys_of_runs(runs)
                rest = set(key_of_email.values()) - done
                while len(sandbox.state.campaign_runs) == len(runs):
                    delivered = all(
                        (v := seen.get(k)) is not None and not v.startswith(b"sending:")
                        for k in done
                    )
                    marked = sum(
                        1 for k in rest if (v := seen.get(k)) and v.startswith(b"sending:")
                    )
                    if delivered and marked == min(100, len(rest)):
                        checked[len(runs)] = "seen while the next call was in flight"
                        break
                    await asyncio.sleep(0.01)
                else:
                    checked[len(runs)] = "not seen before the next call was answered"
            await asyncio.sleep(0.01)

    following = asyncio.create_task(follow())
    watching = asyncio.create_task(watch())
    sandbox.set_latency(1500)
    try:
        started = time.monotonic()
        outcomes, unpublished, withdrawn = await pipeline._deliver(batch)
        took = time.monotonic() - started
        await asyncio.wait_for(watching, 10)
    finally:
        sandbox.set_latency(0)
        watching.cancel()
        following.cancel()
        await asyncio.gather(watching, following, return_exceptions=True)
        await consumer.stop()
    assert {o.status for o in outcomes} == {OutcomeStatus.DELIVERED}
    assert withdrawn == []
    assert unpublished == []  # every delivered key was written right after its call
    assert len(sandbox.state.campaign_runs) == 3
    assert checked == {
        1: "seen while the next call was in flight",
        2: "seen while the next call was in flight",
    }
    values = await log_values(module_broker, set(key_of_email.values()))
    assert all(v is not None and not v.startswith(b"sending:") for v in values.values())
    print(f"\n250 leads, upsert + 3 campaign calls at 1.5 s each: {took:.2f} s")


@pytest.mark.integration
async def test_marking_costs_a_few_ms_per_batch(
    module_broker: EmbeddedBroker, sandbox: Sandbox, pipeline: Pipeline
) -> None:
    """Time per 300-request batch with and without the log writes around each call (printed)."""
    connection = pipeline.view.account.connection("mkto-prod")
    assert connection is not None
    client = await pipeline.pool.get(connection, pipeline.view.snapshot.secret("mkto-prod"))
    timings: dict[str, list[float]] = {"plain": [], "marked": []}
    for round_ in range(6):
        for kind in ("plain", "marked"):
            base = 10_000 + round_ * 1000 + (0 if kind == "plain" else 500)
            batch = [request("create_update_lead", lead(base + n)) for n in range(300)]
            hooks = pipeline._hooks(set(), Fence(0, {})) if kind == "marked" else None
            started = time.perf_counter()
            outcomes = await deliver_batch(batch, client, hooks=hooks)
            timings[kind].append(time.perf_counter() - started)
            assert {o.status for o in outcomes} == {OutcomeStatus.DELIVERED}
    plain = sorted(timings["plain"])[len(timings["plain"]) // 2] * 1000
    marked = sorted(timings["marked"])[len(timings["marked"]) // 2] * 1000
    print(
        f"\n300 requests (upsert + 3 campaign calls), median of 6: {plain:.1f} ms without "
        f"the log writes, {marked:.1f} ms with them (+{marked - plain:.1f} ms, 6 acks)"
    )


@pytest.mark.integration
async def test_a_sending_pair_delivered_again_is_a_possible_repeat(
    module_broker: EmbeddedBroker, sandbox: Sandbox, pipeline: Pipeline
) -> None:
    killed = request("create_update_lead", lead(400))
    fresh = request("create_update_lead", lead(401))
    key = delivery_key(killed)
    mark = b"sending:" + repr(time.time()).encode()
    await produce(module_broker.bootstrap_servers, [(DELIVERED.name, key.encode(), mark)])

    async def read() -> bool:
        return pipeline.delivered.is_sending(key)

    await until(read, "the sending mark read by the worker")
    await pipeline.deliver_events([event(DELIVERIES.name, killed), event(DELIVERIES.name, fresh)])
    found = await outcomes_of(
        module_broker, [killed.change_id, fresh.change_id], lambda os: len(os) >= 2
    )
    by_change = {o["change_id"]: o for o in found}
    assert by_change[killed.change_id]["status"] == "delivered"
    assert by_change[killed.change_id]["possible_repeat"] is True
    assert by_change[fresh.change_id]["possible_repeat"] is False
    assert pipeline.counters.possible_repeats == 1
    values = await log_values(module_broker, {key})
    assert values[key] is not None and not values[key].startswith(b"sending:")  # type: ignore[union-attr]


@pytest.mark.integration
async def test_a_recovery_redrive_of_a_pair_reseeded_moments_before_is_a_duplicate(
    module_broker: EmbeddedBroker, sandbox: Sandbox, pipeline: Pipeline
) -> None:
    requests = [
        request("create_update_lead", lead(n)).model_copy(update={"redrive_kind": "recovery"})
        for n in range(500, 505)
    ]
    keys = [delivery_key(r) for r in requests]
    stamp = repr(time.time() - 60).encode()  # control re-seeds the ledger's delivery time
    await produce(
        module_broker.bootstrap_servers, [(DELIVERED.name, k.encode(), stamp) for k in keys]
    )
    known_at_start = sum(k in pipeline.delivered for k in keys)
    await pipeline.deliver_events([event(DELIVERIES.name, r) for r in requests])
    found = await outcomes_of(
        module_broker, [r.change_id for r in requests], lambda os: len(os) >= 5
    )
    assert [o["status"] for o in found] == ["skipped_duplicate"] * 5
    emails = {r.payload["email"] for r in requests}
    assert not [lead for lead in sandbox.state.leads.values() if lead["email"] in emails]
    print(f"\n{known_at_start} of 5 re-seeded keys were read before the batch synced")


@pytest.mark.integration
async def test_unreadable_delivery_requests_reach_the_ledger_or_are_counted(
    module_broker: EmbeddedBroker, pipeline: Pipeline
) -> None:
    good = request("create_update_lead", lead(600))
    broken = {"change_id": "chg-broken-request", "flow_id": NURTURE, "mode": "live", "attempt": 2}
    await pipeline.deliver_events(
        [
            event(DELIVERIES.name, good),
            event(DELIVERIES.name, broken),
            event(DELIVERIES.name, b"\x00 not json"),
        ]
    )
    found = await outcomes_of(
        module_broker, [good.change_id, "chg-broken-request"], lambda os: len(os) >= 2
    )
    by_change = {o["change_id"]: o for o in found}
    assert by_change[good.change_id]["status"] == "delivered"
    failed = by_change["chg-broken-request"]
    assert (failed["status"], failed["category"], failed["retryable"]) == (
        "failed",
        "technical",
        True,
    )
    assert failed["reason"].startswith("unreadable delivery request: ValidationError")
    assert failed["attempt"] == 2
    assert pipeline.counters.unrecorded == 1


@pytest.mark.integration
async def test_a_change_whose_routing_breaks_fails_for_each_active_flow(
    module_broker: EmbeddedBroker, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("evaluation blew up")

    monkeypatch.setattr(route_stage, "route_change", broken)
    fresh = registration_json(700)
    retry = RedriveRequest(
        change=registration_json(701), redrive=Redrive(flow_id=VIP, attempt=2, kind="retry")
    )
    unreadable = {
        "change": {"changeId": "chg-unreadable-redrive", "occurredAt": "2026-11-01T08:00:00Z"},
        "redrive": {"flow_id": NURTURE, "attempt": 3, "kind": "retry"},
    }
    await pipeline.route_events([event("certain-changes", fresh)], redrive=False)
    await pipeline.route_events(
        [event("signal-redrive", retry), event("signal-redrive", unreadable)], redrive=True
    )
    ids = [fresh["changeId"], retry.change["changeId"], "chg-unreadable-redrive"]
    found = await outcomes_of(module_broker, ids, lambda os: len(os) >= 5)
    assert {o["status"] for o in found} == {"failed"}
    assert all(o["category"] == "technical" for o in found)
    fresh_flows = sorted(o["flow_id"] for o in found if o["change_id"] == ids[0])
    assert fresh_flows == sorted([NURTURE, VIP, FORM])
    assert all(
        o["reason"] == "internal error while routing: RuntimeError: evaluation blew up"
        and o["retryable"]
        for o in found
        if o["change_id"] != ids[2]
    )
    (redriven,) = [o for o in found if o["change_id"] == ids[1]]
    assert (redriven["flow_id"], redriven["attempt"], redriven["redrive_kind"]) == (
        VIP,
        2,
        "retry",
    )
    (rejected,) = [o for o in found if o["change_id"] == ids[2]]
    assert (rejected["flow_id"], rejected["attempt"], rejected["retryable"]) == (NURTURE, 3, False)
    assert rejected["reason"].startswith("redrive not readable by the pipeline")


@pytest.mark.integration
async def test_batches_that_fail_unexpectedly_record_their_changes(
    module_broker: EmbeddedBroker, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("catalog broke")

    monkeypatch.setattr(pipeline.view, "apply_event", broken)
    changes = [event_json(), registration_json(800)]
    await pipeline.route_events([event("certain-changes", c) for c in changes], redrive=False)
    ids = [c["changeId"] for c in changes]
    found = await outcomes_of(module_broker, ids, lambda os: len(os) >= 6)
    assert {(o["status"], o["reason"]) for o in found} == {
        ("failed", "internal error while routing: RuntimeError: catalog broke")
    }
    assert sorted(o["change_id"] for o in found) == sorted(ids * 3)

    # A deliver batch whose outcomes cannot be published the first time (a bug, not the
    # broker): its requests are recorded as failed, retryable.
    publish = pipeline.publish
    failures = iter([RuntimeError("serializer broke")])

    async def flaky(records: Sequence[tuple[str, str, Message | bytes | None]]) -> None:
        if any(topic == OUTCOMES.name for topic, _, _ in records):
            error = next(failures, None)
            if error is not None:
                raise error
        await publish(records)

    monkeypatch.setattr(pipeline, "publish", flaky)
    sent = request("create_update_lead", lead(801))
    await pipeline.deliver_events([event(DELIVERIES.name, sent)])
    (outcome,) = await outcomes_of(module_broker, [sent.change_id], bool)
    assert (outcome["status"], outcome["retryable"]) == ("failed", True)
    assert outcome["reason"] == "internal error while delivering: RuntimeError: serializer broke"
    # It was delivered meanwhile: its key is in the log, so the retry ends as a duplicate.
    assert delivery_key(sent) in pipeline.delivered
