"""Data and helpers of the retry-queue, replay and preview tests: this folder's account, its
defaults over the shared change factory (`tests.support.changes`), a per-test redrive topic, and
the record agent's way of storing outcomes."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import yaml
from aiohttp.test_utils import TestClient
from aiokafka import AIOKafkaProducer

from config.models import Account
from stream.certain.events import ChangeEvent
from stream.control.config_service import ConfigService
from stream.control.operations import Operations
from stream.control.recorder import outcome_row
from stream.control.retry_scheduler import RetrySchedule, plan_retry
from stream.core.catalog import EventCatalog
from stream.messages import FailureCategory, OutcomeRecord, OutcomeStatus, RedriveRequest
from stream.store import RetryItem, Store
from tests.support.changes import EVENT_CODE, event_json, registration_json
from tests.support.clock import FIXED
from tests.support.topics import read_topic

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
    client_secret: ${SIGNAL_SECRET_RETRY_TEST}
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
SECRET_VAR = "SIGNAL_SECRET_RETRY_TEST"
SECRET = "sandbox-secret"


def account_yaml(service_url: str = "https://123-ABC-456.mktorest.com") -> str:
    return ACCOUNT_YAML.replace("__SERVICE_URL__", service_url)


def account(service_url: str = "https://123-ABC-456.mktorest.com") -> Account:
    raw = yaml.safe_load(account_yaml(service_url))
    raw["connections"][0]["client_secret"] = SECRET
    return Account.model_validate(raw)


# The retry account maps only a few profile fields, and its event setup tags nothing: "New" is
# tagged by the account's own assignments, an unknown status ("Waitlist") by nothing.
STATUSES: list[dict[str, Any]] = [
    {"label": "New", "classification": "Accepted", "tags": []},
    {"label": "Waitlist", "classification": "Pending", "tags": []},
]


def event_dict(
    code: str = EVENT_CODE,
    *,
    change_id: str = "evt-1",
    occurred_at: datetime | str = FIXED - timedelta(days=1),
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The shared event change with this folder's setup (`statuses`, no event tags)."""
    return event_json(
        code,
        change_id=change_id,
        occurred_at=occurred_at,
        name="Acme Summit",
        questions={},
        setup={"statuses": STATUSES if statuses is None else statuses, "eventTags": []},
    )


def event(code: str = EVENT_CODE, **options: Any) -> ChangeEvent:
    return ChangeEvent.model_validate(event_dict(code, **options))


def registration_dict(
    change_id: str,
    *,
    status: str = "New",
    code: str | None = None,
    event_code: str = EVENT_CODE,
    occurred_at: datetime | str = FIXED,
    email: str | None = None,
    first_name: str = "ana",
    change_type: str = "registration.status_change",
) -> dict[str, Any]:
    """The shared registration change with this folder's defaults: registration `R-<change id>`
    whose e-mail is `r-<change id>@example.com`, as the assertions on mapped payloads expect."""
    registration_code = code or f"R-{change_id}"
    return registration_json(
        change_id,
        change_type,
        event_code=event_code,
        occurred_at=occurred_at,
        code=registration_code,
        status=status,
        previous=None,
        attendee_type="Attendee",
        email=email or f"{registration_code.lower()}@example.com",
        profile={"firstName": first_name, "lastName": "Ruiz", "organization": "Acme"},
    )


@dataclass
class StaticConfig:
    """The configuration and catalog as control holds them, for previews and dry runs."""

    account: Account
    catalog: EventCatalog = field(default_factory=EventCatalog)


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
        self, expect: int | None = None, *, settle_s: float = 0.5
    ) -> list[tuple[bytes, RedriveRequest]]:
        """Every record in the topic: waits for `expect` records (with a generous deadline), then
        `settle_s` more to see that no extra record arrives. Without `expect` it reads for
        `settle_s` only, for tests that check that nothing was published."""
        records = await read_topic(
            self.bootstrap,
            self.name,
            until=lambda found: expect is None or len(found) >= expect,
            settle=settle_s,
        )
        return [(r.key, RedriveRequest.loads(r.value)) for r in records]


def failed_outcome(cid: str, category: str, **extra: Any) -> OutcomeRecord:
    """A first failed delivery of `cid` by the nurture flow: a technical failure (HTTP 503,
    retryable) or a data failure (Marketo 1003), at the fixed moment."""
    return OutcomeRecord(
        change_id=cid,
        flow_id="nurture",
        flow_name="Registered to nurture",
        mode="live",
        connection_id="mkto",
        status=OutcomeStatus.FAILED,
        category=FailureCategory(category),
        reason="HTTP 503" if category == "technical" else "1003 Invalid email",
        retryable=category == "technical",
        occurred_at=FIXED,
        processed_at=FIXED,
        registration_code=f"R-{cid}",
        **extra,
    )


async def record_outcome(
    store: Store, record: OutcomeRecord, schedule: RetrySchedule, now: datetime
) -> RetryItem:
    """Store one outcome and its retry item the way the record agent does (`plan_retry`); the
    item as stored afterwards."""
    existing = await store.get_retry_item(record.change_id, record.flow_id)
    item = plan_retry(record, existing, schedule=schedule, now=now, jitter=lambda: 0.5)
    await store.record_outcomes([outcome_row(record)], [item] if item is not None else [])
    return await item_of(store, record.change_id, record.flow_id)


async def record_new_outcomes(
    store: Store, records: list[OutcomeRecord], schedule: RetrySchedule, now: datetime
) -> None:
    """Store first outcomes (no item yet) and their retry items in one batch."""
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


async def item_of(store: Store, change_id: str, flow_id: str = "nurture") -> RetryItem:
    """The stored retry item, which the test expects to exist."""
    found = await store.get_retry_item(change_id, flow_id)
    assert isinstance(found, RetryItem), f"no retry item for {change_id}/{flow_id}"
    return found
