"""Evaluate one change against one flow: the whole decision before any Marketo call.

The steps follow DESIGN 5 and stop at the first that decides: the flow's source, the account,
an inactive (soft-deleted) registration, an event the catalog does not know, live/test mode,
activate-for tags, filters, then mapping, campaign or form. The result is a value, never an
exception, so the pipeline, previews, replays and dry runs can all record it as it is.

Registrations whose event is not in the catalog are not activated: without the event, Signal
cannot tell whether the event is in test mode, and sending test data to a live Marketo program is
worse than holding a change until the event is known.
"""

from __future__ import annotations

from collections.abc import Callable

from config.completeness import is_complete
from config.models import CAMPAIGN_ACTIONS, Account, Action, Flow, Source
from stream.certain.events import ChangeEvent
from stream.core import matching
from stream.core.campaign import resolve_campaign_id
from stream.core.catalog import EventCatalog
from stream.core.context import ChangeContext, build_context
from stream.core.mapping import map_fields, map_tokens
from stream.core.program import resolve_program_id, resolve_program_status
from stream.core.results import (
    DataFailure,
    Evaluation,
    Mapped,
    NotActivated,
    NotActivatedCode,
)

Runnable = Callable[[Flow], bool]


def evaluate(
    change: ChangeEvent, flow: Flow, account: Account, catalog: EventCatalog
) -> Evaluation:
    try:
        return evaluate_in(build_context(change, account, catalog), flow)
    except Exception as error:  # a bug must become a recorded outcome, not a lost change
        return _unexpected(error)


def evaluate_all(
    change: ChangeEvent,
    account: Account,
    catalog: EventCatalog,
    is_runnable: Runnable | None = None,
) -> list[tuple[Flow, Evaluation]]:
    """Every active, complete flow of the account against one change, in configuration order."""
    runnable = is_runnable if is_runnable is not None else default_runnable(account)
    flows = [flow for flow in account.flows if flow.active and runnable(flow)]
    if not flows:
        return []
    try:
        ctx = build_context(change, account, catalog)
    except Exception as error:
        failure = _unexpected(error)
        return [(flow, failure) for flow in flows]
    results: list[tuple[Flow, Evaluation]] = []
    for flow in flows:
        try:
            results.append((flow, evaluate_in(ctx, flow)))
        except Exception as error:
            results.append((flow, _unexpected(error)))
    return results


def default_runnable(account: Account) -> Runnable:
    """A flow runs when `config.completeness` finds nothing missing (the rule the console and
    the API show an incomplete flow's reasons by)."""
    return lambda flow: is_complete(flow, account)


def evaluate_in(ctx: ChangeContext, flow: Flow) -> Evaluation:
    """`evaluate` for a prepared context (built once per change, reused across flows)."""
    change, account = ctx.change, ctx.account
    if flow.source is None or change.type is not flow.source:
        watched = flow.source.value if flow.source is not None else "nothing"
        return NotActivated(
            f"flow watches {watched}; this is a {change.type.value} change",
            NotActivatedCode.SOURCE,
        )
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
    reasons = matching.reasons_for_test_mode(change, ctx.event)
    if not matching.mode_accepts(flow, bool(reasons)):
        if reasons:
            why = f"test data ({' and '.join(reasons)}); a live flow takes only live data"
        else:
            why = "live data; a test flow takes only test registrations and test events"
        return NotActivated(why, NotActivatedCode.MODE)

    activation = matching.activation(flow, ctx)
    failed = matching.first_failing_filter(flow.filters, ctx)
    if not activation.matched:
        if activation.any_found:
            return _not_activated_by_tags(activation)
        return failed if failed is not None else _untagged(activation, change)
    if failed is not None:
        return failed
    return _destination(ctx, flow)


UNTAGGED_FIELDS = {
    Source.REGISTRATION_CREATE_UPDATE: "registration.registrationStatusLabel",
    Source.REGISTRATION_STATUS_CHANGE: "registration.registrationStatusLabel",
    Source.SESSION_REGISTRATION_STATUS_CHANGE: "session.regSessionStatus",
    Source.EVENT_CREATE_UPDATE: "event.eventStatus",
}


def _untagged(activation: matching.Activation, change: ChangeEvent) -> DataFailure:
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


def _not_activated_by_tags(activation: matching.Activation) -> NotActivated:
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


def _destination(ctx: ChangeContext, flow: Flow) -> Evaluation:
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


def _unexpected(error: Exception) -> DataFailure:
    return DataFailure("", f"unexpected error while evaluating: {type(error).__name__}: {error}")
