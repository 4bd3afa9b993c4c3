"""Tag resolution: which account tags an item of a change carries (DESIGN 1, 5).

Flows select tags, never raw labels, so one flow serves every event. An item's tags come from the
account-level assignments (default registration statuses, session and event statuses) plus the
event's own setup from the catalog (custom statuses, custom properties, attendee types,
questions, event tags). Standard registration properties carry automatic tags of their own name.

A tag only counts where the account allows it: a tag that is unknown to the account, or applied
to an object kind it may not apply to, resolves to nothing. Item names (status labels, property
names, attendee type and question codes) and tag names are matched ignoring case and surrounding
or repeated whitespace, because they are typed by people in two systems; the tag names returned
are always the account's own spelling.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from config.models import Account, ObjectKind, StandardProperty, Tag
from stream.certain.events import Event, Registration

CACHED_CHARS = 256
"""Texts up to this long are cached: names and labels. Longer ones are a registrant's data
(a filter compares a field's value), each seen once; cached, 400 values of 900 KB held 700 MB."""


def normalise(text: str) -> str:
    """`text` as names are compared. Names are cached: every change normalises the same few
    labels, tag and item names again (about 45 calls a change with three flows, a fifth of
    routing)."""
    if len(text) > CACHED_CHARS:
        return _normalised(text)
    return _cached(text)


def _normalised(text: str) -> str:
    return " ".join(text.split()).casefold()


_cached = lru_cache(maxsize=16_384)(_normalised)


TagIndex = dict[str, tuple[Tag, ...]]

_indexes: dict[int, tuple[weakref.ref[Account], tuple[int, int], TagIndex]] = {}


def _tag_index(account: Account) -> TagIndex:
    """The account's tags by normalised name.

    Kept while the account object lives, as `stream.core.plan` keeps its plan (a new
    configuration is a new object); replacing or growing the tag list builds it again, and the
    object kinds of a tag are read from the tag itself, so widening a tag in place is seen.
    Renaming a tag in place is not.
    """
    key, guard = id(account), (id(account.tags), len(account.tags))
    kept = _indexes.get(key)
    if kept is not None and kept[0]() is account and kept[1] == guard:
        return kept[2]
    built: dict[str, list[Tag]] = {}
    for tag in account.tags:
        built.setdefault(normalise(tag.name), []).append(tag)
    index = {name: tuple(tags) for name, tags in built.items()}
    if len(_indexes) >= 16:
        del _indexes[next(iter(_indexes))]
    _indexes[key] = (weakref.ref(account, lambda _: _indexes.pop(key, None)), guard, index)
    return index


def allowed_tags(names: Iterable[str], kind: ObjectKind, account: Account) -> frozenset[str]:
    """The account tags among `names` that may apply to `kind`, in the account's spelling."""
    index = _tag_index(account)
    return frozenset(
        tag.name
        for name in {normalise(name) for name in names if isinstance(name, str)}
        for tag in index.get(name, ())
        if kind in tag.objects
    )


def _assigned(assignments: Mapping[str, Sequence[str]], label: str) -> list[str]:
    key = normalise(label)
    return [tag for item, tags in assignments.items() if normalise(item) == key for tag in tags]


def status_tags(label: str | None, event: Event | None, account: Account) -> frozenset[str]:
    """A registration status: account-level (default statuses) plus the event's custom ones."""
    if not label:
        return frozenset()
    names = _assigned(account.assignments.registration_statuses, label)
    if event is not None:
        key = normalise(label)
        names += [t for s in event.setup.statuses if normalise(s.label) == key for t in s.tags]
    return allowed_tags(names, ObjectKind.REGISTRATION_STATUS, account)


def status_classification(label: str | None, event: Event | None) -> str | None:
    if not label or event is None:
        return None
    key = normalise(label)
    return next((s.classification for s in event.setup.statuses if normalise(s.label) == key), None)


def session_status_tags(status: str | None, account: Account) -> frozenset[str]:
    """Session registration statuses are Certain's fixed list, tagged at the account level."""
    if not status:
        return frozenset()
    names = _assigned(account.assignments.session_registration_statuses, status)
    return allowed_tags(names, ObjectKind.SESSION_REGISTRATION_STATUS, account)


def event_status_tags(status: str | None, account: Account) -> frozenset[str]:
    if not status:
        return frozenset()
    names = _assigned(account.assignments.event_statuses, status)
    return allowed_tags(names, ObjectKind.EVENT_STATUS, account)


def custom_property_tags(name: str, event: Event | None, account: Account) -> frozenset[str]:
    if event is None:
        return frozenset()
    key = normalise(name)
    names = [t for p in event.setup.custom_properties if normalise(p.name) == key for t in p.tags]
    return allowed_tags(names, ObjectKind.CUSTOM_REGISTRATION_PROPERTY, account)


def set_custom_property_tags(
    registration: Registration, event: Event | None, account: Account
) -> dict[str, frozenset[str]]:
    """Tags of each custom property that is set (true) on the registration, by property name."""
    return {
        name: custom_property_tags(name, event, account)
        for name, value in registration.properties.custom.items()
        if value is True
    }


def standard_property_tags(registration: Registration) -> frozenset[str]:
    """The automatic tags of the standard properties that are set."""
    props = registration.properties
    flags = {
        StandardProperty.COMPLETE: props.complete,
        StandardProperty.BADGE_PRINTED: props.badge_printed,
        StandardProperty.ON_TO_DO_LIST: props.on_to_do_list,
        StandardProperty.INVOICE_GENERATED: props.invoice_generated,
        StandardProperty.TEST: registration.is_test,
    }
    return frozenset(prop.value for prop, is_set in flags.items() if is_set)


def attendee_type_tags(code: str | None, event: Event | None, account: Account) -> frozenset[str]:
    if not code or event is None:
        return frozenset()
    key = normalise(code)
    names = [t for a in event.setup.attendee_types if normalise(a.code) == key for t in a.tags]
    return allowed_tags(names, ObjectKind.ATTENDEE_TYPE, account)


def question_tags(question_code: str, event: Event | None, account: Account) -> frozenset[str]:
    if event is None:
        return frozenset()
    key = normalise(question_code)
    names = [
        t for q in event.setup.registration_questions if normalise(q.code) == key for t in q.tags
    ]
    return allowed_tags(names, ObjectKind.REGISTRATION_QUESTION, account)


def question_tag(question_code: str, event: Event | None, account: Account) -> str | None:
    """The question's tag; the guide asks for exactly one, so extra ones are ignored (first by
    name wins) rather than duplicating the answer."""
    tags = sorted(question_tags(question_code, event, account))
    return tags[0] if tags else None


def event_tags(event: Event | None, account: Account) -> frozenset[str]:
    if event is None:
        return frozenset()
    return allowed_tags(event.setup.event_tags, ObjectKind.EVENT, account)
