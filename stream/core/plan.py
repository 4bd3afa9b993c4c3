"""Every flow of an account against one change, at a cost that does not grow with the flows
that cannot match it.

A `FlowPlan` is worked out once per configuration (account) object: the flows that run (active
and complete, in configuration order, so completeness is not checked per change), grouped by
source and mode, and an index from each activate-for tag to the flows selecting it. Per change,
the change's items and tags are resolved once; only flows the index names (a found tag they
select) go on to filters and the destination. Every other flow gets, without being looked at,
the very outcome the flow-by-flow evaluation (`stream.core.evaluate.evaluate_in`) gives it: the
outcomes that do not depend on the flow (another account, an inactive registration, an unknown
event, no selected tag among the tags found) are one shared value per change, the source and
mode refusals one per source and mode. Only a change whose items carry no tag at all still
reads each flow's filters, since a filter that holds makes it a data failure.

The plan of an account is kept while that account object lives: a new configuration is a new
object (`stream.pipeline.snapshot`, and control replaces its account on every edit). Changing an
account in place after evaluating it is not seen, except for the list of flows being replaced or
growing; code that does so must call `forget_plan`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from config.completeness import is_complete
from config.models import Account, Flow, Mode, Source
from stream.core import matching
from stream.core.context import ChangeContext
from stream.core.results import Evaluation
from stream.core.steps import (
    after_activation,
    change_refusal,
    mode_refusal,
    not_activated_by_tags,
    source_refusal,
    untagged,
)

Runnable = Callable[[Flow], bool]
Single = tuple[int, Evaluation]
"""A flow's position in the plan and its own outcome."""
Shared = tuple[Evaluation, tuple[int, ...]]
"""One outcome and the positions of the flows it is the outcome of."""

MAX_UNMATCHED = 1024
"""Sets of unmatched flows kept per plan (`FlowPlan._without`)."""

MAX_PLANS = 16
"""Accounts whose plan is kept at once: a process evaluates one configuration at a time, tests
and previews a few more."""


@dataclass(frozen=True)
class FlowPlan:
    flows: tuple[Flow, ...]
    """The flows that run, in configuration order."""
    selected: tuple[matching.SelectedTags, ...]
    """Each flow's activate-for tags, normalised."""
    by_source: dict[Source, tuple[tuple[int, ...], tuple[int, ...]]]
    """Per source, the positions of its live flows and of its test flows."""
    index: dict[tuple[str, str], frozenset[int]]
    """(activate-for list, normalised tag) -> positions of the flows selecting it."""
    guard: tuple[int, int, int, int] = field(default=(0, 0, 0, 0))
    refused_by_source: dict[Source, tuple[Shared, ...]] = field(default_factory=dict)
    """Per change source, the source refusal of the flows watching another one: one value per
    watched source, with the positions of the flows it stands for."""
    watching: dict[Source, tuple[int, ...]] = field(default_factory=dict)
    """Per source, the positions of its live flows, then of its test flows."""
    unmatched: dict[tuple[tuple[int, ...], frozenset[int]], tuple[int, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    """(flows of a source and mode, flows a change's tags select) -> the first less the
    second (`_without`)."""
    memo: dict[object, Any] = field(default_factory=dict, compare=False, repr=False)
    """What callers derive from the plan's flows (the route step's shared-flow lists), kept
    for as long as the plan: keyed by what the caller chooses, never read here."""

    @classmethod
    def build(cls, account: Account, runnable: Runnable) -> FlowPlan:
        flows = tuple(flow for flow in account.flows if flow.active and runnable(flow))
        selected = tuple(matching.selected_tags(flow.activate_for) for flow in flows)
        grouped: dict[Source, tuple[list[int], list[int]]] = {s: ([], []) for s in Source}
        index: dict[tuple[str, str], set[int]] = {}
        for position, (flow, wanted) in enumerate(zip(flows, selected, strict=True)):
            if flow.source is not None:
                grouped[flow.source][flow.mode is Mode.TEST].append(position)
            for list_name, keys in wanted.items():
                for key in keys:
                    index.setdefault((list_name, key), set()).add(position)
        refused_by_source: dict[Source, tuple[Shared, ...]] = {}
        for source in Source:
            # One refusal per watched source: flows watching the same other source share it.
            shared: dict[Source | None, tuple[Evaluation, list[int]]] = {}
            for position, flow in enumerate(flows):
                refusal = source_refusal(flow, source)
                if refusal is not None:
                    shared.setdefault(flow.source, (refusal, []))[1].append(position)
            refused_by_source[source] = tuple(
                (refusal, tuple(positions)) for refusal, positions in shared.values()
            )
        return cls(
            flows=flows,
            selected=selected,
            by_source={s: (tuple(live), tuple(test)) for s, (live, test) in grouped.items()},
            index={key: frozenset(positions) for key, positions in index.items()},
            guard=_guard(account),
            refused_by_source=refused_by_source,
            watching={s: tuple(live + test) for s, (live, test) in grouped.items()},
        )

    def evaluate(self, ctx: ChangeContext) -> list[tuple[Flow, Evaluation]]:
        """Every flow of the plan against the change, each outcome what `evaluate_in` gives.

        Raises whatever a step raises; the caller then evaluates flow by flow, so each flow gets
        the outcome (or the recorded error) it would have had.
        """
        single, shared = self.evaluate_shared(ctx)
        results: list[Evaluation | None] = [None] * len(self.flows)
        for position, evaluation in single:
            results[position] = evaluation
        for evaluation, positions in shared:
            for position in positions:
                results[position] = evaluation
        return list(zip(self.flows, results, strict=True))  # type: ignore[arg-type]

    def evaluate_shared(self, ctx: ChangeContext) -> tuple[list[Single], list[Shared]]:
        """`evaluate` with the outcomes that do not depend on the flow given once for all the
        flows they stand for: (position, outcome) of each flow looked at on its own, and
        (outcome, positions) of each value several flows share, every flow in exactly one of
        them. The cost is one step per flow looked at and per shared value, plus the
        positions of the flows that found no tag of theirs (a set difference).

        Raises whatever a step raises, as `evaluate`.
        """
        change = ctx.change
        shared: list[Shared] = [group for group in self.refused_by_source[change.type] if group[1]]
        single: list[Single] = []
        live, test = self.by_source[change.type]
        if live or test:
            refused = change_refusal(ctx)
            if refused is not None:
                shared.append((refused, self.watching[change.type]))
            else:
                reasons = matching.reasons_for_test_mode(change, ctx.event)
                accepted, other = (test, live) if reasons else (live, test)
                if other:
                    shared.append((mode_refusal(reasons), other))
                if accepted:
                    self._activate(ctx, accepted, single, shared)
        return single, shared

    def _activate(
        self,
        ctx: ChangeContext,
        positions: tuple[int, ...],
        single: list[Single],
        shared: list[Shared],
    ) -> None:
        items = matching.change_items(ctx)
        candidates: set[int] = set()
        for _, selected_by, item_tags in items.entries:
            for _, key in item_tags:
                candidates.update(self.index.get((selected_by, key), ()))
        if items.any_found:
            for position in positions:
                if position in candidates:
                    activation = matching.activation_of(self.selected[position], items)
                    single.append(
                        (position, after_activation(ctx, self.flows[position], activation))
                    )
            unmatched = positions if not candidates else self._without(positions, candidates)
            if unmatched:
                shared.append((not_activated_by_tags(_no_match(items)), unmatched))
            return
        for position in positions:
            flow = self.flows[position]
            if position in candidates:
                activation = matching.activation_of(self.selected[position], items)
                single.append((position, after_activation(ctx, flow, activation)))
            else:
                failed = matching.first_failing_filter(flow.filters, ctx)
                single.append(
                    (
                        position,
                        failed if failed is not None else untagged(_no_match(items), ctx.change),
                    )
                )

    def _without(self, positions: tuple[int, ...], candidates: set[int]) -> tuple[int, ...]:
        """`positions` less `candidates`, kept per pair: changes select a few sets of flows
        over and over, and the plan's flows do not change."""
        key = (positions, frozenset(candidates))
        kept = self.unmatched.get(key)
        if kept is None:
            if len(self.unmatched) >= MAX_UNMATCHED:
                self.unmatched.clear()
            kept = self.unmatched[key] = tuple(p for p in positions if p not in candidates)
        return kept


def _no_match(items: matching.ChangeItems) -> matching.Activation:
    return matching.Activation(found=items.found, matched=frozenset(), items=items.items)


def _guard(account: Account) -> tuple[int, int, int, int]:
    """What an edit in place most likely touches: the flow list (replaced or grown), the
    connections and mappings lists completeness reads."""
    return (id(account.flows), len(account.flows), id(account.connections), id(account.mappings))


_plans: dict[int, tuple[weakref.ref[Account], FlowPlan]] = {}


def plan_for(account: Account) -> FlowPlan:
    """The plan of `account` with `config.completeness` deciding which flows run."""
    key = id(account)
    kept = _plans.get(key)
    if kept is not None and kept[0]() is account and kept[1].guard == _guard(account):
        return kept[1]
    plan = FlowPlan.build(account, lambda flow: is_complete(flow, account))
    if len(_plans) >= MAX_PLANS:
        del _plans[next(iter(_plans))]
    _plans[key] = (weakref.ref(account, lambda _: _plans.pop(key, None)), plan)
    return plan


def forget_plan(account: Account) -> None:
    """Plan `account` afresh at its next evaluation (after changing it in place)."""
    _plans.pop(id(account), None)
