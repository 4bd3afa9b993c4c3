"""Evaluate one change against one flow: the whole decision before any Marketo call.

The steps follow DESIGN 5 and stop at the first that decides: the flow's source, the account,
an inactive (soft-deleted) registration, an event the catalog does not know, live/test mode,
activate-for tags, filters, then mapping, campaign or form. The result is a value, never an
exception, so the pipeline, previews, replays and dry runs can all record it as it is.
`evaluate_all` takes every flow at once through a plan (`stream.core.plan`), which gives each
flow the outcome `evaluate_in` gives it while only looking closely at flows that can match.

Registrations whose event is not in the catalog are not activated: without the event, Signal
cannot tell whether the event is in test mode, and sending test data to a live Marketo program is
worse than holding a change until the event is known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from config.completeness import is_complete
from config.models import Account, Flow
from stream.certain.events import ChangeEvent
from stream.core import matching
from stream.core.catalog import EventCatalog
from stream.core.context import ChangeContext, build_context
from stream.core.plan import FlowPlan, Shared, Single, plan_for
from stream.core.results import Evaluation
from stream.core.steps import (
    UNTAGGED_FIELDS,
    after_activation,
    change_refusal,
    mode_refusal,
    source_refusal,
    unexpected,
)

__all__ = [
    "UNTAGGED_FIELDS",
    "Evaluated",
    "Runnable",
    "default_runnable",
    "evaluate",
    "evaluate_all",
    "evaluate_all_shared",
    "evaluate_in",
]

Runnable = Callable[[Flow], bool]


def evaluate(
    change: ChangeEvent, flow: Flow, account: Account, catalog: EventCatalog
) -> Evaluation:
    try:
        return evaluate_in(build_context(change, account, catalog), flow)
    except Exception as error:  # a bug must become a recorded outcome, not a lost change
        return unexpected(error)


def evaluate_all(
    change: ChangeEvent,
    account: Account,
    catalog: EventCatalog,
    is_runnable: Runnable | None = None,
) -> list[tuple[Flow, Evaluation]]:
    """Every active, complete flow of the account against one change, in configuration order.

    With the default rule for what runs, the account's plan is reused from change to change;
    another `is_runnable` is asked afresh."""
    plan = plan_for(account) if is_runnable is None else FlowPlan.build(account, is_runnable)
    if not plan.flows:
        return []
    try:
        ctx = build_context(change, account, catalog)
    except Exception as error:
        failure = unexpected(error)
        return [(flow, failure) for flow in plan.flows]
    try:
        return plan.evaluate(ctx)
    except Exception:
        # Flow by flow, so each gets the outcome (or its own recorded error) it always had.
        return [(flow, _guarded(ctx, flow)) for flow in plan.flows]


@dataclass(frozen=True)
class Evaluated:
    """Every runnable flow of an account against one change, the outcomes several flows share
    given once (`FlowPlan.evaluate_shared`): positions are in `plan.flows`."""

    plan: FlowPlan
    single: list[Single] = field(default_factory=list)
    shared: list[Shared] = field(default_factory=list)


def evaluate_all_shared(change: ChangeEvent, account: Account, catalog: EventCatalog) -> Evaluated:
    """`evaluate_all` (default rule for what runs) with the shared outcomes given once for the
    flows they stand for, so a caller can record them at a cost that does not grow with those
    flows. A step that raises gives each flow its own outcome, as `evaluate_all` does."""
    plan = plan_for(account)
    if not plan.flows:
        return Evaluated(plan)
    try:
        ctx = build_context(change, account, catalog)
    except Exception as error:
        return Evaluated(plan, shared=[(unexpected(error), tuple(range(len(plan.flows))))])
    try:
        single, shared = plan.evaluate_shared(ctx)
    except Exception:
        return Evaluated(
            plan, single=[(p, _guarded(ctx, flow)) for p, flow in enumerate(plan.flows)]
        )
    return Evaluated(plan, single, shared)


def _guarded(ctx: ChangeContext, flow: Flow) -> Evaluation:
    try:
        return evaluate_in(ctx, flow)
    except Exception as error:
        return unexpected(error)


def default_runnable(account: Account) -> Runnable:
    """A flow runs when `config.completeness` finds nothing missing (the rule the console and
    the API show an incomplete flow's reasons by)."""
    return lambda flow: is_complete(flow, account)


def evaluate_in(ctx: ChangeContext, flow: Flow) -> Evaluation:
    """`evaluate` for a prepared context (built once per change, reused across flows)."""
    refused = source_refusal(flow, ctx.change.type) or change_refusal(ctx)
    if refused is not None:
        return refused
    reasons = matching.reasons_for_test_mode(ctx.change, ctx.event)
    if not matching.mode_accepts(flow, bool(reasons)):
        return mode_refusal(reasons)
    return after_activation(ctx, flow, matching.activation(flow, ctx))
