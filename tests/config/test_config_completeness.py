"""Every reason a flow is incomplete; an incomplete flow is still valid and round-trips."""

from __future__ import annotations

from typing import Any

import pytest

from config.completeness import completeness, is_complete
from config.models import Account, Flow
from config.validation import validate_account
from config.yamlio import dump_account, load_account
from tests.config.config_helpers import DELETE, mutated

# (id, [(dotted path, value)], flow index, expected reason fragment)
REASONS: list[tuple[str, list[tuple[str, Any]], int, str]] = [
    ("no-source", [("flows.0.source", DELETE)], 0, "no source"),
    ("no-activate-for", [("flows.0.activate_for", {})], 0, "no activate-for tag"),
    (
        "status-change-needs-status",
        [("flows.0.activate_for", {"standard_properties": ["Complete"]})],
        0,
        "activate-for has no tag that source registration.status_change can match "
        "(needs registration_statuses)",
    ),
    (
        "session-needs-session-status",
        [("flows.1.activate_for", {"registration_statuses": ["registered"]})],
        1,
        "(needs session_registration_statuses)",
    ),
    (
        "event-needs-event-status",
        [("flows.0.source", "event.create_update")],
        0,
        "(needs event_statuses)",
    ),
    (
        "create-update-needs-registration-kinds",
        [("flows.2.activate_for", {"session_registration_statuses": ["attended"]})],
        2,
        "(needs registration_statuses or custom_registration_properties or standard_properties)",
    ),
    ("no-connection", [("flows.0.destination.connection", DELETE)], 0, "no destination connection"),
    (
        "unknown-connection",
        [("flows.0.destination.connection", "gone")],
        0,
        "connection 'gone' does not exist",
    ),
    ("no-action", [("flows.0.destination.action", DELETE)], 0, "no destination action"),
    ("no-mapping", [("flows.0.destination.mapping", DELETE)], 0, "no mapping"),
    (
        "unknown-mapping",
        [("flows.0.destination.mapping", "gone")],
        0,
        "mapping 'gone' does not exist",
    ),
    (
        "no-campaign-create-update",
        [("flows.0.destination.campaign", DELETE)],
        0,
        "no campaign id rule (event question or campaign id) for create_update_lead",
    ),
    (
        "no-campaign-trigger",
        [("flows.1.destination.campaign", DELETE)],
        1,
        "no campaign id rule (event question or campaign id) for trigger_campaign",
    ),
    ("empty-campaign", [("flows.1.destination.campaign", {})], 1, "no campaign id rule"),
    ("no-form", [("flows.2.destination.form", DELETE)], 2, "no form for form_post"),
    (
        "mapping-lacks-email",
        [("mappings.0.fields.0", DELETE)],
        0,
        "mapping 'lead-basic' does not map email",
    ),
    (
        "email-without-source",
        [("mappings.0.fields.0.sources", [])],
        0,
        "mapping 'lead-basic' does not map email",
    ),
    (
        "no-client-id",
        [("connections.0.client_id", DELETE)],
        0,
        "connection 'mkto-prod' has no client id",
    ),
    (
        "no-secret",
        [("connections.0.client_secret", DELETE), ("connections.0.client_secret_ref", DELETE)],
        1,
        "connection 'mkto-prod' has no client secret",
    ),
    (
        "secret-env-unset",
        [("connections.0.client_secret", DELETE)],
        2,
        "connection 'mkto-prod' has no client secret "
        "(environment variable MARKETO_CLIENT_SECRET gave none: it is not set, or not allowed "
        "for this connection)",
    ),
]


@pytest.mark.parametrize(
    ("changes", "index", "fragment"),
    [pytest.param(c, i, f, id=name) for name, c, i, f in REASONS],
)
def test_reason(
    example_raw: dict[str, Any], changes: list[tuple[str, Any]], index: int, fragment: str
) -> None:
    for path, value in changes:
        example_raw = mutated(example_raw, path, value)
    account = Account.model_validate(example_raw)
    reasons = completeness(account.flows[index], account)
    assert any(fragment in r for r in reasons), reasons
    assert not is_complete(account.flows[index], account)


def test_example_flows_are_complete(example: Account) -> None:
    assert [completeness(f, example) for f in example.flows] == [[], [], []]


@pytest.mark.parametrize(
    "activate_for",
    [
        {"registration_statuses": ["registered"]},
        {"custom_registration_properties": ["registered"]},
        {"standard_properties": ["Badge Printed"]},
    ],
)
def test_create_update_accepts_any_registration_kind(
    example_raw: dict[str, Any], activate_for: dict[str, list[str]]
) -> None:
    account = Account.model_validate(mutated(example_raw, "flows.2.activate_for", activate_for))
    assert completeness(account.flows[2], account) == []


def test_event_flow_with_event_status_is_complete(example_raw: dict[str, Any]) -> None:
    raw = mutated(example_raw, "flows.0.source", "event.create_update")
    raw = mutated(raw, "flows.0.activate_for", {"event_statuses": ["event_live"]})
    account = Account.model_validate(raw)
    assert completeness(account.flows[0], account) == []


def test_campaign_by_event_question_alone_is_enough(example_raw: dict[str, Any]) -> None:
    raw = mutated(example_raw, "flows.1.destination.campaign", {"event_question": "campaignId"})
    account = Account.model_validate(raw)
    assert completeness(account.flows[1], account) == []


def test_a_new_flow_lists_every_missing_piece(example: Account) -> None:
    flow = Flow(id="new", name="New flow")
    assert completeness(flow, example) == [
        "no source",
        "no activate-for tag",
        "no destination connection",
        "no destination action",
        "no mapping",
    ]


def test_incomplete_flow_is_valid_and_round_trips(example: Account) -> None:
    example.flows.append(Flow(id="draft", name="Draft", source=None))
    assert validate_account(example) == []
    again = load_account(dump_account(example))
    assert again == example
    assert completeness(again.flows[-1], again)
