"""Changes to the Certain sandbox's data, as staff or registrants would make them in Certain:
new registrations, status moves (one or thousands at once, like Certain's mass actions), edits,
soft deletes (clearing "Is Active?", reference/certain-data.md §2.4), session-registration moves
(§2.8 transitions) and event setup changes.

Every change stamps `dateModified` from the sandbox clock, so the REST API's
`dateModified_after` filter sees it; a mass change stamps all its records with one time, as a
single database update would. Bad input raises `ChangeError` naming the field, the value and
what was expected.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from simulators.certain.sandbox_seed import event_setup, new_profile, registration_code
from simulators.certain.sandbox_state import (
    SESSION_STATUSES,
    SESSION_TRANSITIONS,
    SandboxEvent,
    SandboxRegistration,
    SandboxState,
    SessionRegistration,
)

REGISTRATION_FIELDS = {
    "registrationStatusLabel": str,
    "attendeeTypeCode": str,
    "isTest": bool,
    "isActive": bool,
    "profile": dict,
    "properties": dict,
    "registrationQuestions": list,
}
EVENT_FIELDS = {
    "eventName": ("name", str),
    "eventStatus": ("status", str),
    "isActive": ("is_active", bool),
    "isTest": ("is_test", bool),
    "startDate": ("start_date", str),
    "endDate": ("end_date", str),
    "timezone": ("timezone", str),
    "eventType": ("event_type", str),
    "tags": ("tags", list),
    "eventQuestions": ("questions", dict),
    "setup": ("setup", dict),
}
MASS_FILTERS = ("registrationStatusLabel", "attendeeTypeCode", "isTest", "isActive")


class ChangeError(ValueError):
    """Bad admin input; `status` 404 for something that does not exist, else 400."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _typed(name: str, value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        expected = {str: "a string", bool: "true or false", dict: "an object", list: "a list"}
        raise ChangeError(f"'{name}' is {value!r}: expected {expected.get(kind, kind.__name__)}")
    return value


def _check_fields(data: Mapping[str, Any], allowed: Mapping[str, Any], what: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ChangeError(
            f"unknown {what} field '{unknown[0]}': expected some of {', '.join(sorted(allowed))}"
        )


def find_event(state: SandboxState, account: str, event: str) -> SandboxEvent:
    found = state.event(account, event)
    if found is None:
        raise ChangeError(f"event '{event}' not found in account '{account}'", 404)
    return found


def find_registration(event: SandboxEvent, code: str) -> SandboxRegistration:
    reg = event.registrations.get(code)
    if reg is None:
        raise ChangeError(f"registration '{code}' not found in event '{event.code}'", 404)
    return reg


def _check_status(event: SandboxEvent, label: str) -> None:
    known = event.status_labels()
    if label not in known:
        raise ChangeError(
            f"'registrationStatusLabel' is {label!r}: not a status of event {event.code}; "
            f"expected one of {', '.join(sorted(known))}"
        )


def _apply(
    reg: SandboxRegistration, event: SandboxEvent, data: Mapping[str, Any], now: int
) -> None:
    """Validate everything first, then change: a refused change leaves the record as it was."""
    _check_fields(data, REGISTRATION_FIELDS, "registration")
    for name, kind in REGISTRATION_FIELDS.items():
        if name in data:
            _typed(name, data[name], kind)
    if "registrationStatusLabel" in data:
        _check_status(event, data["registrationStatusLabel"])
    status = data.get("registrationStatusLabel")
    if status is not None and status != reg.status:
        reg.status = status
        reg.status_modified = max(now, reg.date_modified + 1)
    reg.attendee_type = data.get("attendeeTypeCode", reg.attendee_type)
    reg.is_test = data.get("isTest", reg.is_test)
    reg.is_active = data.get("isActive", reg.is_active)
    reg.profile = {**reg.profile, **data.get("profile", {})}
    reg.properties = {**reg.properties, **data.get("properties", {})}
    reg.questions = list(data.get("registrationQuestions", reg.questions))
    reg.touch(now)


def create_registration(
    state: SandboxState, event: SandboxEvent, data: Mapping[str, Any], rng: random.Random
) -> SandboxRegistration:
    """A new registration; missing fields are made up (a generated person, status New)."""
    data = dict(data)
    code = data.pop("registrationCode", None)
    if code is None:
        taken = {c for e in _all_events(state) for c in e.registrations}
        code = registration_code(rng, taken)
    _typed("registrationCode", code, str)
    if not code.strip() or code in event.registrations:
        raise ChangeError(f"'registrationCode' is {code!r}: expected a new, non-blank code")
    _check_fields(data, REGISTRATION_FIELDS, "registration")
    status = data.get("registrationStatusLabel", "New")
    _check_status(event, _typed("registrationStatusLabel", status, str))
    profile = new_profile(rng, state.peek_pk())
    reg = state.add_registration(
        event,
        code=code,
        attendee_type="Attendee",
        status=status,
        profile=profile,
        properties={"complete": False, "custom": {}},
    )
    try:
        _apply(reg, event, data, reg.date_created)
    except ChangeError:
        del event.registrations[code]
        raise
    reg.date_modified = reg.status_modified = reg.date_created
    return reg


def create_many(
    state: SandboxState,
    event: SandboxEvent,
    count: int,
    data: Mapping[str, Any],
    rng: random.Random,
) -> list[SandboxRegistration]:
    if "registrationCode" in data:
        raise ChangeError("'registrationCode' cannot be given with 'count': codes are generated")
    return [create_registration(state, event, data, rng) for _ in range(count)]


def change_registration(
    state: SandboxState, event: SandboxEvent, code: str, data: Mapping[str, Any]
) -> SandboxRegistration:
    reg = find_registration(event, code)
    _apply(reg, event, data, state.clock.now())
    return reg


def soft_delete(state: SandboxState, event: SandboxEvent, code: str) -> SandboxRegistration:
    """Clearing "Is Active?" (§2.4): the record stays and is served with `isActive: false`."""
    return change_registration(state, event, code, {"isActive": False})


def mass_change(
    state: SandboxState,
    event: SandboxEvent,
    changes: Mapping[str, Any],
    codes: list[str] | None = None,
    where: Mapping[str, Any] | None = None,
    limit: int | None = None,
) -> list[SandboxRegistration]:
    """Apply `changes` to the listed registrations, or to those matching `where` (at most
    `limit`, in creation order), all stamped with one `dateModified`."""
    if codes is not None:
        targets = [find_registration(event, c) for c in codes]
    else:
        where = where or {}
        _check_fields(where, dict.fromkeys(MASS_FILTERS), "'where'")
        targets = [
            r
            for r in event.registrations.values()
            if all(_field(r, k) == v for k, v in where.items())
        ]
    if limit is not None:
        targets = targets[:limit]
    if not targets:
        raise ChangeError(f"no registration of event '{event.code}' matches", 404)
    # One stamp for the whole action, later than every target's current one (so each record
    # still moves forward even if it changed earlier in the same second).
    now = max(state.clock.now(), *(r.date_modified + 1 for r in targets))
    for reg in targets:
        _apply(reg, event, changes, now)
    return targets


def _field(reg: SandboxRegistration, name: str) -> Any:
    return {
        "registrationStatusLabel": reg.status,
        "attendeeTypeCode": reg.attendee_type,
        "isTest": reg.is_test,
        "isActive": reg.is_active,
    }[name]


def set_session_status(
    state: SandboxState, event: SandboxEvent, code: str, session_code: str, status: str
) -> SessionRegistration:
    """Assign a registration to a session or move it (§2.8 transitions; a first assignment may
    be Registered, or Waitlisted as when the session is full)."""
    find_registration(event, code)
    session = event.sessions.get(session_code)
    if session is None:
        raise ChangeError(
            f"'sessionCode' is {session_code!r}: expected one of {', '.join(event.sessions)}", 404
        )
    if status not in SESSION_STATUSES:
        raise ChangeError(
            f"'regSessionStatus' is {status!r}: expected one of {', '.join(SESSION_STATUSES)}"
        )
    now = state.clock.now()
    agenda = event.agendas.get((code, session_code))
    if agenda is None:
        if status not in ("Registered", "Waitlisted"):
            raise ChangeError(
                f"'regSessionStatus' is {status!r}: a first assignment is Registered or Waitlisted"
            )
        agenda = SessionRegistration(code, session, status, now, now)
        event.agendas[(code, session_code)] = agenda
        return agenda
    if status not in SESSION_TRANSITIONS[agenda.status]:
        allowed = ", ".join(sorted(SESSION_TRANSITIONS[agenda.status])) or "none"
        raise ChangeError(
            f"'regSessionStatus' cannot move from {agenda.status} to {status}: "
            f"expected one of {allowed}"
        )
    agenda.status = status
    agenda.date_modified = max(now, agenda.date_modified + 1)
    return agenda


def upsert_event(state: SandboxState, account: str, data: Mapping[str, Any]) -> SandboxEvent:
    """Create an event (with the standard setup unless one is given) or change an existing
    one; either way its `dateModified` moves."""
    acct = state.account(account)
    if acct is None:
        raise ChangeError(f"account '{account}' not found", 404)
    data = dict(data)
    code = _typed("eventCode", data.pop("eventCode", None), str)
    sessions = _typed("sessions", data.pop("sessions", []), list)
    _check_fields(data, EVENT_FIELDS, "event")
    fields = {EVENT_FIELDS[k][0]: _typed(k, v, EVENT_FIELDS[k][1]) for k, v in data.items()}
    existing = acct.events.get(code)
    if existing is None:
        if not code.strip():
            raise ChangeError("'eventCode' is '': expected a non-blank code")
        fields.setdefault("name", code)
        fields.setdefault("status", "Active")
        fields.setdefault("setup", event_setup())
        parsed = [_session(s) for s in sessions]
        return state.add_event(acct, code=code, sessions=parsed, **fields)
    for attr, value in fields.items():
        setattr(existing, attr, value)
    existing.date_modified = max(state.clock.now(), existing.date_modified + 1)
    return existing


def _session(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        raise ChangeError(f"'sessions' item is {data!r}: expected an object with a 'code'")
    return data


def _all_events(state: SandboxState) -> list[SandboxEvent]:
    return [e for a in state.accounts.values() for e in a.events.values()]
