"""Shared data and small helpers of the operator API tests (importable because pytest puts this
folder on the path; the folder is not a package so it cannot shadow `stream.api`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

SECRET_VAR = "SIGNAL_TEST_MARKETO_SECRET"
SECRET = "s3cr3t-from-env-7f1d"
LITERAL_SECRET = "literal-s3cret-9a2b"

ACCOUNT_YAML = """\
account: ACME
tags:
  - {name: registered, label: Registered, objects: [registration_status]}
  - {name: attended, label: Attended, objects: [registration_status, session_registration_status]}
  - {name: vip, label: VIP, objects: [attendee_type]}
  - {name: event_live, label: Event is live, objects: [event_status]}
assignments:
  registration_statuses: {New: [registered], Attended: [attended]}
  session_registration_statuses: {Attended: [attended]}
  event_statuses: {Active: [event_live]}
connections:
  - id: mkto-prod
    name: Marketo production
    target: marketo
    service_url: https://123-abc-456.mktorest.com/
    client_id: 3f1c0c1e-demo
    client_secret: ${SIGNAL_TEST_MARKETO_SECRET}
    primary: true
mappings:
  - id: lead-basic
    name: Lead basics
    fields:
      - {target: email, sources: [registration.profile.email], transforms: [trim, lower]}
      - {target: firstName, sources: [registration.profile.firstName]}
      - {target: lastName, sources: [registration.profile.lastName]}
flows:
  - id: registered-to-nurture
    name: Registered to nurture
    mode: live
    active: true
    source: registration.status_change
    activate_for: {registration_statuses: [registered]}
    destination:
      name: Leads
      connection: mkto-prod
      action: create_update_lead
      mapping: lead-basic
      campaign: {campaign_id: 1001}
  - id: half-built
    name: Half built
    mode: test
    active: false
    source: registration.create_update
"""


def registration_change(change_id: str, code: str = "R1", **overrides: Any) -> dict[str, Any]:
    change: dict[str, Any] = {
        "changeId": change_id,
        "type": "registration.status_change",
        "accountCode": "ACME",
        "eventCode": "SUMMIT26",
        "occurredAt": "2026-11-28T12:00:00Z",
        "registration": {
            "registrationCode": code,
            "registrationStatusLabel": "New",
            "profile": {"firstName": "Ana", "lastName": "Ruiz", "email": "ana@example.com"},
        },
    }
    change.update(overrides)
    return change


def event_change(change_id: str, event_code: str = "SUMMIT26", **event: Any) -> dict[str, Any]:
    return {
        "changeId": change_id,
        "type": "event.create_update",
        "accountCode": "ACME",
        "eventCode": event_code,
        "occurredAt": "2026-11-28T11:00:00Z",
        "event": {
            "eventCode": event_code,
            "eventName": "Summit 2026",
            "eventStatus": "Active",
            "setup": {"attendeeTypes": [{"code": "VIP", "tags": ["vip"]}]},
            **event,
        },
    }


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Any]], bool] = lambda records: bool(records),
    within: float = 10.0,
    settle: float = 0.0,
) -> list[Any]:
    """Every record of `topic` from the start, read until `until(records)` holds (then for
    `settle` more seconds, to catch anything extra) or `within` seconds pass."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + within
        satisfied_at: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for messages in batch.values():
                records.extend(messages)
            if satisfied_at is None and until(records):
                satisfied_at = time.monotonic()
            if satisfied_at is not None and time.monotonic() - satisfied_at >= settle:
                break
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return records


def snapshots(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]
