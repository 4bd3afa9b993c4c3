"""The evaluation of a change against every flow as it was before flows were planned
(`stream.core.plan`): each flow checked in full, completeness and tags worked out again for every
flow of every change. Kept verbatim as the reference the planned evaluation must equal, outcome
for outcome, and as the baseline the bench measures it against."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from config.completeness import is_complete
from config.models import Account, ActivateFor, Flow, Source
from stream.certain.events import ChangeEvent
from stream.core import matching, tags
from stream.core.catalog import EventCatalog
from stream.core.context import ChangeContext, build_context
from stream.core.matching import Activation
from stream.core.results import DataFailure, Evaluation, NotActivated, NotActivatedCode
from stream.core.steps import destination as _destination
from stream.core.steps import unexpected as _unexpected

Runnable = Callable[[Flow], bool]


def reference_evaluate_all(
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

    activation = reference_activation(flow, ctx)
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


def _untagged(activation: Activation, change: ChangeEvent) -> DataFailure:
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


def _not_activated_by_tags(activation: Activation) -> NotActivated:
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


def reference_activation(flow: Flow, ctx: ChangeContext) -> Activation:
    """Which items of the change can activate a flow watching its source, and their tags."""
    change, event, account = ctx.change, ctx.event, ctx.account
    wanted: ActivateFor = flow.activate_for
    found: dict[str, frozenset[str]] = {}
    selected: dict[str, Sequence[str]] = {}
    items: list[str] = []
    registration = change.registration

    def add(item: str, found_tags: frozenset[str], selected_tags: Sequence[str]) -> None:
        items.append(item)
        found[item] = found_tags
        selected[item] = selected_tags

    if change.type is Source.EVENT_CREATE_UPDATE:
        status = event.event_status if event is not None else None
        add(
            f"event status {status!r}",
            tags.event_status_tags(status, account),
            wanted.event_statuses,
        )
    elif change.type is Source.SESSION_REGISTRATION_STATUS_CHANGE:
        status = change.session.reg_session_status if change.session is not None else None
        add(
            f"session registration status {status!r}",
            tags.session_status_tags(status, account),
            wanted.session_registration_statuses,
        )
    elif registration is not None:
        label = registration.registration_status_label
        add(
            f"registration status {label!r}",
            tags.status_tags(label, event, account),
            wanted.registration_statuses,
        )
        if change.type is Source.REGISTRATION_CREATE_UPDATE:
            for name, prop_tags in tags.set_custom_property_tags(
                registration, event, account
            ).items():
                add(
                    f"custom property {name!r}",
                    prop_tags,
                    wanted.custom_registration_properties,
                )
            standard = tags.standard_property_tags(registration)
            if standard:
                add(
                    "standard properties",
                    standard,
                    [p.value for p in wanted.standard_properties],
                )
    matched = frozenset(
        tag
        for item, item_tags in found.items()
        for tag in item_tags
        if tags.normalise(tag) in {tags.normalise(s) for s in selected[item]}
    )
    return Activation(found=found, matched=matched, items=tuple(items))
