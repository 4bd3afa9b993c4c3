"""The event catalog: what Signal knows about each event, from `event.create_update` changes.

Registration changes name their event but do not carry it, so its name, type, test mode,
questions and setup (the event-level tag assignments) come from here. The catalog is a value:
`apply` returns a new catalog, so a worker can swap the one it uses atomically, and it
serialises to JSON so control can publish it to workers.

Changes may arrive out of order; an event change older than the one already held is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from config.models import Source
from stream.certain.events import ChangeEvent, Event


class CatalogEntry(BaseModel):
    """One event as last seen, with the change that told us."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        frozen=True,
        extra="forbid",
    )

    event: Event
    updated_at: AwareDatetime
    change_id: str


class EventCatalog:
    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[str, CatalogEntry] | None = None) -> None:
        self._entries: Mapping[str, CatalogEntry] = MappingProxyType(dict(entries or {}))

    # --- reading -------------------------------------------------------------------------------

    def get(self, event_code: str | None) -> Event | None:
        if event_code is None:
            return None
        entry = self._entries.get(event_code)
        return entry.event if entry is not None else None

    def entry(self, event_code: str) -> CatalogEntry | None:
        return self._entries.get(event_code)

    def __contains__(self, event_code: object) -> bool:
        return event_code in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventCatalog) and dict(self._entries) == dict(other._entries)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EventCatalog({sorted(self._entries)})"

    # --- updating ------------------------------------------------------------------------------

    def apply(self, change: ChangeEvent) -> EventCatalog:
        """The catalog after `change`; unchanged for other change types and for stale changes."""
        if change.type is not Source.EVENT_CREATE_UPDATE or change.event is None:
            return self
        current = self._entries.get(change.event_code)
        if current is not None and current.updated_at > change.occurred_at:
            return self
        return self.with_event(
            change.event_code, change.event, change.occurred_at, change.change_id
        )

    def apply_all(self, changes: Iterable[ChangeEvent]) -> EventCatalog:
        catalog = self
        for change in changes:
            catalog = catalog.apply(change)
        return catalog

    def with_event(
        self, event_code: str, event: Event, updated_at: datetime, change_id: str = ""
    ) -> EventCatalog:
        """The catalog with this event set, regardless of what was held before."""
        if event.event_code is None:
            event = event.model_copy(update={"event_code": event_code})
        entries = dict(self._entries)
        entries[event_code] = CatalogEntry(event=event, updated_at=updated_at, change_id=change_id)
        return EventCatalog(entries)

    def without(self, event_code: str) -> EventCatalog:
        entries = dict(self._entries)
        entries.pop(event_code, None)
        return EventCatalog(entries)

    # --- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": {
                code: entry.model_dump(mode="json", by_alias=True)
                for code, entry in sorted(self._entries.items())
            }
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventCatalog:
        events = data.get("events", {})
        return cls({code: CatalogEntry.model_validate(entry) for code, entry in events.items()})

    @classmethod
    def from_json(cls, text: str | bytes) -> EventCatalog:
        return cls.from_dict(json.loads(text))


EMPTY_CATALOG = EventCatalog()
