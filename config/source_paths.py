"""Source paths: where mappings, tokens and filters may read in a change event (DESIGN 4.2).

A path is dotted, camelCase as in Certain's API (`registration.profile.email`). The list is kept
by hand here because configuration is checked without the runtime installed; a test holds it
consistent with the change-event models.

Which parts of a change exist depends on its type: a session registration status change carries a
`session`, an event change carries no `registration`. Event fields (`event.*`,
`eventQuestions.<code>`) are available for every source because the event's setup comes from the
catalog even when the change itself only names the event.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches

from config.models import Account, ObjectKind, Source

ANSWERS_PREFIX = "answers."
"""`answers.<question tag>`: the answer to the registration question carrying that tag."""

EVENT_QUESTIONS_PREFIX = "eventQuestions."
"""`eventQuestions.<code>`: the event's value for an event question (e.g. a campaign id)."""

CUSTOM_PROPERTY_PREFIX = "registration.properties.custom."
"""`registration.properties.custom.<name>`: a custom registration property (true when set)."""

ALL_SOURCES = frozenset(Source)
REGISTRATION_SOURCES = frozenset(
    {
        Source.REGISTRATION_CREATE_UPDATE,
        Source.REGISTRATION_STATUS_CHANGE,
        Source.SESSION_REGISTRATION_STATUS_CHANGE,
    }
)
SESSION_SOURCES = frozenset({Source.SESSION_REGISTRATION_STATUS_CHANGE})


@dataclass(frozen=True)
class SourcePath:
    path: str
    sources: frozenset[Source]
    description: str


def _paths(sources: frozenset[Source], prefix: str, entries: dict[str, str]) -> list[SourcePath]:
    return [SourcePath(prefix + name, sources, text) for name, text in entries.items()]


_ENVELOPE = {
    "changeId": "idempotency key of the change",
    "type": "change type (the flow's source)",
    "accountCode": "Certain account code",
    "eventCode": "event code",
    "occurredAt": "when the change happened in Certain (ISO 8601)",
}

_REGISTRATION = {
    "registrationCode": "registration code",
    "attendeeTypeCode": "attendee type code",
    "registrationStatusLabel": "current registration status",
    "previousStatusLabel": "status before a status change",
    "isTest": "test registration",
    "isActive": "active registration",
    "properties.complete": "standard property Complete",
    "properties.badgePrinted": "standard property Badge Printed",
    "properties.onToDoList": "standard property On To Do List",
    "properties.invoiceGenerated": "standard property Invoice Generated",
    "profile.firstName": "first name",
    "profile.lastName": "last name",
    "profile.email": "email address",
    "profile.organization": "organization",
    "profile.position": "position / job title",
    "profile.phone": "phone number",
    "profile.address.line1": "address line 1",
    "profile.address.line2": "address line 2",
    "profile.address.line3": "address line 3",
    "profile.address.city": "city",
    "profile.address.state": "state or region",
    "profile.address.postalCode": "postal code",
    "profile.address.country": "country",
}

_SESSION = {
    "sessionCode": "session code",
    "sessionName": "session name",
    "instanceId": "session instance id",
    "regSessionStatus": "current session registration status",
    "previousRegSessionStatus": "session registration status before the change",
    "startDate": "session start",
    "endDate": "session end",
}

_EVENT = {
    "eventCode": "event code",
    "eventName": "event name",
    "eventStatus": "event status",
    "eventType": "event type",
    "isTest": "test event",
    "startDate": "event start",
    "endDate": "event end",
    "timezone": "event time zone",
    "tags": "the event's tags (resolved through the catalog)",
}

SOURCE_PATHS: dict[str, SourcePath] = {
    entry.path: entry
    for entry in [
        *_paths(ALL_SOURCES, "", _ENVELOPE),
        *_paths(REGISTRATION_SOURCES, "registration.", _REGISTRATION),
        *_paths(SESSION_SOURCES, "session.", _SESSION),
        *_paths(ALL_SOURCES, "event.", _EVENT),
    ]
}
"""Every fixed path, with the sources whose changes carry it."""


def _source_list(sources: frozenset[Source]) -> str:
    return ", ".join(sorted(sources))


def sources_of(path: str) -> frozenset[Source] | None:
    """The sources a path is available for, or None when the path is unknown."""
    if path in SOURCE_PATHS:
        return SOURCE_PATHS[path].sources
    if path.startswith(ANSWERS_PREFIX) and len(path) > len(ANSWERS_PREFIX):
        return REGISTRATION_SOURCES
    if path.startswith(EVENT_QUESTIONS_PREFIX) and len(path) > len(EVENT_QUESTIONS_PREFIX):
        return ALL_SOURCES
    if path.startswith(CUSTOM_PROPERTY_PREFIX) and len(path) > len(CUSTOM_PROPERTY_PREFIX):
        return REGISTRATION_SOURCES
    return None


def path_problem(path: str, account: Account) -> str | None:
    """Why `path` cannot be read in this account, or None when it can (whatever the source)."""
    if sources_of(path) is None:
        return f"unknown source path {path!r} ({_suggestion(path)})"
    if path.startswith(ANSWERS_PREFIX):
        tag_name = path[len(ANSWERS_PREFIX) :]
        tag = account.tag(tag_name)
        if tag is None:
            return (
                f"unknown question tag {tag_name!r} in {path!r} (known: {_question_tags(account)})"
            )
        if ObjectKind.REGISTRATION_QUESTION not in tag.objects:
            allowed = ", ".join(tag.objects)
            return (
                f"tag {tag_name!r} in {path!r} does not apply to registration questions "
                f"(it applies to: {allowed})"
            )
    return None


def source_problem(path: str, source: Source) -> str | None:
    """Why a flow watching `source` cannot read `path`, or None (unknown paths are not judged)."""
    sources = sources_of(path)
    if sources is None or source in sources:
        return None
    return f"{path!r} is not available for source {source} (only for: {_source_list(sources)})"


def paths_for(source: Source) -> list[str]:
    """The fixed paths a flow watching `source` may use, in catalog order."""
    return [entry.path for entry in SOURCE_PATHS.values() if source in entry.sources]


def _question_tags(account: Account) -> str:
    names = [t.name for t in account.tags if ObjectKind.REGISTRATION_QUESTION in t.objects]
    return ", ".join(names) if names else "none"


def _suggestion(path: str) -> str:
    """A close known path, so a typo's message shows the fix."""
    close = get_close_matches(path, list(SOURCE_PATHS), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return (
        "expected a path such as 'registration.profile.email', "
        "'answers.<question tag>' or 'eventQuestions.<code>'"
    )
