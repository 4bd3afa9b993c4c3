"""The pure diff of session registrations: `registrationAgendas` records as Certain serves them,
their last-seen state, the registration and the listed session in; a change or a rejection out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from config.models import Source
from stream.certain.poll_diff import LastSeen, RecordRejection
from stream.certain.session_diff import (
    SessionDiff,
    SessionRecord,
    diff_session_registration,
    read_session_registration,
)

T0 = "2026-11-28T12:00:00"
T1 = "2026-11-28T12:00:05"
REGISTRATION = {
    "registrationCode": "R7QX2M9K1",
    "attendeeTypeCode": "VIP",
    "registrationStatusLabel": "New",
    "profile": {"firstName": "Ana", "lastName": "Ruiz", "email": "ana@example.com"},
}
SESSION = {
    "sessionCode": "KEYNOTE",
    "name": "Opening keynote",
    "trackName": "Main",
    "instanceId": 7,
}


def agenda(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "registrationCode": "R7QX2M9K1",
        "eventCode": "SUMMIT26",
        "sessionCode": "KEYNOTE",
        "instanceId": 7,
        "regSessionStatus": "Registered",
        "startDate": "2026-11-28T09:00:00",
        "endDate": "2026-11-28T10:00:00",
        "dateCreated": T0,
        "dateModified": T0,
    }
    base.update(overrides)
    return base


def read(raw: Any) -> SessionRecord:
    record = read_session_registration(raw)
    assert isinstance(record, SessionRecord), record
    return record


def diff(
    raw: dict[str, Any],
    last: LastSeen | None = None,
    registration: dict[str, Any] | None = REGISTRATION,
    session: dict[str, Any] | None = SESSION,
) -> SessionDiff:
    result = diff_session_registration("ACME", "SUMMIT26", read(raw), last, registration, session)
    assert isinstance(result, SessionDiff), result
    return result


def test_a_new_session_registration_is_a_status_change_without_a_previous_status() -> None:
    [change] = diff(agenda()).changes
    assert change.type is Source.SESSION_REGISTRATION_STATUS_CHANGE
    assert change.registration_code == "R7QX2M9K1" and change.event_code == "SUMMIT26"
    assert change.occurred_at == datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert change.session is not None
    body = change.to_json_dict()
    assert body["session"]["sessionCode"] == "KEYNOTE"
    assert body["session"]["sessionName"] == "Opening keynote"
    assert body["session"]["regSessionStatus"] == "Registered"
    assert body["session"]["previousRegSessionStatus"] is None
    assert body["session"]["instanceId"] == 7 and body["session"]["trackName"] == "Main"
    assert body["session"]["startDate"] == "2026-11-28T09:00:00"
    assert body["registration"]["profile"]["email"] == "ana@example.com"
    assert body["registration"]["attendeeTypeCode"] == "VIP"


def test_a_status_move_carries_the_previous_status() -> None:
    first = read(agenda()).seen
    [change] = diff(agenda(regSessionStatus="Attended", dateModified=T1), first).changes
    body = change.to_json_dict()["session"]
    assert (body["regSessionStatus"], body["previousRegSessionStatus"]) == (
        "Attended",
        "Registered",
    )


def test_the_same_version_again_or_an_older_one_emits_nothing() -> None:
    first = read(agenda()).seen
    assert diff(agenda(), first).changes == []
    newer = read(agenda(regSessionStatus="Attended", dateModified=T1)).seen
    assert diff(agenda(), newer).changes == []


def test_a_moved_session_time_with_the_same_status_emits_nothing_but_is_a_new_version() -> None:
    first = read(agenda()).seen
    moved = read(agenda(startDate="2026-11-28T11:00:00", dateModified=T1))
    assert moved.is_new_version(first)
    assert diff(agenda(startDate="2026-11-28T11:00:00", dateModified=T1), first).changes == []


def test_change_ids_are_deterministic_and_tell_versions_and_sessions_apart() -> None:
    one = diff(agenda()).changes[0].change_id
    assert diff(agenda()).changes[0].change_id == one
    other_session = diff(agenda(sessionCode="WORKSHOP")).changes[0].change_id
    assert other_session != one
    later = diff(agenda(regSessionStatus="Attended", dateModified=T1), read(agenda()).seen)
    assert later.changes[0].change_id not in (one, other_session)
    # Two versions within one second: the second's id carries its digest.
    same_second = diff(agenda(regSessionStatus="Cancelled"), read(agenda()).seen)
    assert same_second.changes[0].change_id != one


def test_the_change_id_does_not_depend_on_the_registration_it_carries() -> None:
    renamed = dict(REGISTRATION, profile={"email": "ana.ruiz@example.com"})
    assert diff(agenda()).changes[0].change_id == diff(agenda(), None, renamed).changes[0].change_id


def test_an_unlisted_session_is_carried_by_its_code() -> None:
    [change] = diff(agenda(), session=None).changes
    body = change.to_json_dict()["session"]
    assert body["sessionName"] is None and body["sessionCode"] == "KEYNOTE"


def test_the_older_agenda_item_names_the_session_activity_code() -> None:
    raw = agenda()
    raw["activityCode"] = raw.pop("sessionCode")
    assert read(raw).session_code == "KEYNOTE"


def test_a_session_registration_of_an_unknown_registration_is_rejected() -> None:
    result = diff_session_registration("ACME", "SUMMIT26", read(agenda()), None, None, SESSION)
    assert isinstance(result, RecordRejection)
    assert result.field == "registrationCode" and result.code == "R7QX2M9K1"
    assert (
        result.reason
        == "registrationCode: expected a registration of event SUMMIT26, got 'R7QX2M9K1'"
    )


def rejected(raw: Any) -> RecordRejection:
    result = read_session_registration(raw)
    assert isinstance(result, RecordRejection), result
    return result


def test_malformed_records_are_rejected_naming_field_value_and_expectation() -> None:
    assert rejected("nope").reason == "registrationAgenda: expected a JSON object, got 'nope'"
    no_code = agenda()
    del no_code["registrationCode"]
    assert rejected(no_code).reason == (
        "registrationCode: expected a non-blank registration code, got None"
    )
    no_session = agenda()
    del no_session["sessionCode"]
    assert rejected(no_session).field == "sessionCode"
    bad_stamp = rejected(agenda(dateModified="31/13/2026 25:61"))
    assert bad_stamp.field == "dateModified" and "31/13/2026 25:61" in bad_stamp.reason
    bad_status = rejected(agenda(regSessionStatus=3))
    assert bad_status.reason == (
        "regSessionStatus: expected a session registration status (text), got 3"
    )
    assert bad_status.code == "R7QX2M9K1"


def test_a_registration_that_breaks_the_change_contract_is_rejected_with_its_path() -> None:
    broken = dict(REGISTRATION, profile="<unavailable>")
    result = diff_session_registration("ACME", "SUMMIT26", read(agenda()), None, broken, SESSION)
    assert isinstance(result, RecordRejection)
    assert result.field == "profile"


def test_both_timestamp_formats_are_read() -> None:
    assert read(agenda(dateModified="2026/11/28 12:00:00")).modified == read(agenda()).modified
