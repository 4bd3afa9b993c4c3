"""The demo account: the configuration `csignal run --demo` imports, matching the simulator.

It uses what the simulator's events carry (statuses, the tagged custom status and the untagged
one, the VIP attendee types, the tagged dietary question, the `marketoCampaignId` event question)
so every outcome shows up in a demo: deliveries of all four actions (program statuses in the
sandbox's webinar program included), live and test, filtered out,
not activated, and data failures for untagged statuses and missing emails.

The connection points at a Marketo sandbox whose URL is known only once it listens; its secret is
an `${ENV}` reference, never a literal, so an export of the demo account carries no secret.

The `batching` variant (`csignal run --demo --demo-account batching`) is the same account with its
two form-post flows inactive: Marketo's `submitForm` takes one lead per call, so at tens of
changes per second those flows alone ask for more calls than Marketo's 100 per 20 s; the flows
left carry their load in batched calls (upserts, campaign requests), and a long run at such a rate
measures Signal rather than Marketo's budget.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from simulators.certain.traffic import ACCOUNT_CODE

SECRET_ENV = "SIGNAL_DEMO_MARKETO_SECRET"
CONNECTION_ID = "demo-marketo"
CAMPAIGN_CONFIRMED = 1001
CAMPAIGN_ATTENDED = 1002
FORM_ID = 1234
PROGRAM_ID = 1044
"""The sandbox's webinar program (Registered, then Attended; members only move forward)."""
VARIANTS = ("full", "batching")
"""`full`: every flow active; `batching`: the form-post flows (one lead per call) inactive."""

_LEAD_FIELDS: list[dict[str, Any]] = [
    {
        "target": "email",
        "sources": ["registration.profile.email"],
        "transforms": ["trim", "lower"],
        "required": True,
    },
    {
        "target": "firstName",
        "sources": ["registration.profile.firstName"],
        "transforms": ["trim", "proper"],
        "required": True,
    },
    {
        "target": "lastName",
        "sources": ["registration.profile.lastName"],
        "transforms": ["trim"],
        "required": True,
    },
    {"target": "company", "sources": ["registration.profile.organization"]},
    {"target": "title", "sources": ["registration.profile.position"]},
    {
        "target": "city",
        "sources": ["registration.profile.address.city", "registration.profile.address.state"],
        "separator": ", ",
    },
    {"target": "country", "sources": ["registration.profile.address.country"]},
    {"target": "certainRegistrationCode", "sources": ["registration.registrationCode"]},
    {"target": "dietaryNeeds", "sources": ["answers.diet"]},
]

_FORM_FIELDS: list[dict[str, Any]] = [
    field
    for field in _LEAD_FIELDS
    if field["target"]
    in {"email", "firstName", "lastName", "company", "title", "certainRegistrationCode"}
]
"""Only fields that are on the sandbox's registration form (a field not on the form is refused)."""

_OWNER_FIELDS: list[dict[str, Any]] = [
    {"target": "email", "sources": ["eventQuestions.ownerEmail"], "required": True},
    {"target": "firstName", "sources": ["eventQuestions.ownerFirstName"], "required": True},
    {"target": "lastName", "sources": ["eventQuestions.ownerLastName"], "required": True},
    {"target": "company", "sources": ["event.eventName"]},
]


def demo_account(
    service_url: str,
    client_id: str = "sandbox-client",
    secret_env: str = SECRET_ENV,
    *,
    variant: str = "full",
) -> dict[str, Any]:
    """The demo account as plain data (the shape `csignal config import` reads), with no value
    shared between two places, so any YAML dumper writes it without anchors (imports refuse
    them)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown demo account variant {variant!r} (one of {', '.join(VARIANTS)})")
    account = _unshared(_demo_account(service_url, client_id, secret_env))
    if variant == "batching":
        for flow in account["flows"]:
            if flow["destination"]["action"] == "form_post":
                flow["active"] = False
    return account


def _unshared(data: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(data))
    return copied


def _demo_account(service_url: str, client_id: str, secret_env: str) -> dict[str, Any]:
    connection = {
        "id": CONNECTION_ID,
        "name": "Marketo sandbox",
        "target": "marketo",
        "service_url": service_url,
        "client_id": client_id,
        "client_secret": f"${{{secret_env}}}",
        "force_update": True,
        "primary": True,
    }
    return {
        "account": ACCOUNT_CODE,
        "tags": [
            {"name": "registered", "label": "Registered", "objects": ["registration_status"]},
            {"name": "cancelled", "label": "Cancelled", "objects": ["registration_status"]},
            {
                "name": "attended",
                "label": "Attended",
                "objects": ["registration_status", "session_registration_status"],
            },
            {"name": "pending", "label": "Pending", "objects": ["registration_status"]},
            {"name": "declined", "label": "Declined", "objects": ["registration_status"]},
            {
                "name": "session_booked",
                "label": "Session booked",
                "objects": ["session_registration_status"],
            },
            {
                "name": "session_dropped",
                "label": "Session dropped",
                "objects": ["session_registration_status"],
            },
            {"name": "vip", "label": "VIP", "objects": ["attendee_type"]},
            {"name": "speaker", "label": "Speaker", "objects": ["custom_registration_property"]},
            {"name": "diet", "label": "Dietary needs", "objects": ["registration_question"]},
            {"name": "signal_marketo", "label": "Send to Marketo", "objects": ["event"]},
            {"name": "event_live", "label": "Event is live", "objects": ["event_status"]},
        ],
        "assignments": {
            "registration_statuses": {
                "New": ["registered"],
                "Pre-Registered": ["registered"],
                "Attended": ["attended"],
                "Cancelled": ["cancelled"],
                "Invited": ["pending"],
                "Waitlist Hold": ["pending"],
                "Requested Invitation": ["pending"],
                "Declined Invitation": ["declined"],
                "Request Denied": ["declined"],
                "No-show": ["declined"],
            },
            "session_registration_statuses": {
                "Attended": ["attended"],
                "Registered": ["session_booked"],
                "Waitlisted": ["session_booked"],
                "Cancelled": ["session_dropped"],
                "No Show": ["session_dropped"],
            },
            "event_statuses": {"Active": ["event_live"]},
        },
        "connections": [connection],
        "mappings": [
            {"id": "lead-basic", "name": "Lead basics", "fields": _LEAD_FIELDS},
            {"id": "form-fields", "name": "Registration form fields", "fields": _FORM_FIELDS},
            {"id": "event-owner", "name": "Event owner", "fields": _OWNER_FIELDS},
        ],
        "flows": [
            {
                "id": "registered-to-nurture",
                "name": "Registered → nurture campaign",
                "mode": "live",
                "active": True,
                "source": "registration.status_change",
                "activate_for": {"registration_statuses": ["registered"]},
                "filters": [
                    {"field": "event.tags", "op": "contains", "value": "signal_marketo"},
                    {
                        "field": "registration.profile.address.country",
                        "op": "in",
                        "value": ["US", "CA", "DE", "GB"],
                    },
                ],
                "destination": _destination(
                    "create_update_lead",
                    "lead-basic",
                    campaign={
                        "event_question": "marketoCampaignId",
                        "campaign_id": CAMPAIGN_CONFIRMED,
                    },
                ),
            },
            {
                "id": "attended-follow-up",
                "name": "Attended → follow-up",
                "mode": "live",
                "active": True,
                "source": "registration.status_change",
                "activate_for": {"registration_statuses": ["attended"]},
                "filters": [{"field": "event.tags", "op": "contains", "value": "signal_marketo"}],
                "destination": _destination(
                    "trigger_campaign",
                    "lead-basic",
                    campaign={"campaign_id": CAMPAIGN_ATTENDED},
                    tokens={"{{my.event}}": "event.eventName"},
                ),
            },
            {
                "id": "program-status",
                "name": "Registration status → webinar program",
                "mode": "live",
                "active": True,
                "source": "registration.status_change",
                "activate_for": {"registration_statuses": ["registered", "attended"]},
                "filters": [{"field": "event.tags", "op": "contains", "value": "signal_marketo"}],
                "destination": _destination(
                    "update_program_status",
                    "lead-basic",
                    program={
                        "program_id": PROGRAM_ID,
                        "statuses": {"registered": "Registered", "attended": "Attended"},
                    },
                ),
            },
            {
                "id": "vip-session-attended",
                "name": "VIP attended a session → trigger",
                "mode": "live",
                "active": True,
                "source": "session_registration.status_change",
                "activate_for": {"session_registration_statuses": ["attended"]},
                "filters": [{"attendee_type_tags": ["vip"]}],
                "destination": _destination(
                    "trigger_campaign",
                    "lead-basic",
                    campaign={"campaign_id": CAMPAIGN_ATTENDED},
                    tokens={"{{my.session}}": "session.sessionName"},
                ),
            },
            {
                "id": "complete-form",
                "name": "Complete registrations → form",
                "mode": "live",
                "active": True,
                "source": "registration.create_update",
                "activate_for": {
                    "standard_properties": ["Complete"],
                    "custom_registration_properties": ["speaker"],
                },
                "destination": _destination("form_post", "form-fields", form={"form_id": FORM_ID}),
            },
            {
                "id": "event-live-owner",
                "name": "Event went live → owner lead",
                "mode": "live",
                "active": True,
                "source": "event.create_update",
                "activate_for": {"event_statuses": ["event_live"]},
                "filters": [{"field": "event.tags", "op": "contains", "value": "signal_marketo"}],
                "destination": _destination(
                    "create_update_lead",
                    "event-owner",
                    campaign={"campaign_id": CAMPAIGN_CONFIRMED},
                ),
            },
            {
                "id": "test-registered",
                "name": "Test registrations → nurture (test)",
                "mode": "test",
                "active": True,
                "source": "registration.status_change",
                "activate_for": {"registration_statuses": ["registered", "attended"]},
                "destination": _destination(
                    "create_update_lead",
                    "lead-basic",
                    campaign={"campaign_id": CAMPAIGN_CONFIRMED},
                ),
            },
            {
                "id": "test-form",
                "name": "Test registrations → form (test)",
                "mode": "test",
                "active": True,
                "source": "registration.create_update",
                "activate_for": {"registration_statuses": ["registered"]},
                "destination": _destination("form_post", "form-fields", form={"form_id": FORM_ID}),
            },
        ],
    }


def _destination(action: str, mapping: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": f"Marketo sandbox — {action.replace('_', ' ')}",
        "connection": CONNECTION_ID,
        "action": action,
        "mapping": mapping,
        **extra,
    }


class _PlainDumper(yaml.SafeDumper):
    """Repeated values written out each time: configuration imports refuse YAML anchors and
    aliases (an alias bomb is cheap to send and costly to expand)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def demo_account_yaml(
    service_url: str,
    client_id: str = "sandbox-client",
    secret_env: str = SECRET_ENV,
    *,
    variant: str = "full",
) -> str:
    header = (
        "# Signal demo account (csignal run --demo): flows for the simulator's events, "
        "delivering to the Marketo sandbox.\n"
    )
    if variant != "full":
        header += f"# Variant {variant}: the form-post flows are inactive.\n"
    body = yaml.dump(
        demo_account(service_url, client_id, secret_env, variant=variant),
        Dumper=_PlainDumper,
        sort_keys=False,
        allow_unicode=True,
    )
    return header + body
