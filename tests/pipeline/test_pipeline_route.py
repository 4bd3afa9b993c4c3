"""`route_change`: one change (or redrive) → outcomes decided now + delivery requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stream.messages import DeliveryRequest, FailureCategory, OutcomeRecord, OutcomeStatus, Redrive
from stream.pipeline.route import MAX_DELIVERY_BYTES, Routed, latency_ms, route_change
from tests.pipeline.pipeline_support import (
    account,
    catalog_with,
    change,
    event_json,
    registration_json,
)

NOW = datetime(2026, 11, 28, 12, 0, 5, tzinfo=UTC)
RECEIVED = NOW - timedelta(milliseconds=250)
ACCOUNT = account()
CATALOG = catalog_with(event_json())


def flows(routed: Routed) -> set[str]:
    outcomes = {o.flow_id for o in routed.outcomes}
    deliveries = {d.flow_id for d in routed.deliveries}
    assert not outcomes & deliveries
    return outcomes | deliveries


def outcome_of(routed: Routed, flow_id: str) -> OutcomeRecord:
    (found,) = [o for o in routed.outcomes if o.flow_id == flow_id]
    return found


def delivery_of(routed: Routed, flow_id: str) -> DeliveryRequest:
    (found,) = [d for d in routed.deliveries if d.flow_id == flow_id]
    return found


def test_registered_change_maps_to_a_delivery_and_other_flows_are_not_activated() -> None:
    routed = route_change(
        change(registration_json(7)), ACCOUNT, CATALOG, now=NOW, received_at=RECEIVED
    )
    assert [d.flow_id for d in routed.deliveries] == ["registered-to-nurture"]
    delivery = routed.deliveries[0]
    assert delivery.action == "create_update_lead"
    assert delivery.connection_id == "mkto-prod"
    assert delivery.campaign_id == 1001
    assert delivery.payload["email"] == "user7@example.com"
    assert delivery.payload["lastName"] == "Ruiz7"
    assert delivery.payload["certainRegistrationCode"] == "R000007"
    assert delivery.received_at == RECEIVED and delivery.attempt == 1
    statuses = {o.flow_id: (o.status, o.reason) for o in routed.outcomes}
    assert set(statuses) == {"vip-attended", "complete-form"}
    assert all(s is OutcomeStatus.NOT_ACTIVATED for s, _ in statuses.values())
    assert "session_registration.status_change" in (statuses["vip-attended"][1] or "")
    assert all(o.latency_ms == 250.0 for o in routed.outcomes)


def test_event_question_overrides_the_flow_campaign() -> None:
    catalog = catalog_with(event_json(questions={"marketoCampaignId": "1002"}))
    routed = route_change(change(registration_json()), ACCOUNT, catalog, now=NOW)
    assert routed.deliveries[0].campaign_id == 1002


def test_filtered_out_names_the_rule_and_value() -> None:
    routed = route_change(change(registration_json(country="FR")), ACCOUNT, CATALOG, now=NOW)
    outcome = outcome_of(routed, "registered-to-nurture")
    assert outcome.status is OutcomeStatus.FILTERED_OUT
    assert "FR" in (outcome.reason or "")
    assert routed.deliveries == []


def test_unknown_event_is_not_activated_with_the_reason() -> None:
    routed = route_change(change(registration_json(event_code="NOPE26")), ACCOUNT, CATALOG, now=NOW)
    outcome = outcome_of(routed, "registered-to-nurture")
    assert outcome.status is OutcomeStatus.NOT_ACTIVATED
    assert "not in the catalog" in (outcome.reason or "")


def test_missing_required_field_is_a_data_failure() -> None:
    routed = route_change(change(registration_json(email="")), ACCOUNT, CATALOG, now=NOW)
    outcome = outcome_of(routed, "registered-to-nurture")
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.category is FailureCategory.DATA
    assert "email" in (outcome.reason or "")


def test_untagged_status_is_a_data_failure() -> None:
    routed = route_change(change(registration_json(status="Mystery")), ACCOUNT, CATALOG, now=NOW)
    outcome = outcome_of(routed, "registered-to-nurture")
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.category is FailureCategory.DATA


def test_inactive_flows_get_no_outcome() -> None:
    quiet = account(all_active=False)  # only the two live flows of the example are active
    routed = route_change(change(registration_json()), quiet, CATALOG, now=NOW)
    assert flows(routed) == {"registered-to-nurture", "vip-attended"}


def test_session_change_maps_tokens_for_the_trigger() -> None:
    data = registration_json(kind="session_registration.status_change")
    routed = route_change(change(data), ACCOUNT, CATALOG, now=NOW)
    delivery = delivery_of(routed, "vip-attended")
    assert delivery.action == "trigger_campaign"
    assert delivery.campaign_id == 1002
    assert delivery.tokens == {"{{my.session}}": "Keynote"}


def test_form_flow_carries_the_form() -> None:
    data = registration_json(kind="registration.create_update")
    delivery = delivery_of(route_change(change(data), ACCOUNT, CATALOG, now=NOW), "complete-form")
    assert delivery.action == "form_post"
    assert delivery.form_id == 1234


def test_redrive_evaluates_its_flow_only_and_carries_the_attempt() -> None:
    redrive = Redrive(flow_id="registered-to-nurture", attempt=3, kind="replay", replay_id="rp-1")
    routed = route_change(change(registration_json()), ACCOUNT, CATALOG, now=NOW, redrive=redrive)
    assert routed.outcomes == []
    (delivery,) = routed.deliveries
    assert (delivery.attempt, delivery.redrive_kind, delivery.replay_id) == (3, "replay", "rp-1")


def test_redrive_outcome_carries_the_attempt_too() -> None:
    redrive = Redrive(flow_id="registered-to-nurture", attempt=2, kind="retry")
    data = registration_json(country="FR")
    (outcome,) = route_change(change(data), ACCOUNT, CATALOG, now=NOW, redrive=redrive).outcomes
    assert outcome.status is OutcomeStatus.FILTERED_OUT
    assert (outcome.attempt, outcome.redrive_kind) == (2, "retry")


def test_dry_run_publishes_would_send_with_the_payload() -> None:
    redrive = Redrive(
        flow_id="registered-to-nurture", attempt=1, kind="replay", replay_id="rp", dry_run=True
    )
    routed = route_change(change(registration_json(4)), ACCOUNT, CATALOG, now=NOW, redrive=redrive)
    assert routed.deliveries == []
    (outcome,) = routed.outcomes
    assert outcome.status is OutcomeStatus.WOULD_SEND
    assert outcome.payload is not None and outcome.payload["email"] == "user4@example.com"
    assert outcome.campaign_id == 1001 and outcome.replay_id == "rp"


def test_redrive_of_an_inactive_or_missing_flow_is_not_activated() -> None:
    quiet = account(all_active=False)
    data = change(registration_json(kind="registration.create_update"))
    inactive = Redrive(flow_id="complete-form", attempt=1, kind="resubmit")
    (outcome,) = route_change(data, quiet, CATALOG, now=NOW, redrive=inactive).outcomes
    assert outcome.status is OutcomeStatus.NOT_ACTIVATED
    assert "inactive" in (outcome.reason or "")
    gone = Redrive(flow_id="deleted-flow", attempt=2, kind="retry")
    (outcome,) = route_change(data, quiet, CATALOG, now=NOW, redrive=gone).outcomes
    assert outcome.flow_id == "deleted-flow" and outcome.status is OutcomeStatus.NOT_ACTIVATED
    assert "no longer exists" in (outcome.reason or "") and outcome.attempt == 2


def test_latency_prefers_the_receive_time() -> None:
    occurred = NOW - timedelta(hours=1)
    assert latency_ms(occurred, None, NOW) == 3_600_000
    assert latency_ms(occurred, NOW - timedelta(seconds=1), NOW) == 1000
    assert latency_ms(NOW + timedelta(seconds=1), None, NOW) == 0


def _with_last_name(n: int, last_name: str) -> dict[str, Any]:
    data = registration_json(n)
    data["registration"]["profile"]["lastName"] = last_name
    return data


def test_a_delivery_too_big_to_send_is_a_data_failure_of_its_pair() -> None:
    """A registrant's 600,000-character name maps to a request no broker record or Marketo
    call could carry: that pair fails as data, naming the field; a name a sixth of the bound
    plain and the same length of escaped characters show the count is of bytes as sent."""
    huge = route_change(
        change(_with_last_name(8, "x" * 600_000)), ACCOUNT, CATALOG, now=NOW, received_at=RECEIVED
    )
    assert huge.deliveries == []
    failed = outcome_of(huge, "registered-to-nurture")
    assert failed.status is OutcomeStatus.FAILED and failed.category is FailureCategory.DATA
    assert failed.reason is not None
    assert "(largest 'lastName', 600,000 characters)" in failed.reason
    assert f"at most {MAX_DELIVERY_BYTES:,} bytes" in failed.reason
    plain = route_change(
        change(_with_last_name(9, "y" * 200_000)), ACCOUNT, CATALOG, now=NOW, received_at=RECEIVED
    )
    assert [d.flow_id for d in plain.deliveries] == ["registered-to-nurture"]
    escaped = route_change(
        change(_with_last_name(10, "\x01" * 200_000)),
        ACCOUNT,
        CATALOG,
        now=NOW,
        received_at=RECEIVED,
    )
    assert escaped.deliveries == []
    assert outcome_of(escaped, "registered-to-nurture").category is FailureCategory.DATA
