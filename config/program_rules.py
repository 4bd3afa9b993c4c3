"""The rules of the `update_program_status` action that validation and completeness share.

A program status follows the change's status: the registration status for registration flows,
the session registration status for session flows. The status map is keyed by that status's
tags; an activate-for tag of that kind without an entry would activate the flow for changes it
cannot give a program status, so the flow is incomplete until the map covers it.
"""

from __future__ import annotations

from config.models import Flow, ObjectKind, ProgramRule, Source

PROGRAM_SOURCES = frozenset(
    {
        Source.REGISTRATION_CREATE_UPDATE,
        Source.REGISTRATION_STATUS_CHANGE,
        Source.SESSION_REGISTRATION_STATUS_CHANGE,
    }
)
"""Sources whose changes carry a registrant (a lead) and a status for the program."""


def status_kind(source: Source | None) -> ObjectKind:
    """The tag kind the status map is keyed by for a flow watching `source`."""
    if source is Source.SESSION_REGISTRATION_STATUS_CHANGE:
        return ObjectKind.SESSION_REGISTRATION_STATUS
    return ObjectKind.REGISTRATION_STATUS


def program_rule_is_empty(rule: ProgramRule | None) -> bool:
    """A rule naming neither an event question nor a program id never yields a program."""
    return rule is None or (rule.event_question is None and rule.program_id is None)


def unmapped_activating_tags(flow: Flow) -> list[str]:
    """Activate-for status tags the flow's status map gives no program status."""
    rule = flow.destination.program
    mapped = {name.casefold() for name in (rule.statuses if rule is not None else {})}
    if flow.source is Source.SESSION_REGISTRATION_STATUS_CHANGE:
        activating = flow.activate_for.session_registration_statuses
    else:
        activating = flow.activate_for.registration_statuses
    return [tag for tag in activating if tag.casefold() not in mapped]
