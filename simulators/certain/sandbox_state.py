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

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators.certain import traffic_world

STATUS_CLASSIFICATIONS: dict[str, str] = dict(traffic_world.STANDARD_STATUSES)
SESSION_STATUSES = ("Registered", "Waitlisted", "Cancelled", "No Show", "Attended")
SESSION_TRANSITIONS: dict[str, frozenset[str]] = {
    "Waitlisted": frozenset({"Cancelled", "Registered"}),
    "Registered": frozenset({"Cancelled", "No Show", "Attended"}),
    "Cancelled": frozenset({"Registered"}),
    "No Show": frozenset(),
    "Attended": frozenset(),
}
"""Session-registration moves Certain allows (reference §2.8); capacity is not modelled."""


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
