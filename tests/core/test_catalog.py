from __future__ import annotations

from stream.core.catalog import EventCatalog
from tests.support.changes import event_change, registration_change


def test_event_change_enters_the_catalog() -> None:
    catalog = EventCatalog().apply(event_change(event_type="Webinar"))
    event = catalog.get("SUMMIT26")
    assert event is not None
    assert event.event_type == "Webinar"
    assert "SUMMIT26" in catalog
    assert len(catalog) == 1


def test_apply_returns_a_new_catalog_and_leaves_the_old_one_alone() -> None:
    empty = EventCatalog()
    updated = empty.apply(event_change())
    assert len(empty) == 0
    assert len(updated) == 1


def test_newer_change_replaces_and_stale_change_is_ignored() -> None:
    newer = event_change(change_id="e2", occurred_at="2026-11-02T00:00:00Z", status="Inactive")
    older = event_change(change_id="e1", occurred_at="2026-11-01T00:00:00Z", status="Active")
    catalog = EventCatalog().apply(newer).apply(older)
    event = catalog.get("SUMMIT26")
    assert event is not None and event.event_status == "Inactive"
    entry = catalog.entry("SUMMIT26")
    assert entry is not None and entry.change_id == "e2"


def test_registration_changes_do_not_touch_the_catalog() -> None:
    catalog = EventCatalog().apply(event_change())
    assert catalog.apply(registration_change()) is catalog


def test_unknown_event_is_none() -> None:
    assert EventCatalog().get("NOPE") is None
    assert EventCatalog().get(None) is None


def test_json_round_trip_keeps_everything_including_unknown_fields() -> None:
    change = event_change()
    data = change.to_json_dict()
    data["event"]["venueName"] = "Moscone"
    from stream.certain.events import ChangeEvent

    catalog = (
        EventCatalog()
        .apply(ChangeEvent.model_validate(data))
        .apply(event_change("OTHER", is_test=True))
    )
    text = catalog.to_json()
    assert '"eventQuestions"' in text and '"updatedAt"' in text and "Moscone" in text
    restored = EventCatalog.from_json(text)
    assert restored == catalog
    other = restored.get("OTHER")
    assert other is not None and other.is_test is True
    assert list(restored) == ["OTHER", "SUMMIT26"]


def test_without_removes_an_event() -> None:
    catalog = EventCatalog().apply(event_change())
    assert "SUMMIT26" not in catalog.without("SUMMIT26")
