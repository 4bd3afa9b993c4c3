"""Which Marketo program and status a flow sets for a change (action update_program_status).

The program follows the campaign id's rule: the event question named in the flow wins when the
event has a value for it, else the flow's program id. The status follows the change's own status
(the registration status, or the session registration status for session flows): its tags are
looked up in the flow's status map, in the map's order, and the first mapped tag names the
program status. A change whose status has no mapped tag is a data failure naming the status and
its tags, so the operator can extend the map and resubmit.
"""

from __future__ import annotations

from collections.abc import Mapping

from config.models import ProgramRule, Source
from stream.certain.events import QuestionValue
from stream.core import tags
from stream.core.campaign import parse_campaign_id, question_value
from stream.core.context import EVENT_QUESTIONS_PREFIX, ChangeContext
from stream.core.results import DataFailure

STATUS_MAP_FIELD = "destination.program.statuses"


def resolve_program_id(
    rule: ProgramRule | None, event_questions: Mapping[str, QuestionValue]
) -> int | DataFailure:
    question = rule.event_question if rule is not None else None
    if question:
        value = question_value(event_questions, question)
        if not (value is None or (isinstance(value, str) and not value.strip())):
            number = parse_campaign_id(value)
            if number is None:
                return DataFailure(
                    field=f"{EVENT_QUESTIONS_PREFIX}{question}",
                    reason=(
                        f"event question {question!r} holds {value!r}; "
                        "expected a positive whole number (a Marketo program id)"
                    ),
                )
            return number
    if rule is not None and rule.program_id is not None:
        return rule.program_id
    if question:
        reason = f"the event has no value for question {question!r} and the flow no program id"
    else:
        reason = "the flow has no program id and no program event question"
    return DataFailure(field="program_id", reason=reason)


def _change_status(ctx: ChangeContext) -> tuple[str, str | None, frozenset[str]]:
    """(what the status is, its label, its tags) for the change's own status."""
    change = ctx.change
    if change.type is Source.SESSION_REGISTRATION_STATUS_CHANGE:
        status = change.session.reg_session_status if change.session is not None else None
        return "session registration status", status, tags.session_status_tags(status, ctx.account)
    label = change.registration.registration_status_label if change.registration else None
    return "registration status", label, tags.status_tags(label, ctx.event, ctx.account)


def resolve_program_status(rule: ProgramRule | None, ctx: ChangeContext) -> str | DataFailure:
    what, label, found = _change_status(ctx)
    by_tag = {tags.normalise(t) for t in found}
    statuses = rule.statuses if rule is not None else {}
    for tag, status in statuses.items():
        if tags.normalise(tag) in by_tag:
            return status
    mapped = ", ".join(statuses) or "nothing"
    return DataFailure(
        field=STATUS_MAP_FIELD,
        reason=(
            f"{what} {label!r} (tags: {', '.join(sorted(found)) or 'none'}) has no program "
            f"status in the flow's status map (it maps: {mapped})"
        ),
    )
