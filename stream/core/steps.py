"""The steps of evaluating a change against a flow, each deciding or passing on (DESIGN 5).

Shared by `stream.core.evaluate` (one flow at a time) and `stream.core.plan` (every flow of an
account at once), so both word every outcome the same way: the planned evaluation must give
exactly the outcome the flow-by-flow one gives.
"""

from __future__ import annotations

from config.models import CAMPAIGN_ACTIONS, Action, Flow, Source
from stream.certain.events import ChangeEvent
from stream.core import matching
from stream.core.campaign import resolve_campaign_id
from stream.core.context import ChangeContext
from stream.core.mapping import map_fields, map_tokens
from stream.core.program import resolve_program_id, resolve_program_status
from stream.core.results import (
    DataFailure,
    Evaluation,
    Mapped,
    NotActivated,
    NotActivatedCode,
)


def source_refusal(flow: Flow, change_type: Source) -> NotActivated | None:
    """The flow watches another source (or none)."""
    if flow.source is None or change_type is not flow.source:
        watched = flow.source.value if flow.source is not None else "nothing"
        return NotActivated(
            f"flow watches {watched}; this is a {change_type.value} change",
            NotActivatedCode.SOURCE,
        )
    return None


def change_refusal(ctx: ChangeContext) -> NotActivated | None:
    """What stops a change for every flow of its source: another account, an inactive
    registration, an event the catalog does not know."""
    change, account = ctx.change, ctx.account
    if change.account_code.strip().casefold() != account.account.strip().casefold():
        return NotActivated(
            f"change belongs to account {change.account_code!r}, not {account.account!r}",
            NotActivatedCode.ACCOUNT,
        )
    if change.registration is not None and not change.registration.is_active:
        return NotActivated(
            f"registration {change.registration.registration_code} is inactive (deleted)",
            NotActivatedCode.INACTIVE_REGISTRATION,
        )
    if ctx.event is None:
        return NotActivated(
            f"event {change.event_code} is not in the catalog yet "
            "(no event.create_update received), so its test mode and setup are unknown",
            NotActivatedCode.UNKNOWN_EVENT,
        )
    return None


def mode_refusal(test_reasons: list[str]) -> NotActivated:
    """A flow of the other mode: `test_reasons` are why the change is test data (none: live)."""
    if test_reasons:
        why = f"test data ({' and '.join(test_reasons)}); a live flow takes only live data"
    else:
        why = "live data; a test flow takes only test registrations and test events"
    return NotActivated(why, NotActivatedCode.MODE)


def after_activation(ctx: ChangeContext, flow: Flow, activation: matching.Activation) -> Evaluation:
    """Filters, then the destination, for a change that reached the flow's activate-for tags."""
    if not activation.matched:
        if activation.any_found:
            # Filters cannot change this outcome (and never raise), so they are not evaluated.
            return not_activated_by_tags(activation)
        failed = matching.first_failing_filter(flow.filters, ctx)
        return failed if failed is not None else untagged(activation, ctx.change)
    failed = matching.first_failing_filter(flow.filters, ctx)
    if failed is not None:
        return failed
    return destination(ctx, flow)


UNTAGGED_FIELDS = {
    Source.REGISTRATION_CREATE_UPDATE: "registration.registrationStatusLabel",
    Source.REGISTRATION_STATUS_CHANGE: "registration.registrationStatusLabel",
    Source.SESSION_REGISTRATION_STATUS_CHANGE: "session.regSessionStatus",
    Source.EVENT_CREATE_UPDATE: "event.eventStatus",
}


def untagged(activation: matching.Activation, change: ChangeEvent) -> DataFailure:
    """An item that carries no tag at all is a setup gap the operator must fix (DESIGN 5,
    "Failures": untagged item is a *data* failure held for resubmit), unless the flow's filters
    would have dropped the change anyway — then nothing was lost and it is not worth a queue item.
    """
    items = " or ".join(activation.items) or "no activating item"
    return DataFailure(
        UNTAGGED_FIELDS[change.type],
        f"{items} in event {change.event_code} resolves no tags; "
        "tag it (account assignments or the event setup), then resubmit",
    )


def not_activated_by_tags(activation: matching.Activation) -> NotActivated:
    found = "; ".join(
        f"{item}: {', '.join(sorted(item_tags))}"
        for item, item_tags in activation.found.items()
        if item_tags
    )
    return NotActivated(
        f"no activate-for tag matched (found {found})",
        NotActivatedCode.NO_MATCHING_TAG,
        tags_found=activation.found_list(),
    )


def destination(ctx: ChangeContext, flow: Flow) -> Evaluation:
    destination = flow.destination
    if destination.action is None:
        return DataFailure("destination.action", "the flow has no action")
    if destination.connection is None:
        return DataFailure("destination.connection", "the flow has no connection")
    if destination.mapping is None:
        return DataFailure("destination.mapping", "the flow has no mapping")
    mapping = ctx.account.mapping(destination.mapping)
    if mapping is None:
        return DataFailure("destination.mapping", f"unknown mapping {destination.mapping!r}")

    payload = map_fields(mapping, ctx)
    if isinstance(payload, DataFailure):
        return payload

    campaign_id: int | None = None
    form_id: int | None = None
    program_id: int | None = None
    program_status: str | None = None
    questions = ctx.event.event_questions if ctx.event is not None else {}
    if destination.action in CAMPAIGN_ACTIONS:
        resolved = resolve_campaign_id(destination.campaign, questions)
        if isinstance(resolved, DataFailure):
            return resolved
        campaign_id = resolved
    elif destination.action is Action.UPDATE_PROGRAM_STATUS:
        program = resolve_program_id(destination.program, questions)
        if isinstance(program, DataFailure):
            return program
        status = resolve_program_status(destination.program, ctx)
        if isinstance(status, DataFailure):
            return status
        program_id, program_status = program, status
    if destination.action in CAMPAIGN_ACTIONS or program_id is not None:
        lookup = destination.lookup_field
        if not payload.get(lookup, "").strip():
            return DataFailure(
                lookup, f"lookup field {lookup!r} is empty, so the lead cannot be found or created"
            )
    elif destination.action is Action.FORM_POST:
        if destination.form is None:
            return DataFailure("destination.form", "the flow has no form")
        form_id = destination.form.form_id

    return Mapped(
        payload=payload,
        campaign_id=campaign_id,
        form_id=form_id,
        tokens=map_tokens(destination.tokens, ctx),
        lookup_field=destination.lookup_field,
        action=destination.action,
        connection_id=destination.connection,
        program_id=program_id,
        program_status=program_status,
    )


def unexpected(error: Exception) -> DataFailure:
    return DataFailure("", f"unexpected error while evaluating: {type(error).__name__}: {error}")
