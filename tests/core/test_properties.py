"""No change, however odd, makes the matcher or mapper raise (property-based)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.models import FieldFilter, FilterOp, Mode
from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog
from stream.core.evaluate import evaluate, evaluate_all
from stream.core.results import DataFailure, FilteredOut, Mapped, NotActivated
from tests.support.accounts import example_account
from tests.support.changes import SUMMIT_SETUP, event_body
from tests.support.examples import examples

ACCOUNT = example_account()

SETTINGS = settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

LABELS = ["New", "Attended", "Cancelled", "Need photo", "Invited", "Pre-Registered", "", " x "]
TAG_NAMES = [t.name for t in ACCOUNT.tags] + ["unknown", ""]
text = st.one_of(st.sampled_from(LABELS), st.text(max_size=12))
maybe_text = st.one_of(st.none(), text)
tag_list = st.lists(st.sampled_from(TAG_NAMES), max_size=3)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))


profiles = st.fixed_dictionaries(
    {},
    optional={
        "firstName": st.one_of(st.just("ana"), maybe_text),
        "lastName": st.one_of(st.just("RUIZ"), maybe_text),
        "email": st.one_of(st.just("a@example.com"), maybe_text),
        "organization": maybe_text,
        "address": st.fixed_dictionaries(
            {},
            optional={
                "city": maybe_text,
                "state": maybe_text,
                "country": st.one_of(st.sampled_from(["US", "CA", "GB"]), maybe_text),
            },
        ),
    },
)

registrations = st.fixed_dictionaries(
    {"registrationCode": st.text(min_size=1, max_size=8).filter(str.strip)},
    optional={
        "attendeeTypeCode": st.one_of(st.sampled_from(["VIP", "Attendee", "Exhibitor"]), text),
        "registrationStatusLabel": text,
        "isTest": st.sampled_from([False, False, True]),
        "isActive": st.sampled_from([True, True, True, False]),
        "properties": st.fixed_dictionaries(
            {},
            optional={
                "complete": st.booleans(),
                "badgePrinted": st.booleans(),
                "custom": st.dictionaries(
                    st.sampled_from(["Speaker", "Press", "Other"]), st.booleans()
                ),
            },
        ),
        "profile": profiles,
        "registrationQuestions": st.lists(
            st.fixed_dictionaries(
                {"questionCode": st.sampled_from(["DIET", "TSHIRT", "Q"])},
                optional={"answers": st.lists(st.text(max_size=6), max_size=3)},
            ),
            max_size=3,
        ),
        "extra": json_scalar,
    },
)

setups = st.fixed_dictionaries(
    {},
    optional={
        "statuses": st.lists(
            st.fixed_dictionaries({"label": st.sampled_from(LABELS[:6]), "tags": tag_list}),
            max_size=4,
        ),
        "customProperties": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["Speaker", "Press"]), "tags": tag_list}
            ),
            max_size=2,
        ),
        "attendeeTypes": st.lists(
            st.fixed_dictionaries({"code": st.sampled_from(["VIP", "Attendee"]), "tags": tag_list}),
            max_size=2,
        ),
        "registrationQuestions": st.lists(
            st.fixed_dictionaries({"code": st.sampled_from(["DIET", "Q"]), "tags": tag_list}),
            max_size=2,
        ),
        "eventTags": tag_list,
    },
)

events = st.fixed_dictionaries(
    {},
    optional={
        "eventStatus": st.one_of(st.sampled_from(["Active", "Archived"]), maybe_text),
        "isTest": st.booleans(),
        "eventType": maybe_text,
        "eventQuestions": st.dictionaries(
            st.sampled_from(["marketoCampaignId", "other"]), json_scalar, max_size=2
        ),
        "setup": setups,
    },
)

change_types = st.sampled_from(
    [
        "registration.create_update",
        "registration.status_change",
        "session_registration.status_change",
        "event.create_update",
    ]
)


@st.composite
def changes(draw: st.DrawFn) -> ChangeEvent:
    change_type = draw(change_types)
    registration = draw(registrations)
    registration.setdefault(
        "profile", {"firstName": "Ana", "lastName": "Ruiz", "email": "a@example.com"}
    )
    if change_type == "registration.status_change":
        registration.setdefault("registrationStatusLabel", "New")
    data: dict[str, Any] = {
        "changeId": "c-1",
        "type": change_type,
        "accountCode": draw(st.sampled_from(["ACME", "ACME", "acme", "OTHER"])),
        "eventCode": "SUMMIT26",
        "occurredAt": "2026-11-28T12:00:00+01:00",
        "registration": registration if change_type != "event.create_update" else None,
    }
    if change_type == "session_registration.status_change":
        data["session"] = {
            "sessionCode": "S1",
            "regSessionStatus": draw(st.one_of(st.sampled_from(["Attended", "Registered"]), text)),
            "sessionName": draw(maybe_text),
        }
    if change_type == "event.create_update":
        data["event"] = draw(events)
    return ChangeEvent.model_validate(data)


@st.composite
def catalogs(draw: st.DrawFn) -> EventCatalog:
    if draw(st.integers(0, 4)) == 0:
        return EventCatalog()
    overrides = draw(st.one_of(st.just({}), st.just({"isTest": True}), events))
    event = {**event_body(setup=SUMMIT_SETUP), **overrides}
    change = ChangeEvent.model_validate(
        {
            "changeId": "e-1",
            "type": "event.create_update",
            "accountCode": "ACME",
            "eventCode": "SUMMIT26",
            "occurredAt": "2026-11-01T00:00:00Z",
            "event": event,
        }
    )
    return EventCatalog().apply(change)


filters = st.builds(
    FieldFilter,
    field=st.sampled_from(
        [
            "event.tags",
            "event.eventType",
            "registration.profile.address.country",
            "answers.diet",
            "eventQuestions.marketoCampaignId",
            "registration.properties",
            "nowhere.at.all",
        ]
    ),
    op=st.sampled_from(list(FilterOp)),
    value=st.one_of(
        st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.lists(st.text(max_size=4))
    ),
)


@SETTINGS
@given(change=changes(), cat=catalogs(), extra_filters=st.lists(filters, max_size=3))
def test_evaluate_never_raises(
    change: ChangeEvent, cat: EventCatalog, extra_filters: list[FieldFilter]
) -> None:
    for flow in ACCOUNT.flows:
        for mode in Mode:
            variant = flow.model_copy(
                update={"mode": mode, "filters": [*flow.filters, *extra_filters]}
            )
            result = evaluate(change, variant, ACCOUNT, cat)
            assert isinstance(result, NotActivated | FilteredOut | Mapped | DataFailure)
            assert "unexpected error" not in getattr(result, "reason", "")
            result.to_dict()


@SETTINGS
@given(change=changes(), cat=catalogs())
def test_evaluate_all_never_raises(change: ChangeEvent, cat: EventCatalog) -> None:
    for flow, result in evaluate_all(change, ACCOUNT, cat, is_runnable=lambda _: True):
        assert flow.active
        assert isinstance(result, NotActivated | FilteredOut | Mapped | DataFailure)
        assert "unexpected error" not in getattr(result, "reason", "")
