"""Live/test classification, activate-for tags and filter rules (DESIGN 5)."""

from __future__ import annotations

from typing import Any

import pytest

from config.models import (
    ActivateFor,
    AttendeeTypeFilter,
    FieldFilter,
    FilterOp,
    Flow,
    Mode,
    ObjectKind,
    Source,
    StandardProperty,
)
from stream.core import matching
from stream.core.context import build_context
from stream.core.results import FilteredOut
from tests.support.accounts import example_account
from tests.support.changes import catalog, event_change, registration_change

ACCOUNT = example_account()

# --- live / test -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registration_test", "event_test", "is_test"),
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_registration_is_test_when_it_or_its_event_is(
    registration_test: bool, event_test: bool, is_test: bool
) -> None:
    change = registration_change(is_test=registration_test)
    event = event_change(is_test=event_test).event
    assert matching.is_test(change, event) is is_test
    live = Flow(id="l", name="l", mode=Mode.LIVE)
    test = Flow(id="t", name="t", mode=Mode.TEST)
    assert matching.mode_accepts(live, is_test) is (not is_test)
    assert matching.mode_accepts(test, is_test) is is_test


def test_test_reasons_name_the_cause() -> None:
    change = registration_change(is_test=True)
    event = event_change(is_test=True).event
    reasons = matching.reasons_for_test_mode(change, event)
    assert reasons == [
        "the registration is a test registration",
        "event SUMMIT26 is in test mode",
    ]


def test_event_change_is_test_when_the_event_is() -> None:
    change = event_change(is_test=True)
    assert matching.is_test(change, change.event)
    live = event_change()
    assert not matching.is_test(live, live.event)


# --- activate for ------------------------------------------------------------------------------


def flow(source: Source, **activate_for: Any) -> Flow:
    return Flow(
        id="f", name="f", source=source, activate_for=ActivateFor.model_validate(activate_for)
    )


def account_with_property_tag() -> Any:
    account = ACCOUNT.model_copy(deep=True)
    account.tags[0].objects.append(ObjectKind.CUSTOM_REGISTRATION_PROPERTY)  # 'registered'
    return account


@pytest.mark.parametrize(
    ("change_kwargs", "activate_for", "matched"),
    [
        # status change: tags on the new status only
        ({"status": "New"}, {"registration_statuses": ["registered"]}, {"registered"}),
        (
            {"status": "Attended", "previous": "New"},
            {"registration_statuses": ["registered"]},
            set(),
        ),
        ({"status": "Need photo"}, {"registration_statuses": ["registered"]}, {"registered"}),
        ({"status": "Invited"}, {"registration_statuses": ["registered"]}, set()),
        # other activate-for lists don't count for a status change
        (
            {"status": "Invited", "properties": {"complete": True}},
            {"standard_properties": ["Complete"]},
            set(),
        ),
    ],
)
def test_status_change_activation(
    change_kwargs: dict[str, Any], activate_for: dict[str, Any], matched: set[str]
) -> None:
    change = registration_change(change_type="registration.status_change", **change_kwargs)
    ctx = build_context(change, ACCOUNT, catalog())
    result = matching.activation(flow(Source.REGISTRATION_STATUS_CHANGE, **activate_for), ctx)
    assert result.matched == matched


@pytest.mark.parametrize(
    ("change_kwargs", "activate_for", "matched"),
    [
        # current status
        ({"status": "New"}, {"registration_statuses": ["registered"]}, {"registered"}),
        # custom property that is set (and tagged in the event setup)
        (
            {"status": "Invited", "properties": {"custom": {"Speaker": True}}},
            {"custom_registration_properties": ["registered"]},
            {"registered"},
        ),
        # custom property not set
        (
            {"status": "Invited", "properties": {"custom": {"Speaker": False}}},
            {"custom_registration_properties": ["registered"]},
            set(),
        ),
        # standard property that is set
        (
            {"status": "Invited", "properties": {"badgePrinted": True}},
            {"standard_properties": [StandardProperty.BADGE_PRINTED]},
            {"Badge Printed"},
        ),
        (
            {"status": "Invited", "properties": {"badgePrinted": False}},
            {"standard_properties": [StandardProperty.BADGE_PRINTED]},
            set(),
        ),
        # Test is a standard property too
        (
            {"status": "Invited", "is_test": True},
            {"standard_properties": [StandardProperty.TEST]},
            {"Test"},
        ),
        # a status tag selected under the custom property list does not count
        (
            {"status": "New"},
            {"custom_registration_properties": ["registered"]},
            set(),
        ),
    ],
)
def test_create_update_activation(
    change_kwargs: dict[str, Any], activate_for: dict[str, Any], matched: set[str]
) -> None:
    change = registration_change(change_type="registration.create_update", **change_kwargs)
    ctx = build_context(change, account_with_property_tag(), catalog())
    result = matching.activation(flow(Source.REGISTRATION_CREATE_UPDATE, **activate_for), ctx)
    assert result.matched == matched


def test_session_status_change_activates_on_new_session_status() -> None:
    f = flow(Source.SESSION_REGISTRATION_STATUS_CHANGE, session_registration_statuses=["attended"])
    attended = registration_change(
        change_type="session_registration.status_change", session_status="Attended"
    )
    cancelled = registration_change(
        change_type="session_registration.status_change", session_status="Cancelled"
    )
    # the registration status 'Attended' is tagged 'attended' too, but only the session counts
    other = registration_change(
        change_type="session_registration.status_change",
        status="Attended",
        session_status="Registered",
    )
    for change, matched in [(attended, {"attended"}), (cancelled, set()), (other, set())]:
        ctx = build_context(change, ACCOUNT, catalog())
        assert matching.activation(f, ctx).matched == matched


def test_event_create_update_activates_on_event_status() -> None:
    f = flow(Source.EVENT_CREATE_UPDATE, event_statuses=["event_live"])
    for status, matched in [("Active", {"event_live"}), ("Archived", set())]:
        change = event_change(status=status)
        ctx = build_context(change, ACCOUNT, catalog())
        assert matching.activation(f, ctx).matched == matched


def test_activation_reports_tags_found_per_item() -> None:
    change = registration_change(
        change_type="registration.create_update", status="New", properties={"complete": True}
    )
    ctx = build_context(change, ACCOUNT, catalog())
    result = matching.activation(flow(Source.REGISTRATION_CREATE_UPDATE), ctx)
    assert result.matched == frozenset()
    assert result.found_list() == ("Complete", "registered")
    assert result.items == ("registration status 'New'", "standard properties")


# --- filters -----------------------------------------------------------------------------------


def ctx_default() -> Any:
    return build_context(registration_change(), ACCOUNT, catalog())


@pytest.mark.parametrize(
    ("path", "op", "value", "holds"),
    [
        ("registration.profile.address.country", "equals", "US", True),
        ("registration.profile.address.country", "equals", "us ", True),  # case-insensitive
        ("registration.profile.address.country", "equals", "CA", False),
        ("registration.profile.address.country", "not_equals", "CA", True),
        ("registration.profile.address.country", "not_equals", "US", False),
        ("registration.profile.organization", "contains", "cm", True),
        ("registration.profile.organization", "contains", "xyz", False),
        ("registration.profile.organization", "starts_with", "ac", True),
        ("registration.profile.organization", "starts_with", "me", False),
        ("registration.profile.organization", "ends_with", "ME", True),
        ("registration.profile.organization", "ends_with", "Ac", False),
        ("registration.profile.address.country", "in", ["US", "CA"], True),
        ("registration.profile.address.country", "in", ["GB", "FR"], False),
        ("registration.profile.address.country", "in", "GB, us", True),
        ("registration.profile.phone", "is_empty", None, False),
        ("registration.profile.phone", "is_not_empty", None, True),
        ("registration.profile.nickname", "is_empty", None, True),
        ("registration.profile.nickname", "is_not_empty", None, False),
        ("registration.profile.nickname", "not_equals", "x", True),
        ("registration.profile.nickname", "equals", "x", False),
        # event fields come from the catalog
        ("event.eventType", "equals", "conference", True),
        ("event.eventType", "in", ["Webinar"], False),
        ("eventQuestions.marketoCampaignId", "equals", 2001, True),
        ("registration.isTest", "equals", False, True),
        # list-valued: contains is membership, not substring
        ("event.tags", "contains", "signal_marketo", True),
        ("event.tags", "contains", "signal", False),
        ("event.tags", "equals", "signal_marketo", True),
        ("event.tags", "not_equals", "signal_marketo", False),
        ("event.tags", "in", ["x", "signal_marketo"], True),
        ("event.tags", "starts_with", "signal", True),
        ("event.tags", "is_empty", None, False),
        ("answers.diet", "contains", "veg", True),
    ],
)
def test_field_filter_ops(path: str, op: str, value: Any, holds: bool) -> None:
    rule = FieldFilter(field=path, op=FilterOp(op), value=value)
    result, _actual = matching.filter_holds(rule, ctx_default())
    assert result is holds


def test_empty_list_and_whitespace_are_empty() -> None:
    rule = FieldFilter(field="x", op=FilterOp.IS_EMPTY)
    empty: tuple[Any, ...] = (None, "", "   ", [], ["", " "], {})
    for value in empty:
        assert matching.field_filter_holds(rule, value)
    for value in ("a", ["a"], 0, False):
        assert not matching.field_filter_holds(rule, value)


@pytest.mark.parametrize(
    ("attendee_type", "rule_tags", "holds"),
    [
        ("VIP", ["vip"], True),
        ("Attendee", ["vip"], False),
        ("Exhibitor", ["signal_marketo"], False),  # tag not allowed on attendee types
        ("Unknown", ["vip"], False),
    ],
)
def test_attendee_type_tag_filter(attendee_type: str, rule_tags: list[str], holds: bool) -> None:
    ctx = build_context(registration_change(attendee_type=attendee_type), ACCOUNT, catalog())
    result, actual = matching.filter_holds(AttendeeTypeFilter(attendee_type_tags=rule_tags), ctx)
    assert result is holds
    assert actual == (["vip"] if attendee_type == "VIP" else [])


def test_all_rules_must_hold_and_the_first_failure_is_reported() -> None:
    rules = [
        FieldFilter(field="event.tags", op=FilterOp.CONTAINS, value="signal_marketo"),
        FieldFilter(field="registration.profile.address.country", op=FilterOp.IN, value=["CA"]),
        FieldFilter(field="registration.profile.email", op=FilterOp.IS_EMPTY),
    ]
    failed = matching.first_failing_filter(rules, ctx_default())
    assert failed == FilteredOut(rule_index=1, rule=rules[1], actual_value="US")
    assert "filter 2" in failed.reason and "'US'" in failed.reason
    assert matching.first_failing_filter(rules[:1], ctx_default()) is None
    assert matching.first_failing_filter([], ctx_default()) is None
