"""Change events as Certain sends them, for every test folder: one factory instead of one per
folder. Builders return the wire JSON (`*_json`, dicts in Certain's camelCase) or the parsed
`ChangeEvent` (`*_change`); `change_row` turns either into the ledger's archive row.

Dates default to a fixed moment (`clock.FIXED`): only code that compares with the real clock
cares about the date, and tests of such code pass `occurred_at=recent(...)`.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from typing import Any

from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog
from stream.store import ChangeRow
from stream.store.rows import ChangeSource
from tests.support.clock import FIXED

ACCOUNT_CODE = "ACME"
EVENT_CODE = "SUMMIT26"

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


def iso(moment: datetime | str) -> str:
    return moment if isinstance(moment, str) else moment.isoformat()


def event_body(
    code: str = EVENT_CODE,
    *,
    status: str = "Active",
    is_test: bool = False,
    questions: dict[str, Any] | None = None,
    setup: dict[str, Any] | None = None,
    event_type: str = "Conference",
    name: str = "Acme Summit 2026",
) -> dict[str, Any]:
    """The `event` object of an event change."""
    return {
        "eventCode": code,
        "eventName": name,
        "eventStatus": status,
        "isTest": is_test,
        "startDate": "2026-12-01T09:00:00",
        "endDate": "2026-12-03T17:00:00",
        "timezone": "America/Los_Angeles",
        "eventType": event_type,
        "eventQuestions": {"marketoCampaignId": "2001"} if questions is None else questions,
        "setup": copy.deepcopy(SUMMIT_SETUP) if setup is None else setup,
    }


def event_json(
    code: str = EVENT_CODE,
    *,
    change_id: str = "evt-1",
    occurred_at: datetime | str = FIXED - timedelta(days=1),
    account_code: str = ACCOUNT_CODE,
    **event: Any,
) -> dict[str, Any]:
    """An `event.create_update` change; keywords go to `event_body`."""
    return {
        "changeId": change_id,
        "type": "event.create_update",
        "accountCode": account_code,
        "eventCode": code,
        "occurredAt": iso(occurred_at),
        "event": event_body(code, **event),
    }


def event_change(code: str = EVENT_CODE, **options: Any) -> ChangeEvent:
    return ChangeEvent.model_validate(event_json(code, **options))


def catalog(*events: ChangeEvent) -> EventCatalog:
    """An event catalog holding `events` (the default SUMMIT26 event when none are given)."""
    return EventCatalog().apply_all(events or (event_change(),))


def registration_body(
    code: str = "R7QX2M9K1",
    *,
    status: str = "New",
    previous: str | None = "Invited",
    attendee_type: str = "VIP",
    is_test: bool = False,
    is_active: bool = True,
    country: str = "US",
    email: str | None = " Ana.Ruiz@Example.com ",
    properties: dict[str, Any] | None = None,
    profile: dict[str, Any] | None = None,
    questions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The `registration` object of a registration change."""
    base_profile: dict[str, Any] = {
        "firstName": "  ana MARIA ",
        "lastName": "ruiz",
        "email": email,
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
        "registrationCode": code,
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


def registration_json(
    change_id: str = "chg-1",
    change_type: str = "registration.status_change",
    *,
    event_code: str = EVENT_CODE,
    account_code: str = ACCOUNT_CODE,
    occurred_at: datetime | str = FIXED,
    session: dict[str, Any] | None = None,
    session_status: str = "Attended",
    extra: dict[str, Any] | None = None,
    **registration: Any,
) -> dict[str, Any]:
    """A registration (or session registration) change; keywords go to `registration_body`."""
    data: dict[str, Any] = {
        "changeId": change_id,
        "type": change_type,
        "accountCode": account_code,
        "eventCode": event_code,
        "occurredAt": iso(occurred_at),
        "registration": registration_body(**registration),
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
    return data


def registration_change(change_id: str = "chg-1", *args: Any, **options: Any) -> ChangeEvent:
    return ChangeEvent.model_validate(registration_json(change_id, *args, **options))


def change_row(
    data: dict[str, Any] | ChangeEvent,
    *,
    received_at: datetime | None = None,
    source: ChangeSource = "api",
) -> ChangeRow:
    """The archive row control stores for a change."""
    change = data if isinstance(data, ChangeEvent) else ChangeEvent.model_validate(data)
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
        source=source,
    )


def encoded(data: dict[str, Any]) -> bytes:
    """A change as the bytes a producer puts on `certain-changes`."""
    return json.dumps(data).encode()
