"""End to end with real parts: embedded broker, a pipeline worker process, the Marketo sandbox
with fault injection, the DuckDB store and config service, the retry scheduler on the demo
schedule and operator resubmits (C-11, C-12, reliability §10).

Control's record agent is played here by a small consumer of `signal-outcomes` that stores each
outcome with the retry transition the record agent uses (`plan_retry`); everything else is the
service's own code. The scheduler and the sandbox's quota run on the real clock, so every change
is dated now.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from simulators.marketo.sandbox import Sandbox
from stream.broker import EmbeddedBroker
from stream.control.config_service import ConfigService
from stream.control.recorder import outcome_row
from stream.control.resubmit import Resubmitter
from stream.control.retry_scheduler import DEMO_SCHEDULE, RetryScheduler, plan_retry
from stream.control.secret_store import SecretStore
from stream.messages import ConfigSnapshot, OutcomeRecord, OutcomeStatus
from stream.sealing import SecretBox
from stream.store import Store
from stream.topics import ALL_TOPICS, declare_topics
from tests.retry.retry_helpers import SECRET, SECRET_VAR, account_yaml, event
from tests.retry.retry_helpers import registration_dict as reg
from tests.support.changes import change_row
from tests.support.clock import now as clock_now
from tests.support.clock import recent
from tests.support.processes import ServiceProcess, start_pipeline, until_running

S = DEMO_SCHEDULE


class Control:
    """The control side: store, config service, the outcome recorder, scheduler, resubmits."""

    def __init__(self, store: Store, config: ConfigService, producer: AIOKafkaProducer) -> None:
        self.store = store
        self.config = config
        self.producer = producer
        self.outcomes: list[OutcomeRecord] = []
        self.redrives: list[tuple[str, int, str]] = []

    async def publish_redrive(self, records: Any) -> None:
        futures = []
        for key, value in records:
            body = json.loads(value)
            self.redrives.append(
                (body["change"]["changeId"], body["redrive"]["attempt"], body["redrive"]["kind"])
            )
            futures.append(await self.producer.send("signal-redrive", value, key=key))
        await asyncio.gather(*futures)

    async def ingest(self, data: dict[str, Any]) -> str:
        await self.store.archive_changes([change_row(data)])
        key = (data.get("registration") or {}).get("registrationCode") or data["eventCode"]
        await self.producer.send_and_wait(
            "certain-changes", json.dumps(data).encode(), key=key.encode()
        )
        return str(data["changeId"])

    async def record_forever(self, servers: str) -> None:
        consumer = AIOKafkaConsumer(
            "signal-outcomes", bootstrap_servers=servers, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=100)
                for messages in batches.values():
                    for message in messages:
                        record = OutcomeRecord.loads(message.value)
                        now = datetime.now(UTC)
                        existing = await self.store.get_retry_item(record.change_id, record.flow_id)
                        item = plan_retry(record, existing, schedule=S, now=now)
                        await self.store.record_outcomes(
                            [outcome_row(record)], [item] if item is not None else []
                        )
                        # Seen by the test only once durable, as control's views would show it.
                        self.outcomes.append(record)
        finally:
            await consumer.stop()

    def of(self, change_id: str) -> list[OutcomeRecord]:
        """The pair's outcomes, without the `queued` records route publishes with each request."""
        return [
            o
            for o in self.outcomes
            if o.change_id == change_id
            and o.flow_id == "nurture"
            and o.status is not OutcomeStatus.QUEUED
        ]


@pytest.fixture
async def world(
    tmp_path: Path, module_broker: EmbeddedBroker, sandbox: Sandbox
) -> AsyncIterator[tuple[Control, ServiceProcess, Sandbox, RetryScheduler]]:
    """Signal's own topic names: a broker of this module's own."""
    await declare_topics(module_broker.url, ALL_TOPICS)
    producer = AIOKafkaProducer(bootstrap_servers=module_broker.bootstrap_servers, acks="all")
    await producer.start()

    async def publish(snapshot: ConfigSnapshot) -> None:
        await (await producer.send("signal-config", snapshot.dumps(), key=b"snapshot"))

    data_dir = tmp_path / "control"
    data_dir.mkdir()
    (data_dir / "account.yaml").write_text(account_yaml(sandbox.url), encoding="utf-8")
    store = await Store.open(data_dir / "signal.duckdb", reader_threads=2, threads=2)
    config = ConfigService(
        store,
        SecretStore(data_dir / "secrets.json"),
        publish=publish,
        env={SECRET_VAR: SECRET},
        box=SecretBox.load_or_create(data_dir / "config-key"),
    )
    await config.start(data_dir / "account.yaml")
    control = Control(store, config, producer)
    recorder = asyncio.create_task(control.record_forever(module_broker.bootstrap_servers))
    scheduler = RetryScheduler(store, control.publish_redrive, schedule=S)
    worker = start_pipeline(module_broker, tmp_path, config_key=data_dir / "config-key")
    try:
        yield control, worker, sandbox, scheduler
    finally:
        worker.stop()
        await scheduler.stop()
        recorder.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await recorder
        await config.stop()
        await store.close()
        await producer.stop()


@pytest.mark.integration
@pytest.mark.e2e
async def test_outage_retries_abandons_resubmits_data_failure_and_quota_park(
    world: tuple[Control, ServiceProcess, Sandbox, RetryScheduler],
) -> None:
    control, worker, sandbox, scheduler = world
    summit = event(occurred_at=recent(days=1))
    control.config.apply_changes([summit])
    await control.ingest(summit.to_json_dict())
    # warm up: the worker is up, has the configuration and a token before anything breaks
    now = clock_now()
    await control.ingest(reg("w0", occurred_at=now))

    def delivered(cid: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return any(o.status is OutcomeStatus.DELIVERED for o in control.of(cid))

        return check

    await until_running(delivered("w0"), "the warm-up delivery", worker, within=120)
    scheduler.start()

    # --- an outage: three retries on the demo schedule, then abandoned -------------------------
    sandbox.start_outage(3600)
    await control.ingest(reg("c1", occurred_at=now))

    async def abandoned() -> bool:
        # The recorder writes the item, then notes the outcome: wait for both.
        item = await control.store.get_retry_item("c1", "nurture")
        return (
            item is not None
            and item.status == "abandoned"
            and len(control.of("c1")) >= item.attempts
        )

    await until_running(abandoned, "c1 abandoned", worker, within=150)
    item = await control.store.get_retry_item("c1", "nurture")
    assert item is not None and item.attempts == 4 and item.category == "technical"
    c1 = control.of("c1")
    assert [o.attempt for o in c1] == [1, 2, 3, 4]
    assert all(o.status is OutcomeStatus.FAILED for o in c1)
    assert [(a, k) for c, a, k in control.redrives if c == "c1"] == [
        (2, "retry"),
        (3, "retry"),
        (4, "retry"),
    ]
    gaps = [(c1[i + 1].processed_at - c1[i].processed_at).total_seconds() for i in range(3)]
    for gap, delay in zip(gaps, S.delays, strict=True):
        assert gap >= delay.total_seconds() * (1 - S.jitter), gaps
    assert sandbox.state.find("email", "r-c1@example.com") == []
    # A deliberate lower bound: a retry after abandonment would come within the longest delay.
    await asyncio.sleep(S.delays[-1].total_seconds() * 1.5)
    assert len(control.of("c1")) == 4, "nothing is retried after abandonment"

    # --- recovery, then one resubmit: delivered once ----------------------------------------------
    sandbox.end_outage()
    resubmitter = Resubmitter(control.store, control.publish_redrive, schedule=S)
    result = await resubmitter.resubmit([("c1", "nurture")], "ana")
    assert result.submitted == 1
    await until_running(delivered("c1"), "c1 delivered after resubmit", worker)

    async def resolved() -> bool:
        item = await control.store.get_retry_item("c1", "nurture")
        return item is not None and item.status == "resolved"

    await until_running(resolved, "c1 resolved", worker)
    again = await resubmitter.resubmit([("c1", "nurture")], "bo")
    assert (again.submitted, again.skipped_already_resolved) == (0, 1)
    assert len(sandbox.state.find("email", "r-c1@example.com")) == 1
    assert [o.status for o in control.of("c1")].count(OutcomeStatus.DELIVERED) == 1

    # --- a record Marketo rejects: a data failure with Marketo's reason, never retried ---------
    await control.ingest(reg("c2", email="not-an-email", occurred_at=now))

    async def held() -> bool:
        # The recorder writes the item, then notes the outcome: wait for both.
        item = await control.store.get_retry_item("c2", "nurture")
        return item is not None and bool(control.of("c2"))

    await until_running(held, "c2 in the retry queue", worker)
    item = await control.store.get_retry_item("c2", "nurture")
    assert item is not None
    assert (item.status, item.category, item.next_attempt_at) == ("pending", "data", None)
    [failure] = control.of("c2")
    assert failure.marketo_code == "1003"
    assert "1003" in (item.last_error or "") and "email" in (item.reason or "")

    # --- the daily quota: parked until the reset, no attempt spent ------------------------------
    sandbox.exhaust_quota()
    await control.ingest(reg("c3", occurred_at=now))

    async def parked() -> bool:
        return any(o.status is OutcomeStatus.PARKED for o in control.of("c3"))

    await until_running(parked, "c3 parked", worker)
    item = await control.store.get_retry_item("c3", "nurture")
    assert item is not None and item.status == "pending" and item.attempts == 0
    park = next(o for o in control.of("c3") if o.status is OutcomeStatus.PARKED)
    assert park.resume_at is not None and item.next_attempt_at == park.resume_at
    assert park.resume_at > datetime.now(UTC) + timedelta(minutes=1)
    # A deliberate lower bound: the running scheduler polls every fraction of a second, so a
    # redrive before the reset would show within this time.
    await asyncio.sleep(3)
    assert not [r for r in control.redrives if r[0] == "c3"], "nothing before the reset"
    assert len(control.of("c2")) == 1, "the data failure was not retried"

    # the reset: the instance's quota is back and a fresh worker has no park of its own
    await scheduler.stop()
    sandbox.quota.reset()
    worker.stop()
    worker.start()
    published = await scheduler.run_once(park.resume_at + timedelta(seconds=1))
    assert published == 1
    assert [(a, k) for c, a, k in control.redrives if c == "c3"] == [(1, "retry")]
    await until_running(delivered("c3"), "c3 delivered after the reset", worker, within=120)
    assert len(sandbox.state.find("email", "r-c3@example.com")) == 1
