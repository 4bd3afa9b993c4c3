"""The view of one change that filters, mappings and tokens read by dotted path (DESIGN 4.5).

Paths are camelCase JSON paths into the change (`registration.profile.email`,
`session.sessionName`, `occurredAt`), with three additions:

- `event.*` reads the event: the change's own `event` for event changes, the catalog's copy of
  the named event for registration changes (which carry no event object); `event.tags` is the
  event's resolved tag list.
- `answers.<tag>` is the answer text of the registration question carrying that tag; several
  answers (or several questions with the tag) are joined with `ANSWER_SEPARATOR`.
- `eventQuestions.<code>` is the event's value for that event question.

A path that leads nowhere reads as empty (None), never as an error: whether a path exists is a
configuration concern, checked when the account is loaded.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field
from typing import Any

from config.models import Account, Source
from stream.certain.events import ChangeEvent, Event
from stream.core import tags
from stream.core.catalog import EventCatalog

ANSWER_SEPARATOR = "; "
ANSWERS_PREFIX = "answers."
EVENT_QUESTIONS_PREFIX = "eventQuestions."


@dataclass(frozen=True)
class ChangeContext:
    change: ChangeEvent
    account: Account
    event: Event | None
    data: dict[str, Any] = field(repr=False)
    event_data: dict[str, Any] | None = field(repr=False)
    answers: dict[str, list[str]] = field(repr=False)
    attendee_type_tags: frozenset[str]

    def lookup(self, path: str) -> Any:
        """The raw JSON value at `path` (a list for list-valued fields), or None."""
        if not isinstance(path, str) or not path:
            return None
        if path.startswith(ANSWERS_PREFIX):
            return self._answer(path[len(ANSWERS_PREFIX) :])
        if path.startswith(EVENT_QUESTIONS_PREFIX):
            return self._event_question(path[len(EVENT_QUESTIONS_PREFIX) :])
        head, _, rest = path.partition(".")
        if head == "event":
            return _walk(self.event_data, rest) if rest else self.event_data
        return _walk(self.data, path)

    def text(self, path: str) -> str:
        return to_text(self.lookup(path))

    def _answer(self, tag: str) -> str | None:
        answers = self.answers.get(tag)
        if answers is None:
            key = tags.normalise(tag)
            answers = next((v for k, v in self.answers.items() if tags.normalise(k) == key), None)
        if not answers:
            return None
        return ANSWER_SEPARATOR.join(a for a in answers if a.strip())

    def _event_question(self, code: str) -> Any:
        if self.event is None:
            return None
        questions = self.event.event_questions
        if code in questions:
            return questions[code]
        key = tags.normalise(code)
        return next((v for k, v in questions.items() if tags.normalise(k) == key), None)


def resolve_event(change: ChangeEvent, catalog: EventCatalog) -> Event | None:
    """The event a change belongs to: its own for event changes, else the catalog's."""
    if change.type is Source.EVENT_CREATE_UPDATE and change.event is not None:
        event = change.event
        if event.event_code is None:
            event = event.model_copy(update={"event_code": change.event_code})
        return event
    return catalog.get(change.event_code)


EVENT_DUMPS_KEPT = 256
"""Event JSON dumps `event_data` keeps: the events changes are routed against at once."""

_event_dumps: dict[int, tuple[weakref.ref[Event], dict[str, Any]]] = {}


def event_data(event: Event, account: Account) -> dict[str, Any]:
    """The event as `event.*` paths read it: its JSON with `tags` resolved for the account.

    The JSON is dumped once per event object rather than per change: every change of an event
    reads the same catalog object (frozen), and dumping it was a tenth of evaluating a change.
    Each change gets its own top-level copy, with the tags resolved afresh.
    """
    kept = _event_dumps.get(id(event))
    if kept is not None and kept[0]() is event:
        dumped = kept[1]
    else:
        dumped = event.model_dump(mode="json", by_alias=True)
        if len(_event_dumps) >= EVENT_DUMPS_KEPT:
            del _event_dumps[next(iter(_event_dumps))]
        _event_dumps[id(event)] = (weakref.ref(event), dumped)
    return {**dumped, "tags": sorted(tags.event_tags(event, account))}


def build_context(change: ChangeEvent, account: Account, catalog: EventCatalog) -> ChangeContext:
    event = resolve_event(change, catalog)
    event_view = event_data(event, account) if event is not None else None
    answers: dict[str, list[str]] = {}
    attendee_tags: frozenset[str] = frozenset()
    registration = change.registration
    if registration is not None:
        for question in registration.registration_questions:
            tag = tags.question_tag(question.question_code, event, account)
            if tag is not None:
                answers.setdefault(tag, []).extend(question.answers)
        attendee_tags = tags.attendee_type_tags(registration.attendee_type_code, event, account)
    return ChangeContext(
        change=change,
        account=account,
        event=event,
        data=change.to_json_dict(),
        event_data=event_view,
        answers=answers,
        attendee_type_tags=attendee_tags,
    )


def _walk(node: Any, path: str) -> Any:
    for key in path.split("."):
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and key.isdigit():
            index = int(key)
            node = node[index] if index < len(node) else None
        else:
            return None
    return node


def to_text(value: Any) -> str:
    """How a JSON value reads as a Marketo field value."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return ANSWER_SEPARATOR.join(t for t in (to_text(v) for v in value) if t.strip())
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)
