"""evaluate(): the example account's flows on realistic changes, and every way a flow declines."""

from __future__ import annotations

import json
from typing import Any

import pytest

from config.completeness import completeness
from config.models import (
    Action,
    ActivateFor,
    CampaignRule,
    Destination,
    FieldMapping,
    Flow,
    Mapping,
    Mode,
    Source,
)
from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog
from stream.core.evaluate import default_runnable, evaluate, evaluate_all
from stream.core.results import (
    DataFailure,
    FilteredOut,
    Mapped,
    NotActivated,
    NotActivatedCode,
)
from tests.support.accounts import EXAMPLE_LEAD_PAYLOAD, example_account
from tests.support.changes import catalog, event_change, registration_change

ACCOUNT = example_account()


def example_flow(flow_id: str) -> Flow:
    found = ACCOUNT.flow(flow_id)
    assert found is not None, flow_id
    return found


NURTURE = example_flow("registered-to-nurture")
VIP = example_flow("vip-attended")
FORM = example_flow("complete-form")


def run(change: ChangeEvent, flow: Flow, cat: EventCatalog | None = None) -> Any:
    return evaluate(change, flow, ACCOUNT, cat if cat is not None else catalog())


# --- the three example flows -------------------------------------------------------------------


def test_registered_to_nurture_maps_a_new_registration() -> None:
    result = run(registration_change(status="New"), NURTURE)
    assert result == Mapped(
        payload=EXAMPLE_LEAD_PAYLOAD,
        campaign_id=2001,  # the event question beats the flow's 1001
        form_id=None,
        tokens={},
        lookup_field="email",
        action=Action.CREATE_UPDATE_LEAD,
        connection_id="mkto-prod",
    )


def test_registered_to_nurture_uses_the_flow_campaign_when_the_event_has_none() -> None:
    cat = catalog(event_change(questions={}))
    result = run(registration_change(status="Pre-Registered"), NURTURE, cat)
    assert isinstance(result, Mapped) and result.campaign_id == 1001


def test_registered_to_nurture_activates_for_an_event_level_custom_status() -> None:
    result = run(registration_change(status="Need photo"), NURTURE)
    assert isinstance(result, Mapped)


@pytest.mark.parametrize(
    ("change", "cat", "expected"),
    [
        (
            registration_change(status="New", country="GB"),
            None,
            FilteredOut(rule_index=1, rule=NURTURE.filters[1], actual_value="GB"),
        ),
        (
            registration_change(status="New"),
            catalog(event_change(setup={"eventTags": []})),
            FilteredOut(rule_index=0, rule=NURTURE.filters[0], actual_value=[]),
        ),
    ],
)
def test_registered_to_nurture_filters(change: ChangeEvent, cat: Any, expected: Any) -> None:
    assert run(change, NURTURE, cat) == expected


def test_status_tagged_for_another_flow_is_not_activated_and_names_the_tags_found() -> None:
    result = run(registration_change(status="Attended"), NURTURE)
    assert isinstance(result, NotActivated)
    assert result.code is NotActivatedCode.NO_MATCHING_TAG
    assert result.tags_found == ("attended",)
    assert "attended" in result.reason


def test_untagged_status_is_a_data_failure_naming_the_status() -> None:
    result = run(registration_change(status="Invited"), NURTURE)
    assert isinstance(result, DataFailure)
    assert result.field == "registration.registrationStatusLabel"
    assert "'Invited'" in result.reason and "SUMMIT26" in result.reason
    assert "resolves no tags" in result.reason


def test_untagged_status_that_the_filters_drop_is_filtered_out_not_a_failure() -> None:
    change = registration_change(status="Invited", country="FR")
    result = run(change, NURTURE)
    assert isinstance(result, FilteredOut)


def test_vip_attended_triggers_with_session_token() -> None:
    change = registration_change(
        change_type="session_registration.status_change", session_status="Attended"
    )
    result = run(change, VIP)
    assert isinstance(result, Mapped)
    assert result.action == "trigger_campaign"
    assert result.campaign_id == 1002
    assert result.tokens == {"{{my.session}}": "Opening keynote"}
    assert result.payload == EXAMPLE_LEAD_PAYLOAD


def test_vip_attended_filters_out_other_attendee_types() -> None:
    change = registration_change(
        change_type="session_registration.status_change",
        session_status="Attended",
        attendee_type="Attendee",
    )
    result = run(change, VIP)
    assert isinstance(result, FilteredOut)
    assert result.rule_index == 0 and result.actual_value == []


def test_vip_session_registered_is_untagged() -> None:
    change = registration_change(
        change_type="session_registration.status_change", session_status="Registered"
    )
    result = run(change, VIP)
    assert isinstance(result, DataFailure) and result.field == "session.regSessionStatus"
    assert "'Registered'" in result.reason


def test_complete_form_posts_test_registrations_that_are_complete() -> None:
    change = registration_change(
        change_type="registration.create_update",
        status="New",
        is_test=True,
        properties={"complete": True},
    )
    result = run(change, FORM)
    assert isinstance(result, Mapped)
    assert (result.action, result.form_id, result.campaign_id) == ("form_post", 1234, None)


def test_complete_form_ignores_incomplete_registrations() -> None:
    change = registration_change(
        change_type="registration.create_update", status="New", is_test=True
    )
    result = run(change, FORM)
    assert isinstance(result, NotActivated)
    assert result.code is NotActivatedCode.NO_MATCHING_TAG
    assert result.tags_found == ("Test", "registered")


# --- live / test -------------------------------------------------------------------------------


def test_test_registration_in_live_event_goes_only_to_test_flows() -> None:
    change = registration_change(
        change_type="registration.create_update",
        status="New",
        is_test=True,
        properties={"complete": True},
    )
    live_flow = NURTURE.model_copy(update={"source": Source.REGISTRATION_CREATE_UPDATE})
    live = run(change, live_flow)
    assert isinstance(live, NotActivated) and live.code is NotActivatedCode.MODE
    assert "test registration" in live.reason
    assert isinstance(run(change, FORM), Mapped)


def test_live_registration_in_test_event_goes_only_to_test_flows() -> None:
    test_event = catalog(event_change(is_test=True))
    change = registration_change(status="New")
    live = run(change, NURTURE, test_event)
    assert isinstance(live, NotActivated) and live.code is NotActivatedCode.MODE
    assert "SUMMIT26 is in test mode" in live.reason
    test_flow = NURTURE.model_copy(update={"mode": Mode.TEST})
    assert isinstance(run(change, test_flow, test_event), Mapped)


def test_live_registration_in_live_event_skips_test_flows() -> None:
    test_flow = NURTURE.model_copy(update={"mode": Mode.TEST})
    result = run(registration_change(status="New"), test_flow)
    assert isinstance(result, NotActivated) and result.code is NotActivatedCode.MODE
    assert "live data" in result.reason


# --- other reasons not to act ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "needle"),
    [
        (
            registration_change(change_type="registration.create_update"),
            NotActivatedCode.SOURCE,
            "watches",
        ),
        (registration_change(account_code="OTHER"), NotActivatedCode.ACCOUNT, "'OTHER'"),
        (registration_change(is_active=False), NotActivatedCode.INACTIVE_REGISTRATION, "R7QX2M9K1"),
        (registration_change(event_code="NEW26"), NotActivatedCode.UNKNOWN_EVENT, "NEW26"),
    ],
)
def test_not_activated(change: ChangeEvent, code: NotActivatedCode, needle: str) -> None:
    result = run(change, NURTURE)
    assert isinstance(result, NotActivated)
    assert result.code is code
    assert needle in result.reason


# --- data failures -----------------------------------------------------------------------------


def test_non_numeric_campaign_question_is_a_data_failure() -> None:
    cat = catalog(event_change(questions={"marketoCampaignId": "spring-promo"}))
    result = run(registration_change(status="New"), NURTURE, cat)
    assert result == DataFailure(
        field="eventQuestions.marketoCampaignId",
        reason="event question 'marketoCampaignId' holds 'spring-promo'; "
        "expected a positive whole number (a Marketo campaign id)",
    )


def test_missing_campaign_id_is_a_data_failure() -> None:
    flow = NURTURE.model_copy(deep=True)
    flow.destination.campaign = CampaignRule(event_question="marketoCampaignId")
    result = run(registration_change(status="New"), flow, catalog(event_change(questions={})))
    assert isinstance(result, DataFailure) and result.field == "campaign_id"
    assert "marketoCampaignId" in result.reason


def test_empty_required_field_is_a_data_failure_naming_the_field() -> None:
    result = run(registration_change(status="New", profile={"lastName": None}), NURTURE)
    assert isinstance(result, DataFailure) and result.field == "lastName"


def test_lookup_field_must_have_a_value_for_lead_actions() -> None:
    flow = NURTURE.model_copy(deep=True)
    flow.destination.lookup_field = "certainRegistrationCode"
    ok = run(registration_change(status="New"), flow)
    assert isinstance(ok, Mapped) and ok.lookup_field == "certainRegistrationCode"
    flow.destination.lookup_field = "marketoId"
    failed = run(registration_change(status="New"), flow)
    assert isinstance(failed, DataFailure) and failed.field == "marketoId"


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"action": None}, "destination.action"),
        ({"connection": None}, "destination.connection"),
        ({"mapping": None}, "destination.mapping"),
        ({"mapping": "lead-x"}, "destination.mapping"),
    ],
)
def test_incomplete_destination_is_reported_not_raised(update: dict[str, Any], field: str) -> None:
    flow = NURTURE.model_copy(update={"destination": NURTURE.destination.model_copy(update=update)})
    result = run(registration_change(status="New"), flow)
    assert isinstance(result, DataFailure) and result.field == field


def test_form_post_without_form_is_a_failure() -> None:
    flow = FORM.model_copy(
        update={"destination": FORM.destination.model_copy(update={"form": None})}
    )
    change = registration_change(
        change_type="registration.create_update", is_test=True, properties={"complete": True}
    )
    result = run(change, flow)
    assert isinstance(result, DataFailure) and result.field == "destination.form"


# --- event flows -------------------------------------------------------------------------------


def event_flow(mode: Mode = Mode.LIVE) -> Flow:
    return Flow(
        id="event-live",
        name="Event live",
        mode=mode,
        active=True,
        source=Source.EVENT_CREATE_UPDATE,
        activate_for=ActivateFor(event_statuses=["event_live"]),
        destination=Destination(
            connection="mkto-prod",
            action="trigger_campaign",
            mapping="event-fields",
            campaign=CampaignRule(event_question="marketoCampaignId", campaign_id=9),
            tokens={"{{my.eventName}}": "event.eventName"},
            lookup_field="eventCode",
        ),
    )


EVENT_ACCOUNT = ACCOUNT.model_copy(deep=True)
EVENT_ACCOUNT.mappings.append(
    Mapping(
        id="event-fields",
        name="Event fields",
        fields=[
            FieldMapping(target="eventCode", sources=["event.eventCode"]),
            FieldMapping(target="eventType", sources=["event.eventType"], transforms=["upper"]),
        ],
    )
)


def test_event_create_update_activates_on_event_status_tag() -> None:
    change = event_change(questions={"marketoCampaignId": 3003})
    result = evaluate(change, event_flow(), EVENT_ACCOUNT, EventCatalog())
    assert result == Mapped(
        payload={"eventCode": "SUMMIT26", "eventType": "CONFERENCE"},
        campaign_id=3003,
        form_id=None,
        tokens={"{{my.eventName}}": "Acme Summit 2026"},
        lookup_field="eventCode",
        action=Action.TRIGGER_CAMPAIGN,
        connection_id="mkto-prod",
    )


def test_event_with_untagged_status_is_a_data_failure() -> None:
    result = evaluate(event_change(status="Archived"), event_flow(), EVENT_ACCOUNT, EventCatalog())
    assert isinstance(result, DataFailure) and result.field == "event.eventStatus"
    assert "'Archived'" in result.reason


def test_test_event_change_goes_only_to_test_flows() -> None:
    change = event_change(is_test=True)
    live = evaluate(change, event_flow(), EVENT_ACCOUNT, EventCatalog())
    assert isinstance(live, NotActivated) and live.code is NotActivatedCode.MODE
    test = evaluate(change, event_flow(mode=Mode.TEST), EVENT_ACCOUNT, EventCatalog())
    assert isinstance(test, Mapped)


# --- evaluate_all ------------------------------------------------------------------------------


def test_evaluate_all_runs_only_active_runnable_flows() -> None:
    change = registration_change(status="New")
    results = evaluate_all(change, ACCOUNT, catalog(), is_runnable=lambda flow: True)
    assert [flow.id for flow, _ in results] == ["registered-to-nurture", "vip-attended"]
    assert isinstance(results[0][1], Mapped)
    assert isinstance(results[1][1], NotActivated)
    assert evaluate_all(change, ACCOUNT, catalog(), is_runnable=lambda flow: False) == []


def test_evaluate_all_skips_incomplete_flows_by_default() -> None:
    account = ACCOUNT.model_copy(deep=True)
    incomplete = Flow(
        id="half-built", name="Half built", active=True, source=Source.REGISTRATION_STATUS_CHANGE
    )
    account.flows.append(incomplete)
    results = evaluate_all(registration_change(status="New"), account, catalog())
    assert [flow.id for flow, _ in results] == ["registered-to-nurture", "vip-attended"]


def test_a_flow_runs_by_the_completeness_rule_the_console_shows() -> None:
    """One rule for "can this flow run": config.completeness, which also sees the account (a
    mapping that does not exist), not only the flow."""
    runnable = default_runnable(ACCOUNT)
    assert runnable(NURTURE)
    assert not runnable(Flow(id="x", name="x"))
    dangling = NURTURE.model_copy(
        update={"destination": NURTURE.destination.model_copy(update={"mapping": "gone"})}
    )
    assert completeness(dangling, ACCOUNT) == ["mapping 'gone' does not exist"]
    assert not runnable(dangling)


# --- results serialise -------------------------------------------------------------------------


def test_results_serialise_to_json() -> None:
    changes = [
        registration_change(status="New"),
        registration_change(status="New", country="GB"),
        registration_change(status="Attended"),
        registration_change(status="New", profile={"email": ""}),
    ]
    kinds = []
    for change in changes:
        result = run(change, NURTURE)
        data = json.loads(json.dumps(result.to_dict()))
        kinds.append(data["status"])
        assert result.reason
    assert kinds == ["mapped", "filtered_out", "not_activated", "data_failure"]
