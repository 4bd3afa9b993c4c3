"""Tag resolution: account assignments + event setup + automatic standard-property tags."""

from __future__ import annotations

from typing import Any

import pytest

from config.models import ObjectKind
from stream.certain.events import Event
from stream.core import tags
from tests.support.accounts import example_account
from tests.support.changes import SUMMIT_SETUP, event_change, registration_change

ACCOUNT = example_account()


def summit(**setup_overrides: Any) -> Event:
    setup = {**SUMMIT_SETUP, **setup_overrides}
    event = event_change(setup=setup).event
    assert event is not None
    return event


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("New", {"registered"}),  # account-level default status
        ("Pre-Registered", {"registered"}),
        ("Attended", {"attended"}),
        ("Cancelled", {"cancelled"}),
        ("Need photo", {"registered"}),  # event-level custom status from the setup
        ("need  PHOTO ", {"registered"}),  # labels match ignoring case and spacing
        ("Checked In", {"attended"}),
        ("Waitlist Hold", set()),  # listed in the setup but untagged
        ("Invited", set()),  # not tagged anywhere
        ("Badge Collected", set()),  # tagged 'vip', which only applies to attendee types
        ("", set()),
        (None, set()),
    ],
)
def test_status_tags(label: str | None, expected: set[str]) -> None:
    assert tags.status_tags(label, summit(), ACCOUNT) == expected


def test_status_tags_without_the_event_use_account_assignments_only() -> None:
    assert tags.status_tags("New", None, ACCOUNT) == {"registered"}
    assert tags.status_tags("Need photo", None, ACCOUNT) == frozenset()


def test_account_and_event_assignments_combine() -> None:
    event = summit(statuses=[{"label": "New", "tags": ["attended"]}])
    assert tags.status_tags("New", event, ACCOUNT) == {"registered", "attended"}


def test_unknown_tag_names_resolve_to_nothing() -> None:
    event = summit(statuses=[{"label": "Custom", "tags": ["not-an-account-tag"]}])
    assert tags.status_tags("Custom", event, ACCOUNT) == frozenset()


def test_tag_names_from_the_setup_match_ignoring_case_and_return_account_spelling() -> None:
    event = summit(statuses=[{"label": "Custom", "tags": ["REGISTERED"]}])
    assert tags.status_tags("Custom", event, ACCOUNT) == {"registered"}


def test_status_classification() -> None:
    assert tags.status_classification("Need photo", summit()) == "Pending"
    assert tags.status_classification("Unknown", summit()) is None
    assert tags.status_classification("New", None) is None


def test_session_status_tags_allow_only_session_kind() -> None:
    assert tags.session_status_tags("Attended", ACCOUNT) == {"attended"}
    assert tags.session_status_tags("Registered", ACCOUNT) == frozenset()
    assert tags.session_status_tags(None, ACCOUNT) == frozenset()


def test_session_status_tag_of_the_wrong_kind_does_not_count() -> None:
    account = ACCOUNT.model_copy(deep=True)
    account.assignments.session_registration_statuses["No Show"] = ["cancelled"]
    assert tags.session_status_tags("No Show", account) == frozenset()


def test_event_status_tags() -> None:
    assert tags.event_status_tags("Active", ACCOUNT) == {"event_live"}
    assert tags.event_status_tags("Archived", ACCOUNT) == frozenset()


def test_custom_property_tags_count_only_for_custom_property_kind() -> None:
    account = ACCOUNT.model_copy(deep=True)
    # 'registered' applies to registration statuses only, so on a custom property it is ignored.
    assert tags.custom_property_tags("Speaker", summit(), account) == frozenset()
    account.tags[0].objects.append(ObjectKind.CUSTOM_REGISTRATION_PROPERTY)
    assert tags.custom_property_tags("Speaker", summit(), account) == {"registered"}
    assert tags.custom_property_tags("Press", summit(), account) == frozenset()


def test_tags_follow_a_replaced_or_grown_tag_list() -> None:
    """Tags are looked up through an index kept per account object: a tag list replaced or
    grown in place, and another account object, are each resolved against their own tags."""
    account = ACCOUNT.model_copy(deep=True)
    assert tags.attendee_type_tags("VIP", summit(), account) == {"vip"}
    account.tags = [t for t in account.tags if t.name != "vip"]
    assert tags.attendee_type_tags("VIP", summit(), account) == frozenset()
    vip = next(t for t in ACCOUNT.tags if t.name == "vip").model_copy(deep=True)
    account.tags.append(vip)
    assert tags.attendee_type_tags("VIP", summit(), account) == {"vip"}
    other = ACCOUNT.model_copy(deep=True)
    other.tags = [t for t in other.tags if t.name != "vip"]
    assert tags.attendee_type_tags("VIP", summit(), other) == frozenset()
    assert tags.attendee_type_tags("VIP", summit(), account) == {"vip"}


def test_set_custom_property_tags_only_for_properties_that_are_set() -> None:
    account = ACCOUNT.model_copy(deep=True)
    account.tags[0].objects.append(ObjectKind.CUSTOM_REGISTRATION_PROPERTY)
    change = registration_change(
        properties={"custom": {"Speaker": True, "Press": True, "Other": False}}
    )
    assert change.registration is not None
    assert tags.set_custom_property_tags(change.registration, summit(), account) == {
        "Speaker": {"registered"},
        "Press": frozenset(),
    }


def test_standard_property_tags_are_automatic() -> None:
    change = registration_change(
        is_test=True,
        properties={"complete": True, "badgePrinted": False, "invoiceGenerated": True},
    )
    assert change.registration is not None
    assert tags.standard_property_tags(change.registration) == {
        "Complete",
        "Invoice Generated",
        "Test",
    }
    plain = registration_change(properties={})
    assert plain.registration is not None
    assert tags.standard_property_tags(plain.registration) == frozenset()


def test_attendee_type_tags() -> None:
    assert tags.attendee_type_tags("VIP", summit(), ACCOUNT) == {"vip"}
    assert tags.attendee_type_tags("vip", summit(), ACCOUNT) == {"vip"}
    assert tags.attendee_type_tags("Attendee", summit(), ACCOUNT) == frozenset()
    # 'signal_marketo' applies to events only
    assert tags.attendee_type_tags("Exhibitor", summit(), ACCOUNT) == frozenset()
    assert tags.attendee_type_tags("VIP", None, ACCOUNT) == frozenset()


def test_question_tag() -> None:
    assert tags.question_tag("DIET", summit(), ACCOUNT) == "diet"
    assert tags.question_tag("TSHIRT", summit(), ACCOUNT) is None
    assert tags.question_tag("NOPE", summit(), ACCOUNT) is None
    wrong_kind = summit(registrationQuestions=[{"code": "DIET", "tags": ["vip"]}])
    assert tags.question_tag("DIET", wrong_kind, ACCOUNT) is None


def test_event_tags() -> None:
    assert tags.event_tags(summit(), ACCOUNT) == {"signal_marketo"}
    assert tags.event_tags(summit(eventTags=["signal_marketo", "vip", "x"]), ACCOUNT) == {
        "signal_marketo"
    }
    assert tags.event_tags(None, ACCOUNT) == frozenset()


def test_names_are_normalised_alike_and_long_values_are_not_kept() -> None:
    """Names and labels are cached; a registrant's long values (a filter compares them) are
    normalised as well but not kept, however many of them pass."""
    assert tags.normalise("  Attended   ON site ") == "attended on site"
    long_value = "  Ünïcode " + "x" * tags.CACHED_CHARS + "  VALUE  "
    assert tags.normalise(long_value) == "ünïcode " + "x" * tags.CACHED_CHARS + " value"
    before = tags._cached.cache_info().currsize
    for n in range(200):
        assert tags.normalise(f"{n} " + "y" * 10_000) == f"{n} " + "y" * 10_000
    assert tags._cached.cache_info().currsize == before
    tags.normalise("a name seen for the first time")
    assert tags._cached.cache_info().currsize == before + 1
