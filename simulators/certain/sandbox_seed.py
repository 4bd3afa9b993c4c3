"""The Certain sandbox's starting data: the demo account with the traffic simulator's events
(simulators/certain/traffic.py), their setup (statuses with tags, custom properties, attendee
types, questions; reference/certain-data.md §2.5-§2.7) and generated registrations, so the demo
account and the simulator's changes fit the sandbox's events.
"""

from __future__ import annotations

import random
from typing import Any

from simulators.certain import traffic, traffic_world
from simulators.certain.sandbox_state import (
    STATUS_CLASSIFICATIONS,
    SandboxClock,
    SandboxState,
)

DEFAULT_ACCOUNT = traffic.ACCOUNT_CODE
DEFAULT_USER = "signal-api"
DEFAULT_PASSWORD = "sandbox-password"
SEED_REGISTRATIONS_PER_EVENT = 10


def event_setup() -> dict[str, Any]:
    """The setup the simulator's events use (traffic.py), so the demo account matches."""
    return {
        "statuses": [
            *(
                {"label": label, "classification": cls, "tags": _status_tags(label)}
                for label, cls in STATUS_CLASSIFICATIONS.items()
            ),
            {
                "label": traffic_world.CUSTOM_STATUS_TAGGED,
                "classification": "Accepted",
                "tags": ["registered"],
            },
            {
                "label": traffic_world.CUSTOM_STATUS_UNTAGGED,
                "classification": "Pending",
                "tags": [],
            },
        ],
        "customProperties": [
            {"name": traffic_world.CUSTOM_PROPERTY_TAGGED, "tags": ["speaker"]},
            {"name": traffic_world.CUSTOM_PROPERTY_UNTAGGED, "tags": []},
        ],
        "attendeeTypes": [
            {"code": "Attendee", "tags": []},
            {"code": "VIP", "tags": ["vip"]},
            {"code": "Exhibitor", "tags": []},
            {"code": "Speaker", "tags": ["vip"]},
        ],
        "registrationQuestions": [
            {"code": traffic_world.DIET_QUESTION, "tags": ["diet"]},
            {"code": traffic_world.SHIRT_QUESTION, "tags": []},
        ],
    }


def _status_tags(label: str) -> list[str]:
    return {
        "New": ["registered"],
        "Pre-Registered": ["registered"],
        "Attended": ["attended"],
        "Cancelled": ["cancelled"],
        "Invited": ["pending"],
        "Declined Invitation": ["declined"],
    }.get(label, [])


FIRST_NAMES = ("Ana", "Ben", "Chloé", "Dmitri", "Elif", "Farah", "Hana", "Kofi", "Priya", "Zoë")
LAST_NAMES = ("Ruiz", "Okafor", "Müller", "Tanaka", "Nguyen", "O'Brien", "van der Berg", "Patel")
ORGANIZATIONS = ("Acme", "Globex", "Initech", "Hooli", "Vandelay Imports")


def new_profile(rng: random.Random, number: int) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
    local = local.encode("ascii", "ignore").decode()
    return {
        "pkProfileId": 500000 + number,
        "profilePin": f"P{number:07d}",
        "firstName": first,
        "lastName": last,
        "email": f"{local}{number}@example.com",
        "organization": rng.choice(ORGANIZATIONS),
    }


def registration_code(rng: random.Random, taken: set[str]) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    while True:
        code = "R" + "".join(rng.choice(alphabet) for _ in range(8))
        if code not in taken:
            taken.add(code)
            return code


def seeded_state(
    clock: SandboxClock,
    seed: int,
    user: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    per_event: int = SEED_REGISTRATIONS_PER_EVENT,
) -> SandboxState:
    """The demo account with the simulator's events and `per_event` registrations each; the
    same `seed` gives the same codes, people and statuses."""
    rng = random.Random(seed)
    state = SandboxState(clock)
    account = state.add_account(DEFAULT_ACCOUNT, user, password)
    taken: set[str] = set()
    for spec in traffic_world.EVENTS:
        questions: dict[str, Any] = {"ownerEmail": f"events+{spec.code.lower()}@acme.example.com"}
        if spec.campaign_id is not None:
            questions["marketoCampaignId"] = spec.campaign_id
        event = state.add_event(
            account,
            code=spec.code,
            name=spec.name,
            status=spec.status,
            is_test=spec.is_test,
            start_date=spec.start_date,
            end_date=spec.end_date,
            timezone=spec.timezone,
            event_type=spec.event_type,
            tags=["signal_marketo"] if spec.send_to_marketo else [],
            questions=questions,
            setup=event_setup(),
            sessions=[
                {"code": s.code, "name": s.name, "startDate": s.start, "endDate": s.end}
                for s in spec.sessions
            ],
        )
        for _ in range(per_event):
            number = state.peek_pk()
            state.add_registration(
                event,
                code=registration_code(rng, taken),
                attendee_type=rng.choice(traffic_world.ATTENDEE_TYPES),
                status=rng.choice(("New", "Invited", "Pre-Registered", "Waitlist Hold")),
                profile=new_profile(rng, number),
                properties={"complete": False, "custom": {}},
                questions=[
                    {
                        "questionCode": traffic_world.DIET_QUESTION,
                        "answers": [rng.choice(traffic_world.DIETS)],
                    }
                ],
            )
    return state
