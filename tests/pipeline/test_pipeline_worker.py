"""A real pipeline worker (`python -m stream pipeline`) on a real embedded broker, delivering to a
real Marketo sandbox served by this test.

The worker uses Signal's fixed topic names and consumer group, so this module takes a broker of
its own (`module_broker`) instead of sharing the session's. Figures (snapshot apply time,
repeated calls after a SIGKILL) are printed (run with `-s`), never asserted.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from simulators.marketo.sandbox import Sandbox
from stream.broker import EmbeddedBroker
from stream.messages import Redrive, RedriveRequest
from stream.sealing import authenticate
from stream.topics import ALL_TOPICS, DELIVERIES, OUTCOMES, declare_topics
from tests.pipeline.pipeline_support import (
    BOX,
    SESSION_NAME,
    catalog_with,
    event_json,
    registration_json,
    snapshot,
    write_key,
)
from tests.support.processes import ServiceProcess, start_pipeline, until_running

NURTURE, VIP, FORM = "registered-to-nurture", "vip-attended", "complete-form"
FLOWS = (NURTURE, VIP, FORM)


class Outcomes:
    """Every record on `signal-outcomes` (the `queued` ones, which route publishes with each
    delivery request, kept apart in `queued`), and every delivery request on
    `signal-deliveries`, read without a group."""

    def __init__(self, servers: str) -> None:
        self._consumer = AIOKafkaConsumer(
            OUTCOMES.name, DELIVERIES.name, bootstrap_servers=servers, auto_offset_reset="earliest"
        )
        self.records: list[dict[str, Any]] = []
        self.queued: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            for partition, messages in batches.items():
                for message in messages:
                    record = json.loads(message.value)
                    if partition.topic != OUTCOMES.name:
                        self.requests.append(record)
                    elif record["status"] == "queued":
                        self.queued.append(record)
                    else:
                        self.records.append(record)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    def of(self, change_id: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["change_id"] == change_id]

    def status(self, change_id: str, flow_id: str) -> list[str]:
        return [r["status"] for r in self.of(change_id) if r["flow_id"] == flow_id]

    def missing(self, change_ids: list[str], flows: int = 3) -> dict[str, list[str]]:
        """Changes with fewer than `flows` flows answered, and the flows that were."""
        answered = {c: sorted({r["flow_id"] for r in self.of(c)}) for c in change_ids}
        return {c: f for c, f in answered.items() if len(f) < flows}

    def requested(self, flow_id: str) -> set[str]:
        """Changes the worker routed to `flow_id` for delivery (requests on signal-deliveries)."""
        return {r["change_id"] for r in self.requests if r["flow_id"] == flow_id}

    async def wait(
        self,
        predicate: Callable[[], bool],
        what: str,
        worker: ServiceProcess,
        within: float = 90.0,
        detail: Callable[[], object] | None = None,
    ) -> None:
        async def holds() -> bool:
            return predicate()

        try:
            await until_running(holds, what, worker, within=within)
        except AssertionError as failure:
            if detail is None:
                raise
            raise AssertionError(f"{failure}\n({detail()})") from None


@pytest.fixture
async def producer(module_broker: EmbeddedBroker) -> AsyncIterator[AIOKafkaProducer]:
    made = AIOKafkaProducer(bootstrap_servers=module_broker.bootstrap_servers, acks="all")
    await made.start()
    yield made
    await made.stop()


async def send(producer: AIOKafkaProducer, topic: str, key: str, value: Any) -> None:
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    await producer.send_and_wait(topic, body, key=key.encode())


async def send_change(producer: AIOKafkaProducer, change: dict[str, Any]) -> str:
    key = change["registration"]["registrationCode"] if "registration" in change else "EVT"
    await send(producer, "certain-changes", key, change)
    return str(change["changeId"])


@pytest.mark.integration
@pytest.mark.e2e
async def test_worker_routes_delivers_dedupes_follows_config_and_survives_sigkill(
    module_broker: EmbeddedBroker,
    producer: AIOKafkaProducer,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    await declare_topics(module_broker.url, ALL_TOPICS)
    outcomes = Outcomes(module_broker.bootstrap_servers)
    await outcomes.start()
    worker: ServiceProcess | None = None
    try:
        await send(producer, "signal-config", "snapshot", snapshot(sandbox.url).dumps())
        started = time.monotonic()
        worker = start_pipeline(
            module_broker, tmp_path, name="worker", config_key=write_key(tmp_path / "config-key")
        )

        # --- every kind of outcome -------------------------------------------------------
        event = await send_change(producer, event_json())
        # Event and registrations are keyed to different partitions, so nothing orders them;
        # Certain creates an event long before its registrations change.
        await outcomes.wait(lambda: len(outcomes.of(event)) == 3, "the event's outcomes", worker)
        registered = [await send_change(producer, registration_json(n)) for n in range(1, 6)]
        france = await send_change(producer, registration_json(6, country="FR"))
        bad_email = await send_change(producer, registration_json(7, email="not-an-email"))
        session = await send_change(
            producer, registration_json(8, kind="session_registration.status_change")
        )
        form = await send_change(producer, registration_json(9, kind="registration.create_update"))
        garbage = b'{"changeId": "broken"'
        await send(producer, "certain-changes", "X", garbage)
        first_wave = [event, *registered, france, bad_email, session, form]
        await outcomes.wait(
            lambda: all(len(outcomes.of(c)) == 3 for c in first_wave),
            "three outcomes for each change",
            worker,
        )
        print(f"\nfirst outcomes {time.monotonic() - started:.1f}s after the worker started")
        assert {outcomes.status(event, f)[0] for f in FLOWS} == {"not_activated"}
        for change_id in registered:
            assert outcomes.status(change_id, NURTURE) == ["delivered"]
            assert outcomes.status(change_id, VIP) == ["not_activated"]
        assert outcomes.status(france, NURTURE) == ["filtered_out"]
        (bad,) = [r for r in outcomes.of(bad_email) if r["flow_id"] == NURTURE]
        assert (bad["status"], bad["category"], bad["marketo_code"]) == ("failed", "data", "1003")
        assert outcomes.status(session, VIP) == ["delivered"]
        assert outcomes.status(form, FORM) == ["delivered"]
        delivered = [r for r in outcomes.records if r["status"] == "delivered"]
        assert all(r["marketo_lead_id"] and r["lead_result"] for r in delivered)
        assert all(r["latency_ms"] is not None for r in outcomes.records)
        assert len(sandbox.state.form_fills) == 1
        vip_runs = [r for r in sandbox.state.campaign_runs if r["campaignId"] == 1002]
        assert vip_runs and vip_runs[0]["tokens"] == [
            {"name": "{{my.session}}", "value": SESSION_NAME}
        ]
        assert not [r for r in outcomes.records if r["change_id"] == "broken"]

        # --- the same change again is not delivered again ---------------------------------
        runs_before = sum(len(r["leadIds"]) for r in sandbox.state.campaign_runs)
        syncs_before = len(sandbox.calls("leads.sync"))
        await send_change(producer, registration_json(1, change_id=registered[0]))
        await outcomes.wait(
            lambda: "skipped_duplicate" in outcomes.status(registered[0], NURTURE),
            "the duplicate's outcome",
            worker,
        )
        assert outcomes.status(registered[0], NURTURE) == ["delivered", "skipped_duplicate"]
        assert sum(len(r["leadIds"]) for r in sandbox.state.campaign_runs) == runs_before
        assert len(sandbox.calls("leads.sync")) == syncs_before

        # --- redrives: a dry run, and a retry of the data failure -------------------------
        base = registration_json(10)
        dry = RedriveRequest(
            change=base,
            redrive=Redrive(
                flow_id=NURTURE, attempt=1, kind="replay", replay_id="rp-1", dry_run=True
            ),
        )
        retry = RedriveRequest(
            change=registration_json(7, change_id=bad_email, email="not-an-email"),
            redrive=Redrive(flow_id=NURTURE, attempt=2, kind="retry"),
        )
        await send(producer, "signal-redrive", "R000010", dry.dumps())
        await send(producer, "signal-redrive", "R000007", retry.dumps())
        await outcomes.wait(
            lambda: bool(outcomes.of(base["changeId"])) and len(outcomes.of(bad_email)) == 4,
            "redrive outcomes",
            worker,
        )
        (would,) = outcomes.of(base["changeId"])
        assert (would["status"], would["replay_id"], would["flow_id"]) == (
            "would_send",
            "rp-1",
            NURTURE,
        )
        assert would["payload"]["email"] == "user10@example.com"
        assert not [
            lead for lead in sandbox.state.leads.values() if lead["email"] == "user10@example.com"
        ]
        again = [r for r in outcomes.of(bad_email) if r["attempt"] == 2]
        assert [(r["status"], r["category"], r["redrive_kind"]) for r in again] == [
            ("failed", "data", "retry")
        ]

        # --- SIGKILL mid-stream, restart: every change ends with its outcomes --------------
        # Control republishes the catalog it learned from the event change; a restarted worker
        # starts from that snapshot (the event change itself is behind the committed offset).
        catalog = catalog_with(event_json(change_id=event)).to_dict()
        await send(
            producer,
            "signal-config",
            "snapshot",
            snapshot(sandbox.url, version=2, catalog=catalog).dumps(),
        )
        sandbox.set_latency(20)
        burst = [registration_json(1000 + n) for n in range(300)]
        ids = [c["changeId"] for c in burst]

        async def produce_burst() -> None:
            for offset in range(0, len(burst), 20):
                for change in burst[offset : offset + 20]:
                    await send_change(producer, change)
                await asyncio.sleep(0.05)

        producing = asyncio.create_task(produce_burst())
        await outcomes.wait(
            lambda: sum("delivered" in outcomes.status(c, NURTURE) for c in ids) >= 30,
            "some of the burst delivered",
            worker,
        )
        worker.stop(signal.SIGKILL)
        done_at_kill = sum(bool(outcomes.status(c, NURTURE)) for c in ids)
        await producing
        restarted = time.monotonic()
        worker.start()  # the same worker again: same data dir, its log continued
        await outcomes.wait(
            lambda: not outcomes.missing(ids),
            "outcomes for every change of the burst",
            worker,
            within=60,
            detail=lambda: f"missing: {outcomes.missing(ids)}",
        )
        print(
            f"burst: {done_at_kill}/300 changes had their delivery outcome at the SIGKILL; "
            f"all done {time.monotonic() - restarted:.1f}s after the restart"
        )
        statuses = {c: outcomes.status(c, NURTURE) for c in ids}
        undelivered = {c: s for c, s in statuses.items() if "delivered" not in s}
        assert not undelivered, f"burst changes without a delivered outcome: {undelivered}"
        assert all(set(s) <= {"delivered", "skipped_duplicate"} for s in statuses.values())
        repeated_outcomes = sum(s.count("delivered") - 1 for s in statuses.values())
        skipped = sum(s.count("skipped_duplicate") for s in statuses.values())
        burst_leads = {f"user{1000 + n}@example.com" for n in range(300)}
        lead_ids = {i for i, lead in sandbox.state.leads.items() if lead["email"] in burst_leads}
        assert len(lead_ids) == 300
        triggered = Counter(
            i for run in sandbox.state.campaign_runs for i in run["leadIds"] if i in lead_ids
        )
        assert set(triggered) == lead_ids
        repeated_triggers = sum(n - 1 for n in triggered.values())
        print(
            f"after SIGKILL: {repeated_triggers} repeated campaign requests, "
            f"{repeated_outcomes} repeated delivered outcomes, {skipped} duplicates skipped"
        )

        # The restarted worker read the delivered-keys log: an old change sent again after the
        # SIGKILL is still recognised.
        await send_change(producer, registration_json(2, change_id=registered[1]))
        await outcomes.wait(
            lambda: "skipped_duplicate" in outcomes.status(registered[1], NURTURE),
            "the duplicate's outcome after the restart",
            worker,
        )

        # --- a snapshot switching a flow inactive applies within moments -----------------
        # Probes flow continuously from before the snapshot; the first outcome processed
        # without the flow dates the switch.
        sandbox.set_latency(0)
        probes: list[str] = []
        probing = asyncio.Event()

        async def probe_forever() -> None:
            while True:
                probe = registration_json(5000 + len(probes))
                await send_change(producer, probe)
                probes.append(probe["changeId"])
                probing.set()
                await asyncio.sleep(0.02)

        prober = asyncio.create_task(probe_forever())
        try:
            await probing.wait()
            await outcomes.wait(lambda: bool(outcomes.of(probes[0])), "first probe", worker)
            inactive = snapshot(sandbox.url, version=3)
            (flow,) = [f for f in inactive.account["flows"] if f["id"] == NURTURE]
            flow["active"] = False
            switched_wall = datetime.now(UTC)
            # Tagged again after the edit, as control tags what it publishes.
            inactive = authenticate(inactive, BOX)
            await send(producer, "signal-config", "snapshot", inactive.dumps())

            def ignored() -> list[dict[str, Any]]:
                # A probe the flow still took has its two other outcomes long before the flow's
                # own (that one comes after the delivery), so under load it looks ignored for a
                # while; its delivery request, published with those outcomes, tells it apart.
                found = []
                requested = outcomes.requested(NURTURE)
                for change_id in list(probes):
                    records = outcomes.of(change_id)
                    flows = {r["flow_id"] for r in records}
                    if len(flows) == 2 and NURTURE not in flows and change_id not in requested:
                        found.append(records[0])
                return found

            await outcomes.wait(lambda: len(ignored()) >= 5, "changes ignored by the flow", worker)
        finally:
            prober.cancel()
            await asyncio.gather(prober, return_exceptions=True)

        # Probes routed before the switch may still be on their way to Marketo: wait until every
        # probe is routed and every delivery requested for the flow has its outcome.
        def deliveries_settled() -> bool:
            routed = all(len(outcomes.of(c)) >= 2 for c in probes)
            pending = outcomes.requested(NURTURE) & set(probes)
            return routed and all(outcomes.status(c, NURTURE) for c in pending)

        await outcomes.wait(deliveries_settled, "outcomes of the probes' deliveries", worker)

        # Probes have different registration codes, so they sit on different partitions and
        # nothing orders their routing across partitions: judge the switch in the order the
        # worker routed them (a change's earliest record is stamped when it was routed).
        def routed_at(change_id: str) -> datetime:
            return min(datetime.fromisoformat(r["processed_at"]) for r in outcomes.of(change_id))

        in_route_order = sorted(probes, key=routed_at)
        with_flow = [NURTURE in {r["flow_id"] for r in outcomes.of(c)} for c in in_route_order]
        switch = with_flow.index(False)
        assert any(with_flow[:switch]) and not any(with_flow[switch:])
        first = routed_at(in_route_order[switch])
        print(
            "inactive flow applied: first change ignored was routed "
            f"{(first - switched_wall).total_seconds():.3f}s after the snapshot was produced"
        )
        last_probe = probes[-1]
        await outcomes.wait(lambda: len(outcomes.of(last_probe)) >= 2, "last probe", worker)
        assert NURTURE not in {r["flow_id"] for r in outcomes.of(last_probe)}
        # The event catalog survived a snapshot that did not carry it.
        assert outcomes.status(last_probe, VIP) == ["not_activated"]
        assert all("catalog" not in (r["reason"] or "") for r in outcomes.of(last_probe))

        per_pair: dict[tuple[str, str], list[str]] = defaultdict(list)
        for record in outcomes.records:
            per_pair[(record["change_id"], record["flow_id"])].append(record["status"])
        assert all(statuses for statuses in per_pair.values())
        # Every delivery request went out with the queued outcome of its pair.
        queued = {(q["change_id"], q["flow_id"]) for q in outcomes.queued}
        assert {(r["change_id"], r["flow_id"]) for r in outcomes.requests} <= queued
        assert worker.stop() == 0
    finally:
        if worker is not None:
            worker.stop(signal.SIGKILL)
        await outcomes.stop()
