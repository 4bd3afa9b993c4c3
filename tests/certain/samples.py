"""The DESIGN 4.2 example change and variants of it, built with the shared change factory."""

from __future__ import annotations

import copy
from typing import Any

from tests.support.changes import event_body, registration_json

# The example of DESIGN 4.2, to the letter: the factory's registration with the example's status,
# properties, profile and timestamp (parsing only: nothing compares it with the real clock).
DESIGN_EXAMPLE: dict[str, Any] = registration_json(
    "5d0c…",
    occurred_at="2026-11-28T12:00:00Z",
    status="Attended",
    previous="New",
    email="ana@example.com",
    profile={"firstName": "Ana", "lastName": "Ruiz"},
    properties={
        "complete": True,
        "badgePrinted": True,
        "onToDoList": False,
        "invoiceGenerated": True,
    },
)

# The factory's session (the keynote, attended).
SESSION: dict[str, Any] = registration_json(change_type="session_registration.status_change")[
    "session"
]

EVENT = event_body(
    setup={
        "statuses": [{"label": "Need photo", "classification": "Pending", "tags": ["registered"]}],
        "customProperties": [{"name": "Speaker", "tags": ["speaker"]}],
        "attendeeTypes": [{"code": "VIP", "tags": ["vip"]}],
        "registrationQuestions": [{"code": "DIET", "tags": ["diet"]}],
        "eventTags": ["signal_marketo"],
    },
)


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
