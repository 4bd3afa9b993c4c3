"""Certain-like traffic: events with their setups, registrations moving through statuses, session
check-ins, mass actions, test data and the bad data real integrations see.

Generation is pure and repeatable: `generate(seed, rate, duration, start)` returns the same
changes (same change ids, same content) for the same arguments, so a failing run can be replayed
exactly and tests can compute what the runtime must do with them. Sending the changes is a
separate step (`simulators.certain.send`).

Every generated item carries `kinds` saying what it is meant to exercise (`test`, `invalid`,
`missing_email`, `duplicate` …), which lets tests check coverage and callers count what they sent.
The events, statuses, attendee types and questions (`simulators.certain.traffic_world`) match the
demo account (`simulators.certain.demo_account`), so the demo shows every outcome Signal can
produce.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.certain.traffic_world import (
    ACCEPTED,
    ATTENDEE_TYPES,
    CUSTOM_PROPERTY_TAGGED,
    CUSTOM_PROPERTY_UNTAGGED,
    CUSTOM_STATUS_TAGGED,
    CUSTOM_STATUS_UNTAGGED,
    DIET_QUESTION,
    DIETS,
    EVENTS,
    FIRST_NAMES,
    LAST_NAMES,
    ORGANIZATIONS,
    PLACES,
    POSITIONS,
    SESSION_TRANSITIONS,
    SHIRT_QUESTION,
    SHIRTS,
    TRANSITIONS,
    EventSpec,
)

ACCOUNT_CODE = "ACME"

# What an item exercises (several may apply to one item).
GOOD = "good"
TEST = "test"
INVALID = "invalid"
MISSING_EMAIL = "missing_email"
INVALID_EMAIL = "invalid_email"
UNTAGGED_STATUS = "untagged_status"
DUPLICATE = "duplicate"
MASS_ACTION = "mass_action"
INACTIVE = "inactive"
TEST_EVENT = "test_event"

BAD_KINDS = (INVALID, MISSING_EMAIL, INVALID_EMAIL, UNTAGGED_STATUS)

REG_CREATE = "registration.create_update"
REG_STATUS = "registration.status_change"
SESSION_STATUS = "session_registration.status_change"
EVENT_CREATE = "event.create_update"
SOURCES = (REG_CREATE, REG_STATUS, SESSION_STATUS, EVENT_CREATE)


@dataclass(frozen=True)
class SimChange:
    """One generated item: when it is due (seconds from the start), its JSON body, and what it
    exercises. `body` is usually a change event; items of kind `invalid` are deliberately not."""

    offset: float
    body: Any
    kinds: frozenset[str]

    @property
    def valid(self) -> bool:
        return INVALID not in self.kinds

    @property
    def change_id(self) -> str | None:
        value = self.body.get("changeId") if isinstance(self.body, dict) else None
        return value if isinstance(value, str) else None


@dataclass
class _Registration:
    code: str
    event: EventSpec
    profile: dict[str, Any]
    attendee_type: str
    status: str
    is_test: bool
    properties: dict[str, Any]
    questions: list[dict[str, Any]]
    sessions: dict[str, str | None] = field(default_factory=dict)


def change_id(seed: int, number: int) -> str:
    """A UUID derived from the seed and the item's position: repeatable, and unique per seed."""
    digest = hashlib.sha256(f"signal-sim:{seed}:{number}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _World:
    def __init__(self, seed: int, rate: float, start: datetime) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.rate = rate
        self.start = start
        self.number = 0
        self.registrations: list[_Registration] = []
        self.sent: list[dict[str, Any]] = []
        self.codes: set[str] = set()
        self.invalid_variant = 0

    # -- building blocks ------------------------------------------------------------------------

    def offset(self) -> float:
        return self.number / self.rate

    def envelope(self, kind: str, event: EventSpec) -> dict[str, Any]:
        body = {
            "changeId": change_id(self.seed, self.number),
            "type": kind,
            "accountCode": ACCOUNT_CODE,
            "eventCode": event.code,
            "occurredAt": _iso(self.start + timedelta(seconds=self.offset())),
            "registration": None,
            "session": None,
            "event": None,
        }
        return body

    def new_code(self) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        while True:
            code = "R" + "".join(self.rng.choice(alphabet) for _ in range(8))
            if code not in self.codes:
                self.codes.add(code)
                return code

    def profile(self, email: bool | None = True) -> dict[str, Any]:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, state, postal, country = rng.choice(PLACES)
        org = rng.choice(ORGANIZATIONS)
        domain = (org or "example").lower().replace(" ", "") + ".example.com"
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        local = local.encode("ascii", "ignore").decode() + str(rng.randint(1, 999))
        address = {"line1": f"{rng.randint(1, 999)} Main St", "city": city, "postalCode": postal}
        if state:
            address["state"] = state
        address["country"] = country
        value: str | None = f"{local}@{domain}"
        if email is None:
            value = None
        elif email is False:
            value = f"{local}(at){domain}"
        out: dict[str, Any] = {"firstName": first, "lastName": last, "email": value}
        if rng.random() < 0.7:
            out["organization"] = org
        if rng.random() < 0.6:
            out["position"] = rng.choice(POSITIONS)
        if rng.random() < 0.5:
            out["phone"] = f"+1 206 555 {rng.randint(0, 9999):04d}"
        out["address"] = address
        if value is None and self.rng.random() < 0.5:
            del out["email"]
        return out

    def registration_json(self, reg: _Registration, previous: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "registrationCode": reg.code,
            "attendeeTypeCode": reg.attendee_type,
            "registrationStatusLabel": reg.status,
            "isTest": reg.is_test,
            "isActive": True,
            "properties": dict(reg.properties, custom=dict(reg.properties.get("custom", {}))),
            "profile": reg.profile,
            "registrationQuestions": reg.questions,
        }
        if previous is not None:
            body["previousStatusLabel"] = previous
        return body

    def kinds_of(self, reg: _Registration, *extra: str) -> frozenset[str]:
        kinds = set(extra)
        if reg.is_test or reg.event.is_test:
            kinds.add(TEST)
        if reg.event.is_test:
            kinds.add(TEST_EVENT)
        if not any(k in BAD_KINDS for k in kinds):
            kinds.add(GOOD)
        return frozenset(kinds)

    def emit(self, body: Any, kinds: frozenset[str]) -> SimChange:
        item = SimChange(self.offset(), body, kinds)
        self.number += 1
        if isinstance(body, dict) and INVALID not in kinds and DUPLICATE not in kinds:
            self.sent.append(body)
        return item

    # -- the kinds of change --------------------------------------------------------------------

    def event_change(self, event: EventSpec, status: str | None = None) -> SimChange:
        body = self.envelope(EVENT_CREATE, event)
        questions: dict[str, Any] = {"ownerEmail": f"events+{event.code.lower()}@acme.example.com"}
        questions["ownerFirstName"] = "Events"
        questions["ownerLastName"] = "Team"
        if event.campaign_id is not None:
            questions["marketoCampaignId"] = event.campaign_id
        statuses = [
            {"label": CUSTOM_STATUS_TAGGED, "classification": "Accepted", "tags": ["registered"]},
            {"label": CUSTOM_STATUS_UNTAGGED, "classification": "Pending", "tags": []},
        ]
        body["event"] = {
            "eventCode": event.code,
            "eventName": event.name,
            "eventStatus": status or event.status,
            "isTest": event.is_test,
            "startDate": event.start_date,
            "endDate": event.end_date,
            "timezone": event.timezone,
            "eventType": event.event_type,
            "eventQuestions": questions,
            "setup": {
                "statuses": statuses,
                "customProperties": [
                    {"name": CUSTOM_PROPERTY_TAGGED, "tags": ["speaker"]},
                    {"name": CUSTOM_PROPERTY_UNTAGGED, "tags": []},
                ],
                "attendeeTypes": [
                    {"code": "Attendee", "tags": []},
                    {"code": "VIP", "tags": ["vip"]},
                    {"code": "Exhibitor", "tags": []},
                    {"code": "Speaker", "tags": ["vip"]},
                ],
                "registrationQuestions": [
                    {"code": DIET_QUESTION, "tags": ["diet"]},
                    {"code": SHIRT_QUESTION, "tags": []},
                ],
                "eventTags": ["signal_marketo"] if event.send_to_marketo else [],
            },
        }
        kinds = {GOOD}
        if event.is_test:
            kinds |= {TEST, TEST_EVENT}
        return self.emit(body, frozenset(kinds))

    def new_registration(
        self,
        event: EventSpec | None = None,
        *,
        email: bool | None = True,
        is_test: bool | None = None,
        status: str | None = None,
    ) -> SimChange:
        rng = self.rng
        if event is None:
            event = self.pick_event()
        if status is None:
            status = _weighted(
                rng,
                (("New", 12), ("Invited", 4), ("Waitlist Hold", 1), ("Requested Invitation", 1)),
            )
        if is_test is None:
            is_test = rng.random() < 0.05
        custom: dict[str, bool] = {}
        if rng.random() < 0.1:
            custom[CUSTOM_PROPERTY_TAGGED] = True
        if rng.random() < 0.1:
            custom[CUSTOM_PROPERTY_UNTAGGED] = True
        questions = []
        if rng.random() < 0.6:
            questions.append({"questionCode": DIET_QUESTION, "answers": [rng.choice(DIETS)]})
        if rng.random() < 0.5:
            questions.append({"questionCode": SHIRT_QUESTION, "answers": [rng.choice(SHIRTS)]})
        reg = _Registration(
            code=self.new_code(),
            event=event,
            profile=self.profile(email),
            attendee_type=rng.choice(ATTENDEE_TYPES),
            status=status,
            is_test=is_test,
            properties={
                "complete": status == "New" and rng.random() < 0.6,
                "badgePrinted": False,
                "onToDoList": rng.random() < 0.2,
                "invoiceGenerated": status == "New" and rng.random() < 0.5,
                "custom": custom,
            },
            questions=questions,
        )
        if email is True:
            self.registrations.append(reg)
        body = self.envelope(REG_CREATE, event)
        body["registration"] = self.registration_json(reg)
        extra = [MISSING_EMAIL] if email is None else [INVALID_EMAIL] if email is False else []
        return self.emit(body, self.kinds_of(reg, *extra))

    def pick_event(self) -> EventSpec:
        event: EventSpec = _weighted(self.rng, tuple(zip(EVENTS, (6, 4, 2, 3, 1), strict=True)))
        return event

    def movable(self) -> list[_Registration]:
        return [r for r in self.registrations if r.status in TRANSITIONS]

    def transition(self, reg: _Registration | None = None, to: str | None = None) -> SimChange:
        if reg is None:
            candidates = self.movable()
            if not candidates:
                return self.new_registration()
            reg = self.rng.choice(candidates)
        if to is None:
            to = _weighted(self.rng, TRANSITIONS[reg.status])
        previous, reg.status = reg.status, to
        if to == "Attended":
            reg.properties["badgePrinted"] = True
        body = self.envelope(REG_STATUS, reg.event)
        body["registration"] = self.registration_json(reg, previous)
        extra = [UNTAGGED_STATUS] if to == CUSTOM_STATUS_UNTAGGED else []
        return self.emit(body, self.kinds_of(reg, *extra))

    def update(self) -> SimChange:
        if not self.registrations:
            return self.new_registration()
        reg = self.rng.choice(self.registrations)
        choice = self.rng.randrange(4)
        if choice == 0:
            reg.properties["complete"] = True
        elif choice == 1:
            reg.properties["invoiceGenerated"] = True
        elif choice == 2:
            reg.properties["custom"] = dict(
                reg.properties["custom"], **{CUSTOM_PROPERTY_TAGGED: True}
            )
        else:
            reg.profile = dict(reg.profile, position=self.rng.choice(POSITIONS[:-1]))
        body = self.envelope(REG_CREATE, reg.event)
        body["registration"] = self.registration_json(reg)
        return self.emit(body, self.kinds_of(reg))

    def session_change(self, reg: _Registration | None = None) -> SimChange:
        candidates = [r for r in self.registrations if r.status in ACCEPTED and _movable(r)]
        if reg is None:
            if not candidates:
                return self.new_registration()
            reg = self.rng.choice(candidates)
        movable = [s for s in reg.event.sessions if reg.sessions.get(s.code) in SESSION_TRANSITIONS]
        if not movable:  # attended or no-show everywhere: Certain allows no further move
            return self.new_registration()
        session = self.rng.choice(movable)
        previous = reg.sessions.get(session.code)
        moves = SESSION_TRANSITIONS[previous]
        to = _weighted(self.rng, moves)
        reg.sessions[session.code] = to
        body = self.envelope(SESSION_STATUS, reg.event)
        body["registration"] = self.registration_json(reg)
        body["session"] = {
            "sessionCode": session.code,
            "sessionName": session.name,
            "instanceId": f"{session.code}-1",
            "regSessionStatus": to,
            "previousRegSessionStatus": previous,
            "startDate": session.start,
            "endDate": session.end,
        }
        return self.emit(body, self.kinds_of(reg))

    def inactive(self) -> SimChange:
        if not self.registrations:
            return self.new_registration()
        reg = self.rng.choice(self.registrations)
        self.registrations.remove(reg)
        body = self.envelope(REG_CREATE, reg.event)
        body["registration"] = self.registration_json(reg)
        body["registration"]["isActive"] = False
        return self.emit(body, self.kinds_of(reg, INACTIVE))

    def duplicate(self) -> SimChange:
        if not self.sent:
            return self.new_registration()
        body = self.rng.choice(self.sent[-200:])
        kinds = {DUPLICATE, GOOD}
        if body.get("registration") and body["registration"].get("isTest"):
            kinds.add(TEST)
        if any(e.is_test and e.code == body.get("eventCode") for e in EVENTS):
            kinds |= {TEST, TEST_EVENT}
        return self.emit(body, frozenset(kinds))

    def invalid(self) -> SimChange:
        """Items a producer gets wrong; each must be rejected with a reason, never dropped."""
        variant = self.invalid_variant % 6
        self.invalid_variant += 1
        event = self.pick_event()
        body: Any = self.envelope(REG_STATUS, event)
        reg = {
            "registrationCode": self.new_code(),
            "registrationStatusLabel": "New",
            "profile": self.profile(),
        }
        body["registration"] = reg
        if variant == 0:
            del body["changeId"]
        elif variant == 1:
            body["type"] = "registration.deleted"
        elif variant == 2:
            body["occurredAt"] = body["occurredAt"].removesuffix("Z")
        elif variant == 3:
            del reg["registrationStatusLabel"]
        elif variant == 4:
            reg["properties"] = {"complete": "yes"}
        else:
            body = f"{event.code}: registration {reg['registrationCode']} changed"
        return self.emit(body, frozenset({INVALID}))

    def mass_attended(self, limit: int) -> list[SimChange]:
        """An organiser marks everyone registered for an event as attended at once."""
        live = [e for e in EVENTS if not e.is_test]
        event = self.rng.choice(live)
        targets = [
            r
            for r in self.registrations
            if r.event is event and r.status in ACCEPTED - {"Attended"}
        ]
        out: list[SimChange] = []
        for reg in targets[:limit]:
            item = self.transition(reg, "Attended")
            out.append(SimChange(item.offset, item.body, item.kinds | {MASS_ACTION}))
        return out


def _movable(reg: _Registration) -> bool:
    """A session of the registration's event it can still move in (Attended and No Show are
    final in Certain, reference/certain-data.md §2.8)."""
    return any(reg.sessions.get(s.code) in SESSION_TRANSITIONS for s in reg.event.sessions)


def _weighted(rng: random.Random, choices: tuple[tuple[Any, int], ...]) -> Any:
    values = [c[0] for c in choices]
    weights = [c[1] for c in choices]
    return rng.choices(values, weights=weights, k=1)[0]


_STEPS = (
    ("new", 22),
    ("transition", 34),
    ("update", 10),
    ("session", 20),
    ("event", 1),
    ("missing_email", 1),
    ("invalid_email", 1),
    ("invalid", 1),
    ("duplicate", 2),
    ("inactive", 1),
    ("test", 2),
    ("mass", 0.25),
)

DEFAULT_START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def generate(
    seed: int,
    rate: float,
    duration: float,
    start: datetime = DEFAULT_START,
) -> list[SimChange]:
    """`round(rate × duration)` items, due `1/rate` seconds apart.

    The first items announce every event (a registration for an unknown event is held back by
    the pipeline), then a short tour makes sure every kind of change and every kind of bad data
    appears early even in a short run; the rest is random traffic with realistic proportions.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    if duration < 0:
        raise ValueError("duration must not be negative")
    return list(_iterate(seed, rate, round(rate * duration), start))


def _iterate(seed: int, rate: float, total: int, start: datetime) -> Iterator[SimChange]:
    world = _World(seed, rate, start)
    produced = 0

    def room() -> int:
        return total - produced

    plan: list[str] = [f"event:{e.code}" for e in EVENTS]
    plan += ["new"] * 6 + ["new-test-event", "new-test-event", "test", "transition", "session"]
    plan += ["transition", "missing_email", "invalid_email", "untagged", "invalid", "duplicate"]
    plan += ["inactive", "session", "update", "mass", "event-update"]
    steps = [s[0] for s in _STEPS]
    weights = [s[1] for s in _STEPS]
    while produced < total:
        step = plan.pop(0) if plan else world.rng.choices(steps, weights=weights, k=1)[0]
        items: list[SimChange]
        if step.startswith("event:"):
            code = step.split(":", 1)[1]
            items = [world.event_change(next(e for e in EVENTS if e.code == code))]
        elif step == "event-update" or step == "event":
            items = [world.event_change(world.pick_event())]
        elif step == "new":
            items = [world.new_registration()]
        elif step == "new-test-event":
            items = [world.new_registration(EVENTS[-1], is_test=False, status="New")]
        elif step == "test":
            items = [world.new_registration(EVENTS[0], is_test=True, status="New")]
        elif step == "transition":
            items = [world.transition()]
        elif step == "update":
            items = [world.update()]
        elif step == "session":
            items = [world.session_change()]
        elif step == "missing_email":
            items = [world.new_registration(email=None, is_test=False, status="New")]
        elif step == "invalid_email":
            items = [world.new_registration(email=False, is_test=False, status="New")]
        elif step == "untagged":
            reg = next((r for r in world.registrations if r.status == "New"), None)
            items = [
                world.transition(reg, CUSTOM_STATUS_UNTAGGED)
                if reg is not None
                else world.new_registration()
            ]
        elif step == "invalid":
            items = [world.invalid()]
        elif step == "duplicate":
            items = [world.duplicate()]
        elif step == "inactive":
            items = [world.inactive()]
        else:
            items = world.mass_attended(min(room(), 12)) or [world.transition()]
        for item in items[: room()]:
            produced += 1
            yield item
