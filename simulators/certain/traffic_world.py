"""The world the simulated Certain traffic happens in: events with their sessions and setups,
registration statuses and the moves between them, attendee types, questions, and the people who
register.

Apart from the generator (`simulators.certain.traffic`) because the Certain sandbox's seed and
state (`sandbox_seed.py`, `sandbox_state.py`) build the same world from it, and the demo account
(`demo_account.py`) is written to match it: one place says what exists. Plain data, no logic.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACCEPTED",
    "ATTENDEE_TYPES",
    "CUSTOM_PROPERTY_TAGGED",
    "CUSTOM_PROPERTY_UNTAGGED",
    "CUSTOM_STATUS_TAGGED",
    "CUSTOM_STATUS_UNTAGGED",
    "DIETS",
    "DIET_QUESTION",
    "EVENTS",
    "FIRST_NAMES",
    "LAST_NAMES",
    "ORGANIZATIONS",
    "PLACES",
    "POSITIONS",
    "SESSIONS",
    "SESSION_TRANSITIONS",
    "SHIRTS",
    "SHIRT_QUESTION",
    "STANDARD_STATUSES",
    "TRANSITIONS",
    "EventSpec",
    "SessionSpec",
]


@dataclass(frozen=True)
class SessionSpec:
    code: str
    name: str
    start: str
    end: str


@dataclass(frozen=True)
class EventSpec:
    code: str
    name: str
    event_type: str
    status: str
    is_test: bool = False
    send_to_marketo: bool = True
    """Carries the `signal_marketo` event tag (flows filter on it)."""
    campaign_id: int | None = None
    """Value of the `marketoCampaignId` event question; wins over the flow's campaign id."""
    start_date: str = "2026-12-08T09:00:00"
    end_date: str = "2026-12-10T17:00:00"
    timezone: str = "America/Los_Angeles"
    sessions: tuple[SessionSpec, ...] = ()


SESSIONS = (
    SessionSpec("KEYNOTE", "Opening keynote", "2026-12-08T09:00:00", "2026-12-08T10:00:00"),
    SessionSpec(
        "WS-DATA", "Workshop: data pipelines", "2026-12-08T11:00:00", "2026-12-08T13:00:00"
    ),
    SessionSpec(
        "BOF-OPS", "Birds of a feather: operations", "2026-12-09T16:00:00", "2026-12-09T17:00:00"
    ),
)

EVENTS: tuple[EventSpec, ...] = (
    EventSpec(
        "SUMMIT26", "Acme Summit 2026", "Conference", "Active", campaign_id=1002, sessions=SESSIONS
    ),
    EventSpec("DEVDAY26", "Acme Developer Day", "Workshop", "Active", sessions=SESSIONS[1:]),
    EventSpec(
        "ROADSHOW-BER",
        "Acme Roadshow Berlin",
        "Roadshow",
        "Active",
        send_to_marketo=False,
        timezone="Europe/Berlin",
        sessions=SESSIONS[:1],
    ),
    EventSpec(
        "PARTNER26",
        "Acme Partner Forum",
        "Partner",
        "Active",
        campaign_id=1001,
        sessions=SESSIONS[:2],
    ),
    EventSpec(
        "SIGNAL-TEST",
        "Signal test event",
        "Conference",
        "Active",
        is_test=True,
        sessions=SESSIONS[:1],
    ),
)

CUSTOM_STATUS_TAGGED = "VIP Confirmed"
CUSTOM_STATUS_UNTAGGED = "Need photo"
CUSTOM_PROPERTY_TAGGED = "Speaker"
CUSTOM_PROPERTY_UNTAGGED = "Sponsor guest"
ATTENDEE_TYPES = ("Attendee", "Attendee", "Attendee", "VIP", "Exhibitor", "Speaker")
DIET_QUESTION = "DIET"
SHIRT_QUESTION = "TSHIRT"
DIETS = ("Vegetarian", "Vegan", "Gluten free", "No restrictions", "Halal", "Kosher")
SHIRTS = ("S", "M", "L", "XL")

STANDARD_STATUSES: dict[str, str] = {
    "New": "Accepted",
    "Requested Invitation": "Pending",
    "Waitlist Hold": "Pending",
    "Invited": "Pending",
    "Request Denied": "Denied",
    "Invitation Sent": "Pending",
    "Pre-Registered": "Accepted",
    "Declined Invitation": "Denied",
    "Cancelled": "Cancelled",
    "No-show": "Accepted",
    "Attended": "Accepted",
}

TRANSITIONS: dict[str, tuple[tuple[str, int], ...]] = {
    "Invited": (("New", 7), ("Declined Invitation", 3)),
    "Requested Invitation": (("New", 6), ("Request Denied", 4)),
    "Waitlist Hold": (("New", 1),),
    "New": (
        ("Attended", 8),
        ("Cancelled", 3),
        ("No-show", 2),
        (CUSTOM_STATUS_TAGGED, 2),
        (CUSTOM_STATUS_UNTAGGED, 1),
    ),
    CUSTOM_STATUS_UNTAGGED: (("Pre-Registered", 1),),
    CUSTOM_STATUS_TAGGED: (("Attended", 1),),
    "Pre-Registered": (("Attended", 3), ("Cancelled", 1)),
    "Cancelled": (("New", 1),),
}
"""Realistic registration status moves (reference/certain-data.md §2.5)."""

SESSION_TRANSITIONS: dict[str | None, tuple[tuple[str, int], ...]] = {
    None: (("Registered", 5), ("Waitlisted", 1)),
    "Registered": (("Attended", 5), ("Cancelled", 1), ("No Show", 1)),
    "Waitlisted": (("Registered", 2), ("Cancelled", 1)),
    "Cancelled": (("Registered", 1),),
}
"""Session registration moves Certain allows (reference/certain-data.md §2.8)."""

ACCEPTED = frozenset({"New", "Pre-Registered", "Attended", CUSTOM_STATUS_TAGGED})

FIRST_NAMES = (
    "Ana",
    "Ben",
    "Chloé",
    "Dmitri",
    "Elif",
    "Farah",
    "Gustavo",
    "Hana",
    "Ian",
    "Jun",
    "Kofi",
    "Lena",
    "Marta",
    "Noah",
    "Olga",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Yusuf",
    "Zoë",
)
LAST_NAMES = (
    "Ruiz",
    "Okafor",
    "Müller",
    "Tanaka",
    "Nguyen",
    "Smith",
    "O'Brien",
    "van der Berg",
    "Kowalski",
    "Haddad",
    "Rossi",
    "Johansson",
    "Patel",
    "García",
    "Kim",
    "Dubois",
    "Novak",
    "Schmidt",
)
ORGANIZATIONS = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella Labs",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Imports",
    "Soylent",
    "Tyrell",
    None,
)
POSITIONS = ("CTO", "VP Marketing", "Data Engineer", "Event Manager", "Analyst", "CEO", None)
PLACES = (
    ("Seattle", "WA", "98101", "US"),
    ("Austin", "TX", "73301", "US"),
    ("New York", "NY", "10001", "US"),
    ("Toronto", "ON", "M5H 2N2", "CA"),
    ("Vancouver", "BC", "V6B 1A1", "CA"),
    ("Berlin", None, "10115", "DE"),
    ("London", None, "EC1A 1BB", "GB"),
    ("Lyon", None, "69001", "FR"),
)
