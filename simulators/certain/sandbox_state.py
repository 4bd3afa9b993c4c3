"""What the Certain sandbox holds in memory: accounts, events with their setup, registrations,
sessions and session registrations, and the clock that stamps every change.

Timestamps are whole epoch seconds, because Certain writes and filters them at second resolution
(`yyyy-MM-ddTHH:mm:ss`, reference/certain-data.md §3): several changes can share one
`dateModified`, which is exactly what a poller must cope with. Every change to a record moves its
`dateModified` forward by at least one second, so a record's (code, dateModified) pair names one
version of it and a poller can de-duplicate on it.

Field names follow the reference: registrations §2.4 (`registrationCode`, `pkRegId`,
`attendeeTypeCode`, `registrationStatusLabel`, `profile`, `dateCreated`, `dateModified`,
`statusModified`), statuses §2.5, attendee types §2.6, sessions and session registrations §2.8
(`sessionCode`, `instanceId`, `regSessionStatus`). `isTest`, `isActive` and the event `setup`
shape (that of DESIGN 4.2's `event.setup`) are [INFERRED] names for documented concepts.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators.certain import traffic

STATUS_CLASSIFICATIONS: dict[str, str] = dict(traffic.STANDARD_STATUSES)
SESSION_STATUSES = ("Registered", "Waitlisted", "Cancelled", "No Show", "Attended")
SESSION_TRANSITIONS: dict[str, frozenset[str]] = {
    "Waitlisted": frozenset({"Cancelled", "Registered"}),
    "Registered": frozenset({"Cancelled", "No Show", "Attended"}),
    "Cancelled": frozenset({"Registered"}),
    "No Show": frozenset(),
    "Attended": frozenset(),
}
"""Session-registration moves Certain allows (reference §2.8); capacity is not modelled."""


@dataclass
class StatusFault:
    status: int
    remaining: int

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "remaining": self.remaining}


@dataclass
class Faults:
    """Injected trouble: extra latency, the next N calls failing with an HTTP status (5xx, or
    401 as after a password change), the next N records served malformed."""

    latency_ms: float = 0.0
    statuses: list[StatusFault] = field(default_factory=list)
    malformed: int = 0

    def take_status(self) -> int | None:
        while self.statuses:
            head = self.statuses[0]
            if head.remaining <= 0:
                self.statuses.pop(0)
                continue
            head.remaining -= 1
            return head.status
        return None

    def clear(self) -> None:
        self.latency_ms = 0.0
        self.statuses.clear()
        self.malformed = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "latencyMs": self.latency_ms,
            "statuses": [f.as_dict() for f in self.statuses if f.remaining > 0],
            "malformed": self.malformed,
        }


class SandboxClock:
    """Certain's clock: the machine's time shifted by a settable skew, in whole seconds."""

    def __init__(self, skew_s: float = 0.0) -> None:
        self.skew_s = skew_s

    def now(self) -> int:
        return int(time.time() + self.skew_s)


def format_ts(seconds: int) -> str:
    """`yyyy-MM-ddTHH:mm:ss` in UTC, the format Certain answers in (reference §3)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class SandboxSession:
    code: str
    name: str
    start_date: str
    end_date: str
    instance_id: int
    date_modified: int
    is_active: bool = True

    def as_json(self, event_code: str) -> dict[str, Any]:
        return {
            "sessionCode": self.code,
            "sessionTitle": self.name,
            "name": self.name,
            "eventCode": event_code,
            "instanceId": self.instance_id,
            "sessionInstanceId": self.instance_id,
            "startDate": self.start_date,
            "endDate": self.end_date,
            "isActive": self.is_active,
            "dateModified": format_ts(self.date_modified),
        }


@dataclass
class SessionRegistration:
    registration_code: str
    session: SandboxSession
    status: str
    date_created: int
    date_modified: int

    def as_json(self, event_code: str) -> dict[str, Any]:
        return {
            "registrationCode": self.registration_code,
            "eventCode": event_code,
            "sessionCode": self.session.code,
            "instanceId": self.session.instance_id,
            "regSessionStatus": self.status,
            "startDate": self.session.start_date,
            "endDate": self.session.end_date,
            "dateCreated": format_ts(self.date_created),
            "dateModified": format_ts(self.date_modified),
        }


@dataclass
class SandboxRegistration:
    pk_reg_id: int
    code: str
    event_code: str
    attendee_type: str
    status: str
    profile: dict[str, Any]
    date_created: int
    date_modified: int
    status_modified: int
    is_test: bool = False
    is_active: bool = True
    properties: dict[str, Any] = field(default_factory=dict)
    questions: list[dict[str, Any]] = field(default_factory=list)

    def touch(self, now: int) -> None:
        """Advance `dateModified` (at least one second, so every version has its own stamp)."""
        self.date_modified = max(now, self.date_modified + 1)

    def as_json(self, include: frozenset[str]) -> dict[str, Any]:
        """The record as `Registration/{acct}/{evt}` answers it; `include` is the includeList."""
        body: dict[str, Any] = {
            "pkRegId": self.pk_reg_id,
            "registrationCode": self.code,
            "eventCode": self.event_code,
            "attendeeTypeCode": self.attendee_type,
            "registrationStatusLabel": self.status,
            "isActive": self.is_active,
            "isTest": self.is_test,
            "profile": dict(self.profile),
            "dateCreated": format_ts(self.date_created),
            "dateModified": format_ts(self.date_modified),
            "statusModified": format_ts(self.status_modified),
        }
        if "registration_questions" in include:
            body["registrationQuestions"] = [dict(q) for q in self.questions]
        if "reg_properties" in include:
            body["properties"] = dict(self.properties)
        return body


@dataclass
class SandboxEvent:
    code: str
    name: str
    status: str
    date_created: int
    date_modified: int
    is_active: bool = True
    is_test: bool = False
    start_date: str = "2026-12-08T09:00:00"
    end_date: str = "2026-12-10T17:00:00"
    timezone: str = "America/Los_Angeles"
    event_type: str | None = None
    tags: list[str] = field(default_factory=list)
    questions: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    registrations: dict[str, SandboxRegistration] = field(default_factory=dict)
    sessions: dict[str, SandboxSession] = field(default_factory=dict)
    agendas: dict[tuple[str, str], SessionRegistration] = field(default_factory=dict)

    def status_labels(self) -> set[str]:
        custom = {s["label"] for s in self.setup.get("statuses", []) if isinstance(s, dict)}
        return set(STATUS_CLASSIFICATIONS) | custom

    def as_json(self, include: frozenset[str], detail: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "eventCode": self.code,
            "eventName": self.name,
            "eventStatus": self.status,
            "isActive": self.is_active,
            "isTest": self.is_test,
            "startDate": self.start_date,
            "endDate": self.end_date,
            "timezone": self.timezone,
            "eventType": self.event_type,
            "dateCreated": format_ts(self.date_created),
            "dateModified": format_ts(self.date_modified),
        }
        if "tags" in include or detail:
            body["tags"] = {"tag": [{"name": t} for t in self.tags]}
        if detail:
            body["eventQuestions"] = dict(self.questions)
            body["setup"] = _copy(self.setup)
        return body


@dataclass
class SandboxAccount:
    code: str
    user: str
    password: str
    events: dict[str, SandboxEvent] = field(default_factory=dict)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class SandboxState:
    """Every account's data; changes go through methods that stamp `dateModified`."""

    def __init__(self, clock: SandboxClock) -> None:
        self.clock = clock
        self.accounts: dict[str, SandboxAccount] = {}
        self._next_pk = 100001
        self._next_instance = 5001

    def next_pk(self) -> int:
        self._next_pk += 1
        return self._next_pk - 1

    def peek_pk(self) -> int:
        """The `pkRegId` the next registration will get (profiles are numbered after it)."""
        return self._next_pk

    def next_instance(self) -> int:
        self._next_instance += 1
        return self._next_instance - 1

    def account(self, code: str) -> SandboxAccount | None:
        return self.accounts.get(code)

    def event(self, account: str, event: str) -> SandboxEvent | None:
        acct = self.accounts.get(account)
        return acct.events.get(event) if acct else None

    def add_account(self, code: str, user: str, password: str) -> SandboxAccount:
        acct = SandboxAccount(code, user, password)
        self.accounts[code] = acct
        return acct

    def add_event(self, account: SandboxAccount, **fields: Any) -> SandboxEvent:
        now = self.clock.now()
        sessions = fields.pop("sessions", [])
        evt = SandboxEvent(date_created=now, date_modified=now, **fields)
        for session in sessions:
            evt.sessions[session["code"]] = SandboxSession(
                code=session["code"],
                name=session.get("name", session["code"]),
                start_date=session.get("startDate", evt.start_date),
                end_date=session.get("endDate", evt.end_date),
                instance_id=self.next_instance(),
                date_modified=now,
            )
        account.events[evt.code] = evt
        return evt

    def add_registration(self, event: SandboxEvent, **fields: Any) -> SandboxRegistration:
        now = self.clock.now()
        reg = SandboxRegistration(
            pk_reg_id=self.next_pk(),
            event_code=event.code,
            date_created=now,
            date_modified=now,
            status_modified=now,
            **fields,
        )
        event.registrations[reg.code] = reg
        return reg


# --- seeded data -------------------------------------------------------------------------------

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
                "label": traffic.CUSTOM_STATUS_TAGGED,
                "classification": "Accepted",
                "tags": ["registered"],
            },
            {"label": traffic.CUSTOM_STATUS_UNTAGGED, "classification": "Pending", "tags": []},
        ],
        "customProperties": [
            {"name": traffic.CUSTOM_PROPERTY_TAGGED, "tags": ["speaker"]},
            {"name": traffic.CUSTOM_PROPERTY_UNTAGGED, "tags": []},
        ],
        "attendeeTypes": [
            {"code": "Attendee", "tags": []},
            {"code": "VIP", "tags": ["vip"]},
            {"code": "Exhibitor", "tags": []},
            {"code": "Speaker", "tags": ["vip"]},
        ],
        "registrationQuestions": [
            {"code": traffic.DIET_QUESTION, "tags": ["diet"]},
            {"code": traffic.SHIRT_QUESTION, "tags": []},
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
    for spec in traffic.EVENTS:
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
                attendee_type=rng.choice(traffic.ATTENDEE_TYPES),
                status=rng.choice(("New", "Invited", "Pre-Registered", "Waitlist Hold")),
                profile=new_profile(rng, number),
                properties={"complete": False, "custom": {}},
                questions=[
                    {"questionCode": traffic.DIET_QUESTION, "answers": [rng.choice(traffic.DIETS)]}
                ],
            )
    return state
