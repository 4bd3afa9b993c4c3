"""The pure diff of the Certain source: records as Certain serves them (plain dicts) and their
last-seen state in, change events or a rejection out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from config.models import Source
from stream.certain.poll_diff import (
    LastSeen,
    RecordDiff,
    RecordRejection,
    change_id,
    diff_event,
    diff_registration,
    format_timestamp,
    parse_timestamp,
)

T0 = "2026-11-28T12:00:00"
T1 = "2026-11-28T12:00:05"


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pkRegId": 100001,
        "registrationCode": "R7QX2M9K1",
        "eventCode": "SUMMIT26",
        "attendeeTypeCode": "VIP",
        "registrationStatusLabel": "New",
        "isActive": True,
        "isTest": False,
        "profile": {"firstName": "Ana", "lastName": "Ruiz", "email": "ana@example.com"},
        "dateCreated": T0,
        "dateModified": T0,
        "statusModified": T0,
    }
    base.update(overrides)
    return base


def diff(rec: Any, last: LastSeen | None = None) -> RecordDiff:
    result = diff_registration("ACME", "SUMMIT26", rec, last)
    assert isinstance(result, RecordDiff), result
    return result


def rejected(rec: Any, last: LastSeen | None = None) -> RecordRejection:
    result = diff_registration("ACME", "SUMMIT26", rec, last)
    assert isinstance(result, RecordRejection), result
    return result


def test_a_new_registration_is_one_create_update() -> None:
    result = diff(record())
    [change] = result.changes
    assert change.type is Source.REGISTRATION_CREATE_UPDATE
    assert change.account_code == "ACME" and change.event_code == "SUMMIT26"
    assert change.registration_code == "R7QX2M9K1"
    assert change.occurred_at == datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert change.registration is not None and change.registration.profile.email == (
        "ana@example.com"
    )
    assert "eventCode" not in change.to_json_dict()["registration"]
    assert result.seen.status == "New"
    assert result.seen.date_modified == datetime(2026, 11, 28, 12, tzinfo=UTC)


def test_the_same_version_again_emits_nothing() -> None:
    first = diff(record())
    again = diff(record(), first.seen)
    assert again.unchanged and again.seen == first.seen


def test_an_older_version_emits_nothing_and_keeps_the_newer_state() -> None:
    newer = diff(record(dateModified=T1, registrationStatusLabel="Attended")).seen
    older = diff(record(), newer)
    assert older.unchanged and older.seen == newer


def test_a_status_change_carries_the_previous_status() -> None:
    first = diff(record())
    moved = diff(record(registrationStatusLabel="Attended", dateModified=T1), first.seen)
    [change] = moved.changes
    assert change.type is Source.REGISTRATION_STATUS_CHANGE
    assert change.registration is not None
    assert change.registration.registration_status_label == "Attended"
    assert change.registration.previous_status_label == "New"
    assert moved.seen.status == "Attended"


def test_a_regression_and_back_are_two_status_changes() -> None:
    seen = diff(record(registrationStatusLabel="Attended")).seen
    back = diff(record(registrationStatusLabel="New", dateModified=T1), seen)
    forth = diff(
        record(registrationStatusLabel="Attended", dateModified="2026-11-28T12:00:09"), back.seen
    )
    assert [c.registration.previous_status_label for c in back.changes if c.registration] == [
        "Attended"
    ]
    assert [c.registration.previous_status_label for c in forth.changes if c.registration] == [
        "New"
    ]
    assert back.changes[0].change_id != forth.changes[0].change_id


def test_other_field_changes_are_a_create_update() -> None:
    first = diff(record())
    edited = record(dateModified=T1, profile={"firstName": "Ana", "email": "ana@new.example"})
    [change] = diff(edited, first.seen).changes
    assert change.type is Source.REGISTRATION_CREATE_UPDATE


def test_status_and_fields_changed_together_emit_both() -> None:
    first = diff(record())
    both = record(dateModified=T1, registrationStatusLabel="Attended", attendeeTypeCode="Speaker")
    types = [c.type for c in diff(both, first.seen).changes]
    assert types == [Source.REGISTRATION_STATUS_CHANGE, Source.REGISTRATION_CREATE_UPDATE]


def test_a_soft_delete_is_a_create_update_with_is_active_false() -> None:
    first = diff(record())
    [change] = diff(record(dateModified=T1, isActive=False), first.seen).changes
    assert change.type is Source.REGISTRATION_CREATE_UPDATE
    assert change.registration is not None and change.registration.is_active is False


def test_only_the_stamps_moved_emits_nothing_but_moves_the_state() -> None:
    first = diff(record())
    touched = diff(record(dateModified=T1, statusModified=T1), first.seen)
    assert touched.unchanged
    assert touched.seen.date_modified == datetime(2026, 11, 28, 12, 0, 5, tzinfo=UTC)


def test_change_ids_are_deterministic_and_distinct_per_type_and_version() -> None:
    a = diff(record()).changes[0].change_id
    assert a == diff(record()).changes[0].change_id
    assert a != diff(record(dateModified=T1)).changes[0].change_id
    moment = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert a == change_id(
        "ACME", "SUMMIT26", "R7QX2M9K1", moment, Source.REGISTRATION_CREATE_UPDATE
    )
    assert a != change_id(
        "ACME", "SUMMIT26", "R7QX2M9K1", moment, Source.REGISTRATION_STATUS_CHANGE
    )
    assert a != change_id(
        "OTHER", "SUMMIT26", "R7QX2M9K1", moment, Source.REGISTRATION_CREATE_UPDATE
    )


def test_a_second_version_within_the_same_second_gets_ids_of_its_own() -> None:
    first = diff(record())
    same_second = diff(record(registrationStatusLabel="Attended"), first.seen)
    [change] = same_second.changes
    plain = change_id(
        "ACME",
        "SUMMIT26",
        "R7QX2M9K1",
        datetime(2026, 11, 28, 12, tzinfo=UTC),
        Source.REGISTRATION_STATUS_CHANGE,
    )
    assert change.change_id != plain
    assert diff(record(registrationStatusLabel="Attended"), first.seen).changes[0].change_id == (
        change.change_id
    )


@pytest.mark.parametrize(
    "stamp", ["2026-11-28T12:00:00", "2026/11/28 12:00:00", "2026-11-28T12:00:00Z"]
)
def test_both_timestamp_formats_are_read_as_utc(stamp: str) -> None:
    assert parse_timestamp(stamp) == datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert diff(record(dateModified=stamp)).seen.date_modified == datetime(
        2026, 11, 28, 12, tzinfo=UTC
    )


def test_the_two_formats_name_one_version() -> None:
    first = diff(record(dateModified="2026/11/28 12:00:00"))
    assert diff(record(dateModified="2026-11-28T12:00:00"), first.seen).unchanged


@pytest.mark.parametrize("stamp", [None, 5, "", "31/13/2026 25:61", "2026-11-28T12:00:00+25:00"])
def test_unreadable_timestamps(stamp: Any) -> None:
    assert parse_timestamp(stamp) is None


def test_format_timestamp_is_what_certain_filters_take() -> None:
    assert format_timestamp(datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC)) == "2026-01-02T03:04:05"


@pytest.mark.parametrize(
    ("rec", "field", "expected", "value"),
    [
        ("not a record", "registration", "a JSON object", "not a record"),
        (record(registrationCode=None), "registrationCode", "a non-blank registration code", None),
        (record(registrationCode="  "), "registrationCode", "a non-blank registration code", "  "),
        (
            record(dateModified="31/13/2026 25:61"),
            "dateModified",
            "a timestamp yyyy-MM-ddTHH:mm:ss or yyyy/MM/dd HH:mm:ss (UTC)",
            "31/13/2026 25:61",
        ),
        (record(registrationStatusLabel=3), "registrationStatusLabel", "a status label", 3),
        (
            record(profile="<profile unavailable>"),
            "profile",
            "a JSON object",
            "<profile unavailable>",
        ),
        (record(isActive="nope"), "isActive", "true or false", "nope"),
    ],
)
def test_a_malformed_record_is_rejected_with_field_value_and_expectation(
    rec: Any, field: str, expected: str, value: Any
) -> None:
    rejection = rejected(rec)
    assert rejection.field == field
    assert rejection.expected.startswith(expected)
    assert rejection.value == value
    assert rejection.reason.startswith(f"{field}: expected {expected}")
    assert rejection.raw == rec


def test_a_malformed_record_keeps_its_code_when_it_has_one() -> None:
    assert rejected(record(dateModified="soon")).code == "R7QX2M9K1"


# --- events --------------------------------------------------------------------------------------


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventCode": "SUMMIT26",
        "eventName": "Summit 2026",
        "eventStatus": "Active",
        "isActive": True,
        "isTest": False,
        "dateModified": T0,
        "eventQuestions": {"marketoCampaignId": 1001},
        "setup": {
            "statuses": [{"label": "VIP Confirmed", "classification": "Accepted", "tags": []}],
            "eventTags": ["signal_marketo"],
        },
    }
    base.update(overrides)
    return base


def test_a_new_event_is_an_event_create_update_with_its_setup() -> None:
    result = diff_event("ACME", event(), None)
    assert isinstance(result, RecordDiff)
    [change] = result.changes
    assert change.type is Source.EVENT_CREATE_UPDATE
    assert change.event is not None and change.event.setup.event_tags == ["signal_marketo"]
    assert change.event.event_questions == {"marketoCampaignId": 1001}


def test_an_event_setup_change_is_emitted_and_a_re_read_is_not() -> None:
    first = diff_event("ACME", event(), None)
    assert isinstance(first, RecordDiff)
    again = diff_event("ACME", event(), first.seen)
    assert isinstance(again, RecordDiff) and again.unchanged
    setup: dict[str, list[str]] = {"statuses": [], "eventTags": []}
    changed = diff_event("ACME", event(setup=setup, dateModified=T1), first.seen)
    assert isinstance(changed, RecordDiff)
    assert [c.type for c in changed.changes] == [Source.EVENT_CREATE_UPDATE]


@pytest.mark.parametrize(
    ("rec", "field"),
    [
        (event(eventCode=""), "eventCode"),
        (event(dateModified="never"), "dateModified"),
        (event(isTest="yes"), "isTest"),
        (event(setup={"statuses": "none"}), "setup.statuses"),
        ([], "event"),
    ],
)
def test_a_malformed_event_is_rejected(rec: Any, field: str) -> None:
    result = diff_event("ACME", rec, None)
    assert isinstance(result, RecordRejection)
    assert result.field == field


def test_an_events_certain_tags_become_its_setup_event_tags() -> None:
    raw = {
        "eventCode": "SUMMIT26",
        "eventName": "Acme Summit",
        "dateModified": T0,
        "tags": {"tag": [{"name": "signal_marketo"}, {"name": "emea"}]},
        "setup": {"statuses": []},
    }
    result = diff_event("ACME", raw, None)
    assert isinstance(result, RecordDiff), result
    [change] = result.changes
    assert change.event is not None
    assert change.event.setup.event_tags == ["emea", "signal_marketo"]
    # A setup that names its event tags itself is left as it is.
    own = dict(raw, setup={"eventTags": ["own"]})
    result = diff_event("ACME", own, None)
    assert isinstance(result, RecordDiff)
    assert result.changes[0].event is not None
    assert result.changes[0].event.setup.event_tags == ["own"]
