"""Is a flow ready to run? The reasons it is not, in the operator's words.

The guide lets an operator save a flow half-built ("You can save an incomplete Flow and finish
later"). Such a flow is valid, is stored and exported like any other, shows its reasons in the
console and the API, and is never evaluated against changes until the list below is empty.

The rules it shares with validation (which activate-for lists a source can match, what makes a
campaign rule empty) are `config.validation`'s, so the two never disagree.
"""

from __future__ import annotations

from config.models import CAMPAIGN_ACTIONS, Account, Action, Flow
from config.program_rules import program_rule_is_empty, unmapped_activating_tags
from config.validation import ACTIVATE_FOR_BY_SOURCE, campaign_rule_is_empty

EMAIL_TARGET = "email"


def completeness(flow: Flow, account: Account) -> list[str]:
    """Why `flow` cannot run yet; an empty list means it is complete."""
    return [*_source_reasons(flow), *_destination_reasons(flow, account)]


def is_complete(flow: Flow, account: Account) -> bool:
    return not completeness(flow, account)


def _source_reasons(flow: Flow) -> list[str]:
    reasons: list[str] = []
    if flow.source is None:
        reasons.append("no source")
    if flow.activate_for.is_empty():
        reasons.append("no activate-for tag")
    elif flow.source is not None:
        needed = ACTIVATE_FOR_BY_SOURCE[flow.source]
        if not any(getattr(flow.activate_for, name) for name in needed):
            reasons.append(
                f"activate-for has no tag that source {flow.source} can match "
                f"(needs {' or '.join(needed)})"
            )
    return reasons


def _destination_reasons(flow: Flow, account: Account) -> list[str]:
    reasons: list[str] = []
    destination = flow.destination
    if destination.connection is None:
        reasons.append("no destination connection")
    else:
        connection = account.connection(destination.connection)
        if connection is None:
            reasons.append(f"connection {destination.connection!r} does not exist")
        else:
            if connection.client_id is None:
                reasons.append(f"connection {connection.id!r} has no client id")
            if connection.client_secret is None:
                unset = (
                    f" (environment variable {connection.client_secret_ref} gave none: it is "
                    "not set, or not allowed for this connection)"
                    if connection.client_secret_ref
                    else ""
                )
                reasons.append(f"connection {connection.id!r} has no client secret{unset}")
    if destination.action is None:
        reasons.append("no destination action")
    if destination.mapping is None:
        reasons.append("no mapping")
    else:
        mapping = account.mapping(destination.mapping)
        if mapping is None:
            reasons.append(f"mapping {destination.mapping!r} does not exist")
        elif not any(f.target == EMAIL_TARGET and f.sources for f in mapping.fields):
            reasons.append(f"mapping {mapping.id!r} does not map {EMAIL_TARGET}")
    if destination.action in CAMPAIGN_ACTIONS:
        campaign = destination.campaign
        if campaign is None or campaign_rule_is_empty(campaign):
            reasons.append(
                f"no campaign id rule (event question or campaign id) for {destination.action}"
            )
    if destination.action == Action.FORM_POST and destination.form is None:
        reasons.append("no form for form_post")
    if destination.action == Action.UPDATE_PROGRAM_STATUS:
        reasons += _program_reasons(flow)
    return reasons


def _program_reasons(flow: Flow) -> list[str]:
    rule = flow.destination.program
    action = Action.UPDATE_PROGRAM_STATUS
    reasons: list[str] = []
    if program_rule_is_empty(rule):
        reasons.append(f"no program id rule (event question or program id) for {action}")
    if rule is None or not rule.statuses:
        reasons.append(f"no status map (status tag → program status) for {action}")
    for tag in unmapped_activating_tags(flow):
        reasons.append(f"activate-for tag {tag!r} has no program status in the status map")
    return reasons
