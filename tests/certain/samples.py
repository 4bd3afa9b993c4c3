"""The DESIGN 4.2 example change and variants of it."""

from __future__ import annotations

import copy
from typing import Any

DESIGN_EXAMPLE: dict[str, Any] = {
    "changeId": "5d0c…",
    "type": "registration.status_change",
    "accountCode": "ACME",
    "eventCode": "SUMMIT26",
    "occurredAt": "2026-11-28T12:00:00Z",
    "registration": {
        "registrationCode": "R7QX2M9K1",
        "attendeeTypeCode": "VIP",
        "registrationStatusLabel": "Attended",
        "previousStatusLabel": "New",
        "isTest": False,
        "isActive": True,
        "properties": {
            "complete": True,
            "badgePrinted": True,
            "onToDoList": False,
            "invoiceGenerated": True,
        },
        "profile": {
            "firstName": "Ana",
            "lastName": "Ruiz",
            "email": "ana@example.com",
            "organization": "Acme",
            "position": "CTO",
            "phone": "+1 206 555 0100",
            "address": {
                "line1": "1 Main St",
                "city": "Seattle",
                "state": "WA",
                "postalCode": "98101",
                "country": "US",
            },
        },
        "registrationQuestions": [{"questionCode": "DIET", "answers": ["Vegetarian"]}],
    },
    "session": None,
    "event": None,
}

SESSION = {
    "sessionCode": "KEYNOTE",
    "sessionName": "Opening keynote",
    "instanceId": "1",
    "regSessionStatus": "Attended",
    "previousRegSessionStatus": "Registered",
    "startDate": "2026-12-01T09:00:00",
    "endDate": "2026-12-01T10:00:00",
}

EVENT = {
    "eventCode": "SUMMIT26",
    "eventName": "Acme Summit 2026",
    "eventStatus": "Active",
    "isTest": False,
    "startDate": "2026-12-01T09:00:00",
    "endDate": "2026-12-03T17:00:00",
    "timezone": "America/Los_Angeles",
    "eventType": "Conference",
    "eventQuestions": {"marketoCampaignId": "2001"},
    "setup": {
        "statuses": [{"label": "Need photo", "classification": "Pending", "tags": ["registered"]}],
        "customProperties": [{"name": "Speaker", "tags": ["speaker"]}],
        "attendeeTypes": [{"code": "VIP", "tags": ["vip"]}],
        "registrationQuestions": [{"code": "DIET", "tags": ["diet"]}],
        "eventTags": ["signal_marketo"],
    },
}


def example(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(DESIGN_EXAMPLE)
    data.update(changes)
    return data


def session_change(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "session_registration.status_change",
        "session": copy.deepcopy(SESSION),
    }
    return example(**{**fields, **changes})


def event_change(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "event.create_update",
        "registration": None,
        "event": copy.deepcopy(EVENT),
    }
    return example(**{**fields, **changes})
