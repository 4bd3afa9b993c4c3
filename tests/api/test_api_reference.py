"""Tags, the event catalog and the change-event schema."""

from __future__ import annotations

from typing import Any

from stream.certain.parsing import parse_changes
from tests.api.api_harness import Api
from tests.support.changes import event_json

VIP_SETUP: dict[str, Any] = {"attendeeTypes": [{"code": "VIP", "tags": ["vip"]}]}


async def test_tags_with_assignments(api: Api) -> None:
    body = await (await api.get("/api/v1/tags")).json()
    tags = {t["name"]: t for t in body["tags"]}
    assert tags["attended"]["assigned_to"]["registration_statuses"] == ["Attended"]
    assert tags["attended"]["assigned_to"]["session_registration_statuses"] == ["Attended"]
    assert tags["vip"]["assigned_to"] == {
        "registration_statuses": [],
        "session_registration_statuses": [],
        "event_statuses": [],
    }
    assert body["assignments"]["event_statuses"] == {"Active": ["event_live"]}


async def test_catalog_events(api: Api) -> None:
    assert (await (await api.get("/api/v1/catalog/events")).json()) == {"events": []}
    accepted, _ = parse_changes(
        [
            event_json(change_id="e-1", name="Summit 2026", setup=VIP_SETUP),
            event_json("EXPO27", change_id="e-2", name="Summit 2026", setup=VIP_SETUP),
        ]
    )
    assert api.config.apply_changes(accepted) is True
    assert api.config.apply_changes(accepted) is False
    events = (await (await api.get("/api/v1/catalog/events")).json())["events"]
    assert [e["eventCode"] for e in events] == ["EXPO27", "SUMMIT26"]
    assert events[1]["eventName"] == "Summit 2026"
    assert events[1]["changeId"] == "e-1"
    one = await (await api.get("/api/v1/catalog/events/SUMMIT26")).json()
    assert one["event"]["setup"]["attendeeTypes"] == [{"code": "VIP", "tags": ["vip"]}]
    missing = await api.get("/api/v1/catalog/events/NOPE")
    assert missing.status == 404


async def test_change_schema(api: Api) -> None:
    schema = await (await api.get("/api/v1/schema/change")).json()
    assert schema["title"] == "Signal change event"
    assert "changeId" in schema["properties"]
