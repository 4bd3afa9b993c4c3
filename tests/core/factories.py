"""Realistic changes, events and the example account, built the way Certain would send them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from config.models import Account
from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog

EXAMPLE_ACCOUNT = Path("/work/shared/examples/account.yaml")


def example_account() -> Account:
    return Account.model_validate(yaml.safe_load(EXAMPLE_ACCOUNT.read_text()))


ACCOUNT = example_account()

SUMMIT_SETUP: dict[str, Any] = {
    "statuses": [
        {"label": "New", "classification": "Accepted", "tags": []},
        {"label": "Need photo", "classification": "Pending", "tags": ["registered"]},
        {"label": "Checked In", "classification": "Accepted", "tags": ["attended"]},
        {"label": "Waitlist Hold", "classification": "Pending", "tags": []},
        {"label": "Badge Collected", "classification": "Accepted", "tags": ["vip"]},
    ],
    "customProperties": [
        {"name": "Speaker", "tags": ["registered"]},
        {"name": "Press", "tags": []},
    ],
    "attendeeTypes": [
        {"code": "VIP", "tags": ["vip"]},
        {"code": "Attendee", "tags": []},
        {"code": "Exhibitor", "tags": ["signal_marketo"]},
    ],
    "registrationQuestions": [
        {"code": "DIET", "tags": ["diet"]},
        {"code": "TSHIRT", "tags": []},
    ],
    "eventTags": ["signal_marketo"],
}


def event_dict(
    code: str = "SUMMIT26",
    *,
    status: str = "Active",
    is_test: bool = False,
    questions: dict[str, Any] | None = None,
    setup: dict[str, Any] | None = None,
    event_type: str = "Conference",
) -> dict[str, Any]:
    return {
        "eventCode": code,
        "eventName": "Acme Summit 2026",
        "eventStatus": status,
        "isTest": is_test,
        "startDate": "2026-12-01T09:00:00",
        "endDate": "2026-12-03T17:00:00",
        "timezone": "America/Los_Angeles",
        "eventType": event_type,
        "eventQuestions": {"marketoCampaignId": "2001"} if questions is None else questions,
        "setup": copy.deepcopy(SUMMIT_SETUP) if setup is None else setup,
    }


def event_change(
    code: str = "SUMMIT26",
    *,
    change_id: str = "evt-1",
    occurred_at: str = "2026-11-01T08:00:00Z",
    **event: Any,
) -> ChangeEvent:
    return ChangeEvent.model_validate(
        {
            "changeId": change_id,
            "type": "event.create_update",
            "accountCode": "ACME",
            "eventCode": code,
            "occurredAt": occurred_at,
            "event": event_dict(code, **event),
        }
    )


def catalog(*events: ChangeEvent) -> EventCatalog:
    return EventCatalog().apply_all(events or (event_change(),))


def registration_dict(
    *,
    status: str = "New",
    previous: str | None = "Invited",
    attendee_type: str = "VIP",
    is_test: bool = False,
    is_active: bool = True,
    country: str = "US",
    properties: dict[str, Any] | None = None,
    profile: dict[str, Any] | None = None,
    questions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    base_profile = {
        "firstName": "  ana MARIA ",
        "lastName": "ruiz",
        "email": " Ana.Ruiz@Example.com ",
        "organization": "Acme",
        "position": "CTO",
        "phone": "+1 206 555 0100",
        "address": {
            "line1": "1 Main St",
            "city": "Seattle",
            "state": "WA",
            "postalCode": "98101",
            "country": country,
        },
    }
    base_profile.update(profile or {})
    return {
        "registrationCode": "R7QX2M9K1",
        "attendeeTypeCode": attendee_type,
        "registrationStatusLabel": status,
        "previousStatusLabel": previous,
        "isTest": is_test,
        "isActive": is_active,
        "properties": properties
        if properties is not None
        else {
            "complete": False,
            "badgePrinted": False,
            "onToDoList": False,
            "invoiceGenerated": False,
        },
        "profile": base_profile,
        "registrationQuestions": [{"questionCode": "DIET", "answers": ["Vegetarian"]}]
        if questions is None
        else questions,
    }


def registration_change(
    change_type: str = "registration.status_change",
    *,
    event_code: str = "SUMMIT26",
    account_code: str = "ACME",
    session: dict[str, Any] | None = None,
    session_status: str = "Attended",
    change_id: str = "chg-1",
    extra: dict[str, Any] | None = None,
    **registration: Any,
) -> ChangeEvent:
    data: dict[str, Any] = {
        "changeId": change_id,
        "type": change_type,
        "accountCode": account_code,
        "eventCode": event_code,
        "occurredAt": "2026-11-28T12:00:00Z",
        "registration": registration_dict(**registration),
        "session": None,
        "event": None,
    }
    if change_type == "session_registration.status_change":
        data["session"] = session or {
            "sessionCode": "KEYNOTE",
            "sessionName": "Opening keynote",
            "instanceId": "1",
            "regSessionStatus": session_status,
            "previousRegSessionStatus": "Registered",
            "startDate": "2026-12-01T09:00:00",
            "endDate": "2026-12-01T10:00:00",
        }
    data.update(extra or {})
    return ChangeEvent.model_validate(data)
