"""Shared data and helpers of the retry-queue, replay and preview tests (importable because pytest
puts this folder on the path; the folder is not a package so it cannot shadow anything)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from aiohttp.test_utils import TestClient
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from config.models import Account
from stream.certain.events import ChangeEvent
from stream.control.config_service import ConfigService
from stream.control.operations import Operations
from stream.core.catalog import EventCatalog
from stream.messages import RedriveRequest
from stream.store import ChangeRow, Store

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

ACCOUNT_YAML = """\
account: ACME
tags:
  - {name: registered, label: Registered, objects: [registration_status]}
  - {name: attended, label: Attended, objects: [registration_status, session_registration_status]}
  - {name: event_live, label: Event is live, objects: [event_status]}
assignments:
  registration_statuses: {New: [registered], Attended: [attended]}
  session_registration_statuses: {Attended: [attended]}
  event_statuses: {Active: [event_live]}
connections:
  - id: mkto
    name: Marketo sandbox
    target: marketo
    service_url: __SERVICE_URL__
    client_id: sandbox-client
    client_secret: ${SIGNAL_RETRY_TEST_SECRET}
    primary: true
mappings:
  - id: lead-basic
    name: Lead basics
    fields:
      - {target: email, sources: [registration.profile.email], transforms: [trim, lower]}
      - {target: firstName, sources: [registration.profile.firstName], transforms: [trim, proper]}
      - {target: lastName, sources: [registration.profile.lastName]}
      - {target: company, sources: [registration.profile.organization]}
flows:
  - id: nurture
    name: Registered to nurture
    mode: live
    active: true
    source: registration.status_change
    activate_for: {registration_statuses: [registered]}
    destination:
      name: Leads
      connection: mkto
      action: create_update_lead
      mapping: lead-basic
      campaign: {campaign_id: 1001}
  - id: sessions
    name: Session attendance
    mode: live
    active: true
    source: session_registration.status_change
    activate_for: {session_registration_statuses: [attended]}
    destination:
      name: Sessions
      connection: mkto
      action: create_update_lead
      mapping: lead-basic
      campaign: {campaign_id: 1001}
"""
SECRET_VAR = "SIGNAL_RETRY_TEST_SECRET"
SECRET = "sandbox-secret"


def account_yaml(service_url: str = "https://123-ABC-456.mktorest.com") -> str:
    return ACCOUNT_YAML.replace("__SERVICE_URL__", service_url)


def account(service_url: str = "https://123-ABC-456.mktorest.com") -> Account:
    raw = yaml.safe_load(account_yaml(service_url))
    raw["connections"][0]["client_secret"] = SECRET
    return Account.model_validate(raw)


def event_dict(
    code: str = "SUMMIT26",
    *,
    change_id: str = "evt-1",
    occurred_at: datetime = T0 - timedelta(days=1),
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "changeId": change_id,
        "type": "event.create_update",
        "accountCode": "ACME",
        "eventCode": code,
        "occurredAt": occurred_at.isoformat(),
        "event": {
            "eventCode": code,
            "eventName": "Acme Summit",
            "eventStatus": "Active",
            "isTest": False,
            "eventQuestions": {},
            "setup": {
                "statuses": statuses
                if statuses is not None
                else [
                    {"label": "New", "classification": "Accepted", "tags": []},
                    {"label": "Waitlist", "classification": "Pending", "tags": []},
                ],
                "eventTags": [],
            },
        },
    }


def registration_dict(
    change_id: str,
    *,
    status: str = "New",
    code: str | None = None,
    event_code: str = "SUMMIT26",
    occurred_at: datetime = T0,
    email: str | None = None,
    first_name: str = "ana",
    change_type: str = "registration.status_change",
) -> dict[str, Any]:
    registration_code = code or f"R-{change_id}"
    return {
        "changeId": change_id,
        "type": change_type,
        "accountCode": "ACME",
        "eventCode": event_code,
        "occurredAt": occurred_at.isoformat(),
        "registration": {
            "registrationCode": registration_code,
            "attendeeTypeCode": "Attendee",
            "registrationStatusLabel": status,
            "isTest": False,
            "isActive": True,
            "profile": {
                "firstName": first_name,
                "lastName": "Ruiz",
                "email": email or f"{registration_code.lower()}@example.com",
                "organization": "Acme",
            },
        },
    }


def change_row(data: dict[str, Any], *, received_at: datetime | None = None) -> ChangeRow:
    change = ChangeEvent.model_validate(data)
    return ChangeRow(
        change_id=change.change_id,
        type=change.type.value,
        account_code=change.account_code,
        event_code=change.event_code,
        registration_code=change.registration_code,
        is_test=False,
        occurred_at=change.occurred_at,
        received_at=received_at or change.occurred_at + timedelta(seconds=1),
        payload=json.dumps(change.to_json_dict()),
        source="api",
    )


def catalog_of(*events: dict[str, Any]) -> EventCatalog:
    return EventCatalog().apply_all(ChangeEvent.model_validate(e) for e in events)


@dataclass
class StaticConfig:
    """The configuration and catalog as control holds them, for previews and dry runs."""

    account: Account
    catalog: EventCatalog = field(default_factory=EventCatalog)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class RedriveTopic:
    """A per-test `signal-redrive` topic on the embedded broker: publish into it and read it."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.name = f"signal-redrive-{uuid.uuid4().hex[:10]}"
        self.producer: AIOKafkaProducer | None = None
        self.fail_next = 0

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def publish(self, records: Any) -> None:
        assert self.producer is not None
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker refused the batch (injected)")
        futures = [await self.producer.send(self.name, value, key=key) for key, value in records]
        await asyncio.gather(*futures)

    async def read(
        self, expect: int | None = None, *, settle_s: float = 0.5, timeout_s: float = 15.0
    ) -> list[tuple[bytes, RedriveRequest]]:
        """Every record in the topic: waits for `expect` records, then `settle_s` more to see
        that no extra record arrives."""
        consumer = AIOKafkaConsumer(
            self.name,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        found: list[tuple[bytes, RedriveRequest]] = []
        try:
            deadline = time.monotonic() + timeout_s
            quiet_until: float | None = None
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=100)
                for records in batch.values():
                    for r in records:
                        found.append((r.key, RedriveRequest.loads(r.value)))
                if expect is not None and len(found) >= expect and quiet_until is None:
                    quiet_until = time.monotonic() + settle_s
                if expect is None and quiet_until is None:
                    quiet_until = time.monotonic() + settle_s
                if quiet_until is not None and time.monotonic() >= quiet_until:
                    break
        finally:
            await consumer.stop()
        return found


def outcome_row(record: Any) -> Any:
    """The ledger row of an `OutcomeRecord`, as the record agent stores it."""
    from stream.store import OutcomeRow

    return OutcomeRow(
        change_id=record.change_id,
        flow_id=record.flow_id,
        flow_name=record.flow_name,
        mode=record.mode,
        status=record.status.value,
        occurred_at=record.occurred_at,
        processed_at=record.processed_at,
        attempt=record.attempt,
        registration_code=record.registration_code,
        event_code=record.event_code,
        action=record.action,
        category=record.category.value if record.category is not None else None,
        reason=record.reason,
        connection_id=record.connection_id,
        marketo_code=record.marketo_code,
        replay_id=record.replay_id,
    )


async def record_outcome(store: Any, record: Any, schedule: Any, now: datetime) -> Any:
    """Store one outcome and its retry item the way the record agent does (`plan_retry`)."""
    from stream.control.retry_scheduler import plan_retry

    existing = await store.get_retry_item(record.change_id, record.flow_id)
    item = plan_retry(record, existing, schedule=schedule, now=now, jitter=lambda: 0.5)
    await store.record_outcomes([outcome_row(record)], [item] if item is not None else [])
    return await store.get_retry_item(record.change_id, record.flow_id)


async def record_new_outcomes(store: Any, records: Any, schedule: Any, now: datetime) -> None:
    """Store first outcomes (no item yet) and their retry items in one batch."""
    from stream.control.retry_scheduler import plan_retry

    items = [plan_retry(r, None, schedule=schedule, now=now, jitter=lambda: 0.5) for r in records]
    await store.record_outcomes(
        [outcome_row(r) for r in records], [i for i in items if i is not None]
    )


@dataclass
class OpsApi:
    client: TestClient[Any, Any]
    store: Store
    config: ConfigService
    ops: Operations
    token: str

    def headers(self, actor: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}"}
        if actor:
            h["X-Signal-Actor"] = actor
        return h

    async def call(self, method: str, path: str, *, actor: str | None = None, **kw: Any) -> Any:
        response = await self.client.request(method, path, headers=self.headers(actor), **kw)
        body = await response.json()
        return response.status, body


async def item_of(store: Store, change_id: str, flow_id: str = "nurture") -> Any:
    """The stored retry item, which the test expects to exist."""
    from stream.store import RetryItem

    found = await store.get_retry_item(change_id, flow_id)
    assert isinstance(found, RetryItem), f"no retry item for {change_id}/{flow_id}"
    return found
