"""Does a flow act on a change? Live/test, activate-for tags and filters (DESIGN 5).

Filter comparisons ignore case and surrounding/repeated whitespace (`US` matches `us `), the way
Marketo's own smart-list filters compare text; the operator types the rule once and it holds for
every event's spelling. For list-valued fields (`event.tags`) a rule holds when it holds for any
element (`contains` is membership), `not_equals` when no element equals, and `is_empty` when the
list is empty. A rule value given as a list means "any of these" for every operator; `in` also
accepts a comma-separated string. Numbers and booleans compare by their JSON text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from config.models import (
    ActivateFor,
    AttendeeTypeFilter,
    FieldFilter,
    Filter,
    FilterOp,
    Flow,
    Mode,
    Source,
)
from stream.certain.events import ChangeEvent, Event
from stream.core import tags
from stream.core.context import ChangeContext, to_text
from stream.core.results import FilteredOut

# --- live / test -------------------------------------------------------------------------------


def reasons_for_test_mode(change: ChangeEvent, event: Event | None) -> list[str]:
    """Why a change counts as test data (empty when it is live)."""
    reasons = []
    if change.registration is not None and change.registration.is_test:
        reasons.append("the registration is a test registration")
    if event is not None and event.is_test:
        reasons.append(f"event {change.event_code} is in test mode")
    return reasons


def is_test(change: ChangeEvent, event: Event | None) -> bool:
    """A registration is test when it or its event is in test mode; an event when it is."""
    return bool(reasons_for_test_mode(change, event))


def mode_accepts(flow: Flow, test: bool) -> bool:
    """Live flows take only live data; test flows take only test data."""
    return (flow.mode is Mode.TEST) == test


# --- activate for ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    """The tags a change's activating items carry, and which of them the flow selected."""

    found: dict[str, frozenset[str]]
    matched: frozenset[str]
    items: tuple[str, ...]

    @property
    def any_found(self) -> bool:
        return any(self.found.values())

    def found_list(self) -> tuple[str, ...]:
        return tuple(sorted({t for ts in self.found.values() for t in ts}))


@dataclass(frozen=True)
class ChangeItems:
    """The items of a change that can activate a flow watching its source, with their tags:
    worked out once per change and read by every flow (a flow only adds which tags it selects).

    `entries` holds, per item, its label, the activate-for list that selects its tags and its
    tags as (account spelling, normalised) pairs.
    """

    found: dict[str, frozenset[str]]
    items: tuple[str, ...]
    entries: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]

    @property
    def any_found(self) -> bool:
        return any(self.found.values())


def change_items(ctx: ChangeContext) -> ChangeItems:
    """Which items of the change can activate a flow watching its source, and their tags."""
    change, event, account = ctx.change, ctx.event, ctx.account
    found: dict[str, frozenset[str]] = {}
    items: list[str] = []
    entries: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []
    registration = change.registration

    def add(item: str, found_tags: frozenset[str], selected_by: str) -> None:
        items.append(item)
        found[item] = found_tags
        entries.append((item, selected_by, tuple((t, tags.normalise(t)) for t in found_tags)))

    if change.type is Source.EVENT_CREATE_UPDATE:
        status = event.event_status if event is not None else None
        add(
            f"event status {status!r}",
            tags.event_status_tags(status, account),
            "event_statuses",
        )
    elif change.type is Source.SESSION_REGISTRATION_STATUS_CHANGE:
        status = change.session.reg_session_status if change.session is not None else None
        add(
            f"session registration status {status!r}",
            tags.session_status_tags(status, account),
            "session_registration_statuses",
        )
    elif registration is not None:
        label = registration.registration_status_label
        add(
            f"registration status {label!r}",
            tags.status_tags(label, event, account),
            "registration_statuses",
        )
        if change.type is Source.REGISTRATION_CREATE_UPDATE:
            for name, prop_tags in tags.set_custom_property_tags(
                registration, event, account
            ).items():
                add(f"custom property {name!r}", prop_tags, "custom_registration_properties")
            standard = tags.standard_property_tags(registration)
            if standard:
                add("standard properties", standard, "standard_properties")
    return ChangeItems(found=found, items=tuple(items), entries=tuple(entries))


SelectedTags = dict[str, frozenset[str]]
"""A flow's activate-for lists, normalised: list name -> normalised tag names."""


def selected_tags(wanted: ActivateFor) -> SelectedTags:
    return {
        "event_statuses": _normalised(wanted.event_statuses),
        "session_registration_statuses": _normalised(wanted.session_registration_statuses),
        "registration_statuses": _normalised(wanted.registration_statuses),
        "custom_registration_properties": _normalised(wanted.custom_registration_properties),
        "standard_properties": _normalised(p.value for p in wanted.standard_properties),
    }


def _normalised(names: Iterable[str]) -> frozenset[str]:
    return frozenset(tags.normalise(name) for name in names)


def activation_of(selected: SelectedTags, items: ChangeItems) -> Activation:
    """The activation of a flow selecting `selected` by a change's items."""
    matched = frozenset(
        tag
        for _, selected_by, item_tags in items.entries
        for tag, key in item_tags
        if key in selected[selected_by]
    )
    return Activation(found=items.found, matched=matched, items=items.items)


def activation(flow: Flow, ctx: ChangeContext) -> Activation:
    """Which items of the change can activate a flow watching its source, and their tags."""
    return activation_of(selected_tags(flow.activate_for), change_items(ctx))


# --- filters -----------------------------------------------------------------------------------


def _norm(value: Any) -> str:
    return tags.normalise(to_text(value))


def _rule_values(rule: FieldFilter) -> list[str]:
    value = rule.value
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if rule.op is FilterOp.IN and isinstance(value, str):
        return [_norm(v) for v in value.split(",")]
    return [_norm(value)]


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list | dict):
        return not any(
            not _is_empty(v) for v in (value.values() if isinstance(value, dict) else value)
        )
    return not to_text(value).strip()


_TEXT_TESTS: dict[FilterOp, Callable[[str, str], bool]] = {
    FilterOp.EQUALS: lambda actual, wanted: actual == wanted,
    FilterOp.IN: lambda actual, wanted: actual == wanted,
    FilterOp.CONTAINS: lambda actual, wanted: wanted in actual,
    FilterOp.STARTS_WITH: lambda actual, wanted: actual.startswith(wanted),
    FilterOp.ENDS_WITH: lambda actual, wanted: actual.endswith(wanted),
}


def field_filter_holds(rule: FieldFilter, actual: Any) -> bool:
    if rule.op is FilterOp.IS_EMPTY:
        return _is_empty(actual)
    if rule.op is FilterOp.IS_NOT_EMPTY:
        return not _is_empty(actual)
    if rule.op is FilterOp.NOT_EQUALS:
        return not field_filter_holds(rule.model_copy(update={"op": FilterOp.EQUALS}), actual)
    test = _TEXT_TESTS[rule.op]
    wanted = _rule_values(rule)
    if isinstance(actual, list):
        # Membership: an element must satisfy the rule on its own.
        if rule.op is FilterOp.CONTAINS:
            test = _TEXT_TESTS[FilterOp.EQUALS]
        candidates = [_norm(a) for a in actual]
    else:
        candidates = [_norm(actual)]
    return any(test(a, w) for a in candidates for w in wanted)


def filter_holds(rule: Filter, ctx: ChangeContext) -> tuple[bool, Any]:
    """Whether the rule holds, and the value it was judged on (for the operator)."""
    if isinstance(rule, AttendeeTypeFilter):
        found = ctx.attendee_type_tags
        wanted = {tags.normalise(t) for t in rule.attendee_type_tags}
        holds = any(tags.normalise(t) in wanted for t in found)
        return holds, sorted(found)
    actual = ctx.lookup(rule.field)
    return field_filter_holds(rule, actual), actual


def first_failing_filter(filters: Sequence[Filter], ctx: ChangeContext) -> FilteredOut | None:
    """All rules must hold; the first that does not is the one reported."""
    for index, rule in enumerate(filters):
        holds, actual = filter_holds(rule, ctx)
        if not holds:
            return FilteredOut(rule_index=index, rule=rule, actual_value=actual)
    return None
