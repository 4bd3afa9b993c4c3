"""What changed in a Certain session registration since it was last seen.

Session registrations (`RegistrationAgenda/{acct}/{evt}`, reference/certain-data.md §2.8: one
record per registration and session, `regSessionStatus` among Registered, Waitlisted, Cancelled,
No Show, Attended) are polled like registrations. DESIGN 4.2 has one change type for them,
`session_registration.status_change`, carrying the session and the registration:

- a session registration never seen before → a status change without
  `previousRegSessionStatus` (the registration was just assigned to the session, or it was
  assigned before the source's start point);
- a new `regSessionStatus` → a status change carrying `previousRegSessionStatus`;
- any other field changed (the session moved in time) → nothing: no flow acts on it, and the
  new state is kept so that a later status change compares with it;
- the same version again (the overlap window) or an older one → nothing.

Certain's record names the registration and the session by code only; flows map the
registration's profile and filter on its attendee type and on the session's name, so the poll
passes in the registration as its last change carried it and the session as the event's session
list describes it. `changeId` derives from (account, event, registration, session,
dateModified), and carries the record's digest when a second version shares a second, so a poll
repeated after a crash gives the same ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config.models import Source
from stream.certain.events import ChangeEvent
from stream.certain.parsing import Rejection, parse_change
from stream.certain.poll_diff import (
    TIMESTAMP_HINT,
    LastSeen,
    RecordRejection,
    change_id,
    digest_of,
    from_parsing,
    parse_timestamp,
)

VOLATILE_SESSION_KEYS = frozenset({"regSessionStatus", "dateModified"})
"""Left out of a session registration's digest: the status is compared on its own."""
_SESSION_DETAIL_KEYS = ("trackName", "typeName", "locationName")
"""Fields of the event's session list a session change passes on when Certain gives them."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A readable `registrationAgendas` record."""

    registration_code: str
    session_code: str
    status: str
    modified: datetime
    digest: str
    raw: dict[str, Any]

    @property
    def seen(self) -> LastSeen:
        return LastSeen(self.modified, self.digest, self.status)

    def is_new_version(self, last: LastSeen | None) -> bool:
        """Newer than what was last seen (or never seen): worth a change, or a new state."""
        if last is None:
            return True
        if self.modified != last.date_modified:
            return self.modified > last.date_modified
        return self.digest != last.digest or self.status != last.status


@dataclass(frozen=True, slots=True)
class SessionDiff:
    record: SessionRecord
    changes: list[ChangeEvent] = field(default_factory=list)


def read_session_registration(record: Any) -> SessionRecord | RecordRejection:
    """The record's keys, stamp and status, or what is wrong with it. Agenda items of the
    older API name the session `activityCode` (reference §2.8); both are read."""
    if not isinstance(record, dict):
        return RecordRejection("registrationAgenda", record, "a JSON object", record)
    code = record.get("registrationCode")
    if not isinstance(code, str) or not code.strip():
        return RecordRejection("registrationCode", code, "a non-blank registration code", record)
    session = record.get("sessionCode", record.get("activityCode"))
    if not isinstance(session, str) or not session.strip():
        return RecordRejection("sessionCode", session, "a non-blank session code", record, code)
    raw_modified = record.get("dateModified")
    modified = parse_timestamp(raw_modified)
    if modified is None:
        return RecordRejection("dateModified", raw_modified, TIMESTAMP_HINT, record, code)
    status = record.get("regSessionStatus")
    if not isinstance(status, str) or not status.strip():
        return RecordRejection(
            "regSessionStatus", status, "a session registration status (text)", record, code
        )
    digest = digest_of(record, VOLATILE_SESSION_KEYS)
    return SessionRecord(code, session, status, modified, digest, record)


def diff_session_registration(
    account: str,
    event: str,
    record: SessionRecord,
    last: LastSeen | None,
    registration: Mapping[str, Any] | None,
    session: Mapping[str, Any] | None,
) -> SessionDiff | RecordRejection:
    """The change a session registration amounts to, given its last-seen state, the
    registration it belongs to (None: Certain has no such registration) and the session as the
    event's session list gives it (None: not listed; the change then carries the code alone)."""
    if not record.is_new_version(last):
        return SessionDiff(record)
    if last is not None and record.status == last.status:
        return SessionDiff(record)
    if registration is None:
        return RecordRejection(
            "registrationCode",
            record.registration_code,
            f"a registration of event {event}",
            record.raw,
            record.registration_code,
        )
    extra = record.session_code
    if last is not None and record.modified == last.date_modified:
        extra += "|" + record.digest
    kind = Source.SESSION_REGISTRATION_STATUS_CHANGE
    envelope = {
        "changeId": change_id(
            account, event, record.registration_code, record.modified, kind, extra
        ),
        "type": kind.value,
        "accountCode": account,
        "eventCode": event,
        "occurredAt": record.modified.isoformat().replace("+00:00", "Z"),
        "registration": dict(registration),
        "session": _session_part(record, last, session),
    }
    parsed = parse_change(envelope)
    if isinstance(parsed, Rejection):
        return from_parsing(parsed, record.raw, record.registration_code)
    return SessionDiff(record, [parsed])


def _session_part(
    record: SessionRecord, last: LastSeen | None, session: Mapping[str, Any] | None
) -> dict[str, Any]:
    raw = record.raw
    listed = session or {}
    name = listed.get("name", listed.get("sessionTitle"))
    part: dict[str, Any] = {
        "sessionCode": record.session_code,
        "sessionName": name if isinstance(name, str) else None,
        "instanceId": _first(raw, listed, "instanceId", "sessionInstanceId", numbers=True),
        "regSessionStatus": record.status,
        "previousRegSessionStatus": last.status if last is not None else None,
        "startDate": _first(raw, listed, "startDate"),
        "endDate": _first(raw, listed, "endDate"),
    }
    for key in _SESSION_DETAIL_KEYS:
        if isinstance(listed.get(key), str):
            part[key] = listed[key]
    return part


def _first(
    raw: Mapping[str, Any], listed: Mapping[str, Any], *keys: str, numbers: bool = False
) -> Any:
    """The agenda record's text, else the session list's (instance ids may be numbers)."""
    for source in (raw, listed):
        for key in keys:
            value = source.get(key)
            if isinstance(value, str) or (
                numbers and isinstance(value, int) and not isinstance(value, bool)
            ):
                return value
    return None
