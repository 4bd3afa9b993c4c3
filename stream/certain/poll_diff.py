"""What changed in a Certain record since it was last seen: the change events a poll emits.

Certain has no webhooks (reference/certain-data.md §3), so the Certain source re-reads records
modified after its watermark and works out the change itself, from the record's last-seen state
(status, `dateModified`, a digest of the fields a change event carries):

- a registration never seen before → `registration.create_update` (a brand-new registration, or
  one that existed before the source's start point: Signal cannot tell what changed then);
- a new status → `registration.status_change` carrying `previousStatusLabel`;
- any other field changed (profile, properties, answers, attendee type, `isTest`, `isActive`) →
  `registration.create_update`; a version that changed both emits both;
- a soft delete (`isActive` true → false) is such a field change: one
  `registration.create_update` with `isActive: false`, which flows see as any update;
- the same version again (the overlap window re-reads records on purpose, to survive clock skew
  and records sharing a second) or an older one → nothing;
- an event record never seen, or whose setup, status or any other field changed →
  `event.create_update`, which refreshes the catalog.

`changeId` is derived from (account, event, registration, dateModified, type), so a poll that is
repeated after a crash produces the same ids and the ledger keeps each change once. Certain
stamps `dateModified` to the second: should a record change twice within one second, the second
version's ids also carry its digest, so it is not mistaken for the first.

A malformed record is a `RecordRejection` naming the field, the value and what was expected;
nothing here raises for bad input, so one bad record never stops a poll.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from config.models import Source
from stream.certain.events import ChangeEvent
from stream.certain.parsing import Rejection, parse_change

TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S")
"""Certain's two timestamp formats (reference §3), both UTC, second resolution."""
TIMESTAMP_HINT = "a timestamp yyyy-MM-ddTHH:mm:ss or yyyy/MM/dd HH:mm:ss (UTC)"

VOLATILE_REGISTRATION_KEYS = frozenset(
    {"registrationStatusLabel", "previousStatusLabel", "dateModified", "statusModified"}
)
"""Left out of a registration's digest: the status is compared on its own, and the stamps
move with every version whether or not anything a flow reads changed."""
VOLATILE_EVENT_KEYS = frozenset({"dateModified"})
_NOT_CARRIED = frozenset({"eventCode"})
"""Record keys the change's `registration` part does not repeat (the envelope has them)."""


@dataclass(frozen=True, slots=True)
class LastSeen:
    """The last version of a record the source acted on."""

    date_modified: datetime
    digest: str
    status: str | None = None


@dataclass(frozen=True, slots=True)
class RecordRejection:
    """A record that cannot become a change: which field, what it held, what was expected."""

    field: str
    value: Any
    expected: str
    raw: Any
    code: str | None = None

    @property
    def reason(self) -> str:
        return f"{self.field}: expected {self.expected}, got {_show(self.value)}"


@dataclass(frozen=True, slots=True)
class RecordDiff:
    """A readable record: the code it is kept under, its state now, and the changes to emit
    (none when it is a version already seen)."""

    code: str
    seen: LastSeen
    changes: list[ChangeEvent] = field(default_factory=list)
    body: dict[str, Any] | None = None
    """A registration as its changes carry it (set when there are changes): kept as last seen,
    so a session change of the registration can carry it too."""

    @property
    def unchanged(self) -> bool:
        return not self.changes


def parse_timestamp(value: Any) -> datetime | None:
    """A Certain timestamp in either format as an aware UTC datetime; None when unreadable.
    ISO 8601 with an explicit offset is read too (a proxy or a newer API may add one)."""
    if not isinstance(value, str):
        return None
    return _parse_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_text(value: str) -> datetime | None:
    """Cached: every poll re-reads the overlap's records, whose stamps repeat (a mass change
    gives thousands of records one `dateModified`), and strptime costs ~50 µs a call — it was
    most of a quiet poll's CPU. The datetimes it returns are immutable."""
    text = value.strip()
    for fmt in TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0)


def format_timestamp(moment: datetime) -> str:
    """`yyyy-MM-ddTHH:mm:ss` in UTC, the format Certain's filters take."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def digest_of(record: Mapping[str, Any], volatile: frozenset[str]) -> str:
    """A stable digest of the record's content without its volatile keys."""
    content = {k: v for k, v in record.items() if k not in volatile}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def change_id(
    account: str, event: str, code: str, modified: datetime, kind: Source, extra: str = ""
) -> str:
    """Deterministic: the same version of the same record always gives the same id."""
    key = "|".join((account, event, code, format_timestamp(modified), kind.value, extra))
    return "certain-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


# --- registrations -----------------------------------------------------------------------------


def diff_registration(
    account: str, event: str, record: Any, last: LastSeen | None
) -> RecordDiff | RecordRejection:
    """The change events one `Registration/{acct}/{evt}` record amounts to, given its last-seen
    state (None: never seen)."""
    checked = _check_registration(record)
    if isinstance(checked, RecordRejection):
        return checked
    code, modified = checked
    status = record.get("registrationStatusLabel")
    registration = {k: v for k, v in record.items() if k not in _NOT_CARRIED}
    digest = digest_of(registration, VOLATILE_REGISTRATION_KEYS)
    seen = LastSeen(modified, digest, status)
    if last is not None and (
        modified < last.date_modified
        or (modified == last.date_modified and digest == last.digest and status == last.status)
    ):
        return RecordDiff(code, last)
    extra = digest if last is not None and modified == last.date_modified else ""
    kinds: list[tuple[Source, dict[str, Any]]] = []
    if last is None:
        kinds.append((Source.REGISTRATION_CREATE_UPDATE, registration))
    else:
        if status != last.status:
            moved = dict(registration, previousStatusLabel=last.status)
            kinds.append((Source.REGISTRATION_STATUS_CHANGE, moved))
        if digest != last.digest:
            kinds.append((Source.REGISTRATION_CREATE_UPDATE, registration))
    changes: list[ChangeEvent] = []
    for kind, body in kinds:
        envelope = {
            "changeId": change_id(account, event, code, modified, kind, extra),
            "type": kind.value,
            "accountCode": account,
            "eventCode": event,
            "occurredAt": modified.isoformat().replace("+00:00", "Z"),
            "registration": body,
        }
        parsed = parse_change(envelope)
        if isinstance(parsed, Rejection):
            return from_parsing(parsed, record, code)
        changes.append(parsed)
    return RecordDiff(code, seen, changes, registration)


def _check_registration(record: Any) -> tuple[str, datetime] | RecordRejection:
    if not isinstance(record, dict):
        return RecordRejection("registration", record, "a JSON object", record)
    code = record.get("registrationCode")
    if not isinstance(code, str) or not code.strip():
        return RecordRejection("registrationCode", code, "a non-blank registration code", record)
    raw_modified = record.get("dateModified")
    modified = parse_timestamp(raw_modified)
    if modified is None:
        return RecordRejection("dateModified", raw_modified, TIMESTAMP_HINT, record, code)
    status = record.get("registrationStatusLabel")
    if status is not None and not isinstance(status, str):
        return RecordRejection(
            "registrationStatusLabel", status, "a status label (text)", record, code
        )
    return code, modified


# --- events --------------------------------------------------------------------------------------


def diff_event(account: str, record: Any, last: LastSeen | None) -> RecordDiff | RecordRejection:
    """The `event.create_update` one `Event/{acct}/{evt}` record amounts to (its setup, status
    and questions included), given its last-seen state."""
    if not isinstance(record, dict):
        return RecordRejection("event", record, "a JSON object", record)
    code = record.get("eventCode")
    if not isinstance(code, str) or not code.strip():
        return RecordRejection("eventCode", code, "a non-blank event code", record)
    raw_modified = record.get("dateModified")
    modified = parse_timestamp(raw_modified)
    if modified is None:
        return RecordRejection("dateModified", raw_modified, TIMESTAMP_HINT, record, code)
    digest = digest_of(record, VOLATILE_EVENT_KEYS)
    status = record.get("eventStatus") if isinstance(record.get("eventStatus"), str) else None
    seen = LastSeen(modified, digest, status)
    if last is not None and (
        modified < last.date_modified or (modified == last.date_modified and digest == last.digest)
    ):
        return RecordDiff(code, last)
    extra = digest if last is not None and modified == last.date_modified else ""
    kind = Source.EVENT_CREATE_UPDATE
    envelope = {
        "changeId": change_id(account, code, code, modified, kind, extra),
        "type": kind.value,
        "accountCode": account,
        "eventCode": code,
        "occurredAt": modified.isoformat().replace("+00:00", "Z"),
        "event": _with_event_tags(record),
    }
    parsed = parse_change(envelope)
    if isinstance(parsed, Rejection):
        return from_parsing(parsed, record, code)
    return RecordDiff(code, seen, [parsed])


def event_tag_names(record: Mapping[str, Any]) -> set[str]:
    """Tags as Certain lists them on an event (`{"tag": [{"name": …}]}`, reference §2.2), or a
    plain list of names."""
    tags = record.get("tags")
    if isinstance(tags, dict):
        tags = tags.get("tag")
    names: set[str] = set()
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, str):
                names.add(tag)
            elif isinstance(tag, dict) and isinstance(tag.get("name"), str):
                names.add(tag["name"])
    return names


def _with_event_tags(record: Mapping[str, Any]) -> dict[str, Any]:
    """The event as its change carries it: Certain lists the event's tags beside its fields,
    flows read them from `setup.eventTags` (DESIGN 4.2), so they are copied there unless the
    setup names them itself."""
    event = dict(record)
    names = event_tag_names(record)
    setup = event.get("setup", {})
    if names and isinstance(setup, dict) and "eventTags" not in setup:
        event["setup"] = {**setup, "eventTags": sorted(names)}
    return event


# --- helpers -------------------------------------------------------------------------------------


def from_parsing(rejection: Rejection, record: Any, code: str) -> RecordRejection:
    """A change-contract problem, named by the record's own field (`registration.profile` →
    `profile`)."""
    path = rejection.path
    for prefix in ("registration.", "session.", "event."):
        if path.startswith(prefix):
            path = path.removeprefix(prefix)
            break
    value = _lookup(record, path)
    return RecordRejection(path or "record", value, _expected(rejection.reason), record, code)


def _expected(reason: str) -> str:
    """The parsing layer says 'expected X, found Y'; keep the X."""
    text = reason
    if text.startswith("expected "):
        text = text.removeprefix("expected ")
    for cut in ("; found ", ", found ", ", got "):
        if cut in text:
            text = text.split(cut, 1)[0]
    return text


def _lookup(record: Any, path: str) -> Any:
    value = record
    for part in path.replace("]", "").replace("[", ".").split("."):
        if not part:
            continue
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"
