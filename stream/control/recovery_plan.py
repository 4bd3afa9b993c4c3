"""Recovery's decisions: which overdue pairs to re-drive, which unrouted changes some flow
would act on, when a deferral is given up on, and the policy that bounds them all.

Apart from the service (`stream.control.recovery`) because these are pure functions of ledger
rows, configuration and a clock: no broker, no DuckDB, testable with plain values. An evaluation
that rests on an event control's catalog does not hold is `Untrusted` and decides nothing (the
change is deferred), never "nothing expected".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from config.models import Account, Flow
from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog
from stream.core.evaluate import evaluate_all
from stream.core.results import NotActivated, NotActivatedCode
from stream.messages import FailureCategory, OutcomeRecord, OutcomeStatus
from stream.store.recovery import DEFERRED_MARKER, RecoveryEntry

__all__ = [
    "KIND",
    "Decision",
    "RecoveryPolicy",
    "UnroutedPlan",
    "Untrusted",
    "decide",
    "deferral_outcomes",
    "deferral_start",
    "expected_flows",
    "plan_unrouted",
    "span",
    "waiting_flows",
    "within_grace",
    "within_horizon",
]

KIND = "recovery"


@dataclass(frozen=True)
class RecoveryPolicy:
    grace: timedelta = timedelta(seconds=60)
    """How long a change or queued pair may wait for its outcome before recovery re-drives it,
    and how long its first redrive waits for an answer (`redrive_wait`)."""
    horizon: timedelta = timedelta(days=7)
    """Only changes received this recently are looked at."""
    every_s: float = 15.0
    max_redrives: int = 5
    batch_size: int = 2000
    publish_timeout_s: float = 30.0
    """A publish the broker has not acknowledged by then fails the scan."""
    reseed_chunk: int = 20_000
    """Delivered keys sent (and acknowledged) per round trip when re-seeding."""
    defer_max: timedelta = timedelta(hours=1)
    """How long a change may stay deferred (since it was first deferred) before it is given up
    on and recorded as failed."""
    defer_limit: int = 10_000
    """How many changes may wait deferred at once; one more is given up on at once."""

    def redrive_wait(self, redrives: int) -> timedelta:
        """How long a pair re-driven `redrives` times waits for its outcome before the next
        redrive (or before it is given up on): the grace after the first, doubled after each
        further one, at most the horizon. A redrive that is only slow (a pipeline working
        through a backlog, a machine under load) then gets ever more time instead of being
        sent again every grace and given up on within a few minutes; with the defaults (60 s,
        5 redrives) a pair is stranded after 31 minutes without an answer."""
        doubled: timedelta = self.grace * (2 ** max(0, redrives - 1))
        return min(doubled, self.horizon)

    def __post_init__(self) -> None:
        if self.grace <= timedelta(0):
            raise ValueError("the recovery grace must be positive")
        if self.horizon <= self.grace:
            raise ValueError("the recovery horizon must be longer than the grace")
        if self.every_s <= 0:
            raise ValueError("the recovery period must be positive")
        if self.max_redrives < 1:
            raise ValueError("max_redrives must be at least 1")
        if self.batch_size < 1 or self.reseed_chunk < 1:
            raise ValueError("batch sizes must be at least 1")
        if self.defer_max <= timedelta(0):
            raise ValueError("the longest deferral must be positive")
        if self.defer_limit < 0:
            raise ValueError("defer_limit cannot be negative")


class Decision(StrEnum):
    WAIT = "wait"
    REDRIVE = "redrive"
    STRANDED = "stranded"


def within_grace(
    moment: datetime, now: datetime, grace: timedelta, lost_before: datetime | None = None
) -> bool:
    """Whether something that happened at `moment` may still be under way, so that recovery
    waits for it: it is younger than `grace`, and not from before `lost_before`.

    `lost_before` is when the broker this control runs against was started empty (`csignal
    run`'s embedded broker at the run's start, after it healed or rolled over): what was routed,
    re-driven or delivered before then went with the old broker and its pipeline, so nothing
    of it is in flight and waiting out the grace would only stall it."""
    if lost_before is not None and moment < lost_before:
        return False
    return moment >= now - grace


def decide(
    since: datetime,
    entry: RecoveryEntry | None,
    now: datetime,
    policy: RecoveryPolicy,
    lost_before: datetime | None = None,
) -> Decision:
    """What to do with one pair that has no final outcome, pending since `since`.

    Within the grace (`within_grace`), re-driven less than `policy.redrive_wait` ago, or already
    given up on: wait. Re-driven `max_redrives` times already: stranded. Otherwise: re-drive.
    """
    if within_grace(since, now, policy.grace, lost_before):
        return Decision.WAIT
    if entry is not None:
        if entry.stranded_at is not None:
            return Decision.WAIT
        if within_grace(entry.last_at, now, policy.redrive_wait(entry.redrives), lost_before):
            return Decision.WAIT
        if entry.redrives >= policy.max_redrives:
            return Decision.STRANDED
    return Decision.REDRIVE


def within_horizon(received_at: datetime, now: datetime, policy: RecoveryPolicy) -> bool:
    return received_at >= now - policy.horizon


@dataclass(frozen=True)
class UnroutedPlan:
    """For one unrouted change: the flows to re-drive and to give up on, why nothing is
    expected of it, or why it cannot be decided yet (`deferred`)."""

    redrive: tuple[str, ...] = ()
    stranded: tuple[str, ...] = ()
    nothing_expected: str | None = None
    deferred: str | None = None


class Untrusted(Exception):
    """The evaluation rests on something control does not know yet; decide nothing now."""


def expected_flows(change: ChangeEvent, account: Account, catalog: EventCatalog) -> list[str]:
    """Active, complete flows that would act on `change` (anything but not activated).

    Raises `Untrusted` when a flow is not activated only because the change's event is not in
    `catalog`: whether it acts depends on the event, which control has not seen (yet).
    """
    flows = []
    for flow, evaluation in evaluate_all(change, account, catalog):
        if not isinstance(evaluation, NotActivated):
            flows.append(flow.id)
        elif evaluation.code is NotActivatedCode.UNKNOWN_EVENT:
            raise Untrusted(
                f"event {change.event_code} is not in control's catalog, so whether flow "
                f"{flow.id} acts on this change is not known yet"
            )
    return flows


def plan_unrouted(
    change: ChangeEvent | str,
    since: datetime,
    entries: Mapping[str, RecoveryEntry],
    account: Account,
    catalog: EventCatalog,
    now: datetime,
    policy: RecoveryPolicy,
    lost_before: datetime | None = None,
) -> UnroutedPlan:
    """`change` is the parsed archive, or why it no longer parses; `lost_before` as for
    `within_grace`."""
    if within_grace(since, now, policy.grace, lost_before):
        return UnroutedPlan()  # nothing is decided within the grace
    if isinstance(change, str):
        return UnroutedPlan(nothing_expected=change)
    try:
        flows = expected_flows(change, account, catalog)
    except Untrusted as why:
        return UnroutedPlan(deferred=str(why))
    if not flows:
        return UnroutedPlan(nothing_expected="no active, complete flow acts on this change")
    redrive: list[str] = []
    stranded: list[str] = []
    for flow_id in flows:
        decision = decide(since, entries.get(flow_id), now, policy, lost_before)
        if decision is Decision.REDRIVE:
            redrive.append(flow_id)
        elif decision is Decision.STRANDED:
            stranded.append(flow_id)
    return UnroutedPlan(tuple(redrive), tuple(stranded))


def waiting_flows(change: ChangeEvent, account: Account, catalog: EventCatalog) -> list[Flow]:
    """The active, complete flows that are not activated only because `change`'s event is not
    in `catalog`: the flows a deferred change waits for."""
    return [
        flow
        for flow, evaluation in evaluate_all(change, account, catalog)
        if isinstance(evaluation, NotActivated)
        and evaluation.code is NotActivatedCode.UNKNOWN_EVENT
    ]


def deferral_outcomes(
    change: ChangeEvent, flows: Sequence[Flow], reason: str, now: datetime
) -> list[OutcomeRecord]:
    """The `failed` outcome of each flow a given-up deferral waited for: a data failure (the
    event is missing, retrying cannot help until it is known), held for an operator."""
    return [
        OutcomeRecord(
            change_id=change.change_id,
            flow_id=flow.id,
            flow_name=flow.name,
            mode=flow.mode.value,
            registration_code=change.registration_code,
            event_code=change.event_code,
            status=OutcomeStatus.FAILED,
            category=FailureCategory.DATA,
            reason=reason[:500],
            retryable=False,
            occurred_at=change.occurred_at,
            processed_at=now,
            redrive_kind=KIND,
        )
        for flow in flows
    ]


def deferral_start(entries: Mapping[str, RecoveryEntry], now: datetime) -> datetime:
    """Since when a change waits deferred: its deferral's first time, or now (a new one)."""
    entry = entries.get(DEFERRED_MARKER)
    if entry is None:
        return now
    return entry.first_at or entry.last_at


def span(value: timedelta) -> str:
    """A duration for a reason text, to the second (`1:00:00`)."""
    return str(timedelta(seconds=round(value.total_seconds())))
