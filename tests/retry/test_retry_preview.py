"""Preview Mapping: the mapped payload field by field for recent archived changes or a pasted
one, with each field's sources, transforms and any data failure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from stream.certain.events import ChangeEvent
from stream.control.preview import preview_change, preview_recent
from stream.store import Store
from tests.retry.retry_helpers import account, event, registration_dict
from tests.support.changes import catalog, change_row
from tests.support.clock import FIXED


def _preview(data: dict[str, Any]) -> dict[str, Any]:
    """The nurture flow's preview of one pasted change, as the API returns it."""
    acct = account()
    flow = acct.flow("nurture")
    assert flow is not None
    return preview_change(ChangeEvent.model_validate(data), flow, acct, catalog(event())).to_dict()


def test_a_pasted_change_shows_each_field() -> None:
    preview = _preview(registration_dict("p1", first_name="  maria JOSE "))
    assert preview["outcome"]["status"] == "would_send"
    assert preview["payload"]["firstName"] == "Maria Jose"
    first = next(f for f in preview["fields"] if f["target"] == "firstName")
    assert first["sources"] == [
        {"path": "registration.profile.firstName", "value": "  maria JOSE "}
    ]
    assert first["transforms"] == ["trim", "proper"]
    assert first["required"] is True and first["failure"] is None
    company = next(f for f in preview["fields"] if f["target"] == "company")
    assert company["required"] is False and company["value"] == "Acme"


def test_a_required_field_left_empty_is_named() -> None:
    data = registration_dict("p2")
    data["registration"]["profile"]["email"] = "   "
    preview = _preview(data)
    assert preview["outcome"]["status"] == "data_failure"
    assert preview["outcome"]["field"] == "email"
    assert preview["payload"] is None
    email = next(f for f in preview["fields"] if f["target"] == "email")
    assert email["value"] == "" and "required field 'email' is empty" in email["failure"]


def test_a_change_the_flow_would_not_take_says_why() -> None:
    preview = _preview(registration_dict("p3", status="Attended"))
    assert preview["outcome"]["status"] == "not_activated"
    assert "no activate-for tag matched" in preview["outcome"]["reason"]
    assert preview["fields"], "the mapping is still shown"


async def test_recent_registrations_come_from_the_archive_newest_first(store: Store) -> None:
    rows = [change_row(event())]
    rows += [
        change_row(registration_dict(f"r{n}", occurred_at=FIXED + timedelta(minutes=n)))
        for n in range(8)
    ]
    rows.append(
        change_row(
            registration_dict(
                "cu",
                change_type="registration.create_update",
                occurred_at=FIXED + timedelta(hours=1),
            )
        )
    )
    await store.archive_changes(rows)
    acct = account()
    flow = acct.flow("nurture")
    assert flow is not None
    previews, problems = await preview_recent(store, flow, acct, catalog(event()), 3)
    assert problems == []
    assert [p.change_id for p in previews] == ["r7", "r6", "r5"]
    assert all(p.outcome["status"] == "would_send" for p in previews)
    assert previews[0].payload is not None and previews[0].payload["email"] == "r-r7@example.com"
