"""The change-event models: the DESIGN 4.2 contract, camelCase in and out, extras kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from config.models import Source
from stream.certain.events import ChangeEvent
from tests.certain.samples import DESIGN_EXAMPLE, event_change, example, session_change


def test_design_example_parses() -> None:
    change = ChangeEvent.model_validate(DESIGN_EXAMPLE)
    assert change.type is Source.REGISTRATION_STATUS_CHANGE
    assert change.occurred_at == datetime(2026, 11, 28, 12, tzinfo=UTC)
    registration = change.registration
    assert registration is not None
    assert registration.registration_status_label == "Attended"
    assert registration.properties.badge_printed is True
    assert registration.properties.custom == {}
    assert registration.profile.address is not None
    assert registration.profile.address.postal_code == "98101"
    assert registration.registration_questions[0].answers == ["Vegetarian"]
    assert change.registration_code == "R7QX2M9K1"
    assert change.is_registration_change


def test_json_out_is_camel_case_and_round_trips() -> None:
    change = ChangeEvent.model_validate(DESIGN_EXAMPLE)
    data = change.to_json_dict()
    assert data["changeId"] == DESIGN_EXAMPLE["changeId"]
    assert data["registration"]["profile"]["address"]["postalCode"] == "98101"
    assert "change_id" not in json.dumps(data) and "postal_code" not in json.dumps(data)
    assert ChangeEvent.model_validate(data) == change
    assert ChangeEvent.model_validate_json(change.model_dump_json()) == change


def test_unknown_fields_are_kept_everywhere() -> None:
    data = example(source="certain-v2")
    data["registration"]["pkRegId"] = 123
    data["registration"]["profile"]["address"]["line3"] = "Suite 5"
    data["registration"]["profile"]["mobile"] = "+1 555"
    data["registration"]["properties"]["vipLounge"] = True
    out = ChangeEvent.model_validate(data).to_json_dict()
    assert out["source"] == "certain-v2"
    assert out["registration"]["pkRegId"] == 123
    assert out["registration"]["profile"]["address"]["line3"] == "Suite 5"
    assert out["registration"]["profile"]["mobile"] == "+1 555"
    assert out["registration"]["properties"]["vipLounge"] is True


def test_snake_case_keys_are_not_fields() -> None:
    data = example()
    del data["changeId"]
    data["change_id"] = "x"
    with pytest.raises(ValueError, match="changeId"):
        ChangeEvent.model_validate(data)


def test_custom_properties_are_a_name_to_bool_map() -> None:
    data = example()
    data["registration"]["properties"]["custom"] = {"Speaker": True, "Press": False}
    change = ChangeEvent.model_validate(data)
    assert change.registration is not None
    assert change.registration.properties.custom == {"Speaker": True, "Press": False}


def test_defaults_for_a_minimal_registration() -> None:
    change = ChangeEvent.model_validate(
        example(
            type="registration.create_update",
            registration={"registrationCode": "R1"},
        )
    )
    registration = change.registration
    assert registration is not None
    assert registration.is_test is False and registration.is_active is True
    assert registration.properties.complete is False
    assert registration.profile.email is None
    assert registration.registration_questions == []


def test_session_and_event_changes() -> None:
    session = ChangeEvent.model_validate(session_change())
    assert session.session is not None and session.session.reg_session_status == "Attended"
    event = ChangeEvent.model_validate(event_change())
    assert event.event is not None
    assert event.event.setup.statuses[0].label == "Need photo"
    assert event.event.event_questions == {"marketoCampaignId": "2001"}
    assert not event.is_registration_change


def test_offsets_are_kept() -> None:
    change = ChangeEvent.model_validate(example(occurredAt="2026-11-28T13:00:00+01:00"))
    assert change.occurred_at.utcoffset() == timedelta(hours=1)
    assert change.occurred_at == datetime(2026, 11, 28, 12, tzinfo=UTC)


def test_models_are_frozen() -> None:
    change = ChangeEvent.model_validate(DESIGN_EXAMPLE)
    with pytest.raises(ValueError, match="frozen"):
        change.change_id = "other"  # type: ignore[misc]  # frozen model: the assignment must fail
