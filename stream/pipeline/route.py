"""From one change (or a redrive of one) to outcomes and delivery requests.

Pure: the configuration and catalog come in as values, time comes in as arguments, nothing is
sent. The route agent publishes what this returns; previews and tests call it directly.

Every (change, flow) pair evaluated gets exactly one result here: an `OutcomeRecord` for what is
decided without Marketo (not activated, filtered out, data failure, dry run), or a
`DeliveryRequest` whose outcome the deliver step publishes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config.completeness import completeness
from config.models import Account, Flow
from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog
from stream.core.evaluate import default_runnable, evaluate, evaluate_all_shared
from stream.core.plan import FlowPlan
from stream.core.results import DataFailure, Evaluation, FilteredOut, Mapped, NotActivated
from stream.messages import (
    DeliveryRequest,
    FailureCategory,
    OutcomeRecord,
    OutcomeStatus,
    Redrive,
    SharedFlows,
)

__all__ = ["ROUTE_FLOW", "Routed", "latency_ms", "route_change", "route_failure"]

ROUTE_FLOW = "(route)"
"""`flow_id` of a routing failure that could not be tied to any flow (see `route_failure`)."""


@dataclass
class Routed:
    """What one change produced: outcomes decided now, and actions for delivery."""

    records: list[OutcomeRecord] = field(default_factory=list)
    """The outcomes decided now as they are published: a record with `also` flows is the
    outcome of each of them too (`OutcomeRecord.pairs`)."""
    deliveries: list[DeliveryRequest] = field(default_factory=list)

    @property
    def outcomes(self) -> list[OutcomeRecord]:
        """One record per (change, flow) pair decided now."""
        return [pair for record in self.records for pair in record.pairs()]

    def pairs(self) -> int:
        """How many (change, flow) pairs `records` decide."""
        return sum(1 + record.shared_count() for record in self.records)

    def extend(self, other: Routed) -> None:
        self.records.extend(other.records)
        self.deliveries.extend(other.deliveries)


def latency_ms(change_time: datetime, received_at: datetime | None, done: datetime) -> float:
    """Milliseconds from when Signal received the change (else when it occurred) to `done`.

    The receive time is what Signal controls; `occurredAt` comes from Certain's clock and, for
    replays of old changes, says nothing about Signal's speed.
    """
    start = received_at if received_at is not None else change_time
    return max(0.0, (done - start).total_seconds() * 1000.0)


def route_change(
    change: ChangeEvent,
    account: Account,
    catalog: EventCatalog,
    *,
    now: datetime,
    received_at: datetime | None = None,
    redrive: Redrive | None = None,
) -> Routed:
    """Evaluate `change` against every active, complete flow (or the redrive's flow only)."""
    make = _Outcomes(change, redrive, now=now, received_at=received_at)
    routed = Routed()
    if redrive is None:
        evaluated = evaluate_all_shared(change, account, catalog)
        flows = evaluated.plan.flows
        for position, evaluation in evaluated.single:
            _one(routed, make, flows[position], evaluation)
        for evaluation, positions in evaluated.shared:
            if isinstance(evaluation, NotActivated) and len(positions) > 1:
                # The plan's own list, not a validated copy: its JSON is written once
                # (`OutcomeRecord.dumps`).
                also = _shared_flows(evaluated.plan, positions)
                routed.records.append(
                    make.decided(
                        flows[positions[0]],
                        OutcomeStatus.NOT_ACTIVATED,
                        evaluation.reason,
                        also,
                    )
                )
            else:
                for position in positions:
                    _one(routed, make, flows[position], evaluation)
        return routed
    flow = account.flow(redrive.flow_id)
    refusal = _redrive_refusal(flow, redrive, account)
    if refusal is not None or flow is None:
        outcome = make(flow, OutcomeStatus.NOT_ACTIVATED, reason=refusal, flow_id=redrive.flow_id)
        return Routed(records=[outcome])
    _one(routed, make, flow, evaluate(change, flow, account, catalog))
    return routed


_MEMO_KEY = "route.also"
_MEMO_MAX = 512
"""Shared-flow lists kept per plan: one per distinct set of flows sharing an outcome (a few per
source and mode, and one per set of flows a change's tags selected)."""


def _shared_flows(plan: FlowPlan, positions: tuple[int, ...]) -> list[SharedFlows]:
    """The `also` entries of the flows at `positions` but the first (whose record it is),
    built once per plan and set of flows: a change's record then costs nothing per flow that
    cannot match it. Flows with the same mode, action and connection go together."""
    memo: dict[tuple[int, ...], list[SharedFlows]] = plan.memo.setdefault(_MEMO_KEY, {})
    kept = memo.get(positions)
    if kept is None:
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        groups: dict[tuple[str, str | None, str | None], list[tuple[str, str]]] = {}
        for position in positions[1:]:
            flow = plan.flows[position]
            action = flow.destination.action
            key = (
                flow.mode.value,
                action.value if action is not None else None,
                flow.destination.connection,
            )
            groups.setdefault(key, []).append((flow.id, flow.name))
        kept = memo[positions] = [
            SharedFlows(mode=mode, action=action, connection_id=connection, flows=flows)
            for (mode, action, connection), flows in groups.items()
        ]
    return kept


def route_failure(
    change: ChangeEvent,
    account: Account | None,
    *,
    reason: str,
    now: datetime,
    received_at: datetime | None = None,
    redrive: Redrive | None = None,
) -> Routed:
    """Failed outcomes (technical, retryable) for a change whose routing broke unexpectedly, so
    the ledger holds it instead of a log line.

    One outcome per flow the change would have been evaluated for: the redrive's flow, or every
    active, complete flow of the account. Per flow rather than one record for the whole change,
    because the ledger's state, retry queue and recovery work per (change, flow): a retry
    re-drives each pair through routing again, exactly as for a Marketo failure. Only when no
    flow can be named (no account yet, none active, or the flows themselves cannot be read) is
    the outcome a single record with flow id `ROUTE_FLOW`, which an operator sees in `outcomes`;
    it is not retryable (a retry of an unknown flow would only be refused): the operator replays
    the change once the cause is fixed.
    """
    flows: list[Flow] = []
    names: list[tuple[Flow | None, str]]
    if redrive is not None:
        flow = account.flow(redrive.flow_id) if account is not None else None
        names = [(flow, redrive.flow_id)]
    else:
        try:
            if account is not None:
                runnable = default_runnable(account)
                flows = [flow for flow in account.flows if flow.active and runnable(flow)]
        except Exception:
            flows = []
        names = [(flow, flow.id) for flow in flows] or [(None, ROUTE_FLOW)]
    make = _Outcomes(change, redrive, now=now, received_at=received_at)
    return Routed(
        records=[
            make(
                flow,
                OutcomeStatus.FAILED,
                flow_id=flow_id,
                category=FailureCategory.TECHNICAL,
                reason=reason,
                retryable=flow_id != ROUTE_FLOW,
            )
            for flow, flow_id in names
        ]
    )


def _redrive_refusal(flow: Flow | None, redrive: Redrive, account: Account) -> str | None:
    if flow is None:
        return f"flow {redrive.flow_id!r} no longer exists; nothing to {redrive.kind}"
    if not flow.active:
        return f"flow {flow.id!r} is inactive; activate it to {redrive.kind}"
    missing = completeness(flow, account)
    if missing:
        return f"flow {flow.id!r} is incomplete: {'; '.join(missing)}"
    return None


MAX_DELIVERY_BYTES = 512 * 1024
"""The most a delivery's fields and tokens may hold, written as JSON. Marketo takes at most 1 MB
a request (300 leads), and a delivery request must fit the broker's 1 MiB record: a transform
that grows a registrant's long value past it (`proper` triples some letters) made a request no
publish could clear, retried for ever, the route stage stuck behind it."""


def oversize_delivery(mapped: Mapped) -> str | None:
    """Why `mapped` is too big to deliver, or None. Counted in characters first (a JSON text is
    at most six bytes a character), in bytes only when that bound is not enough."""
    parts = (mapped.payload, mapped.tokens)
    chars = sum(len(k) + len(v) for part in parts for k, v in part.items())
    if chars * 6 <= MAX_DELIVERY_BYTES:
        return None
    size = sum(len(json.dumps(part, ensure_ascii=False).encode()) for part in parts)
    if size <= MAX_DELIVERY_BYTES:
        return None
    field, value = max(
        ((k, v) for part in parts for k, v in part.items()), key=lambda kv: len(kv[1])
    )
    return (
        f"the mapped fields are {size:,} bytes (largest {field!r}, {len(value):,} characters); "
        f"at most {MAX_DELIVERY_BYTES:,} bytes go to Marketo in one delivery"
    )


def _one(routed: Routed, make: _Outcomes, flow: Flow, evaluation: Evaluation) -> None:
    """Add the outcome or the delivery request of one (change, flow) pair to `routed`."""
    if isinstance(evaluation, NotActivated):
        routed.records.append(make.decided(flow, OutcomeStatus.NOT_ACTIVATED, evaluation.reason))
        return
    if isinstance(evaluation, FilteredOut):
        routed.records.append(make.decided(flow, OutcomeStatus.FILTERED_OUT, evaluation.reason))
        return
    if isinstance(evaluation, DataFailure):
        where = f"{evaluation.field}: " if evaluation.field else ""
        routed.records.append(
            make(
                flow,
                OutcomeStatus.FAILED,
                category=FailureCategory.DATA,
                reason=where + evaluation.reason,
            )
        )
        return
    assert isinstance(evaluation, Mapped)
    too_big = oversize_delivery(evaluation)
    if too_big is not None:
        routed.records.append(
            make(flow, OutcomeStatus.FAILED, category=FailureCategory.DATA, reason=too_big)
        )
        return
    change, redrive, now = make.change, make.redrive, make.now
    if redrive is not None and redrive.dry_run:
        routed.records.append(
            make(
                flow,
                OutcomeStatus.WOULD_SEND,
                action=evaluation.action.value,
                connection_id=evaluation.connection_id,
                reason=f"dry run: would send {evaluation.reason}",
                payload=dict(evaluation.payload),
                campaign_id=evaluation.campaign_id,
                form_id=evaluation.form_id,
            )
        )
        return
    form = flow.destination.form
    routed.deliveries.append(
        DeliveryRequest(
            change_id=change.change_id,
            flow_id=flow.id,
            flow_name=flow.name,
            mode=flow.mode.value,
            connection_id=evaluation.connection_id,
            action=evaluation.action.value,
            registration_code=change.registration_code,
            event_code=change.event_code,
            occurred_at=change.occurred_at,
            routed_at=now,
            received_at=make.received_at,
            payload=dict(evaluation.payload),
            lookup_field=evaluation.lookup_field,
            campaign_id=evaluation.campaign_id,
            form_id=evaluation.form_id,
            program_id=(
                evaluation.program_id
                if evaluation.program_id is not None
                else form.program_id
                if form is not None
                else None
            ),
            program_status=evaluation.program_status,
            tokens=dict(evaluation.tokens),
            attempt=redrive.attempt if redrive is not None else 1,
            redrive_kind=redrive.kind if redrive is not None else None,
            replay_id=redrive.replay_id if redrive is not None else None,
        )
    )


class _Outcomes:
    """Outcome records of one change: the fields every flow's record shares (the change's,
    the redrive's, the times and the latency) worked out once per change instead of once per
    flow, which with three flows was a fifth of routing a change."""

    def __init__(
        self,
        change: ChangeEvent,
        redrive: Redrive | None,
        *,
        now: datetime,
        received_at: datetime | None,
    ) -> None:
        self.change = change
        self.redrive = redrive
        self.now = now
        self.received_at = received_at
        self.common: dict[str, Any] = {
            "change_id": change.change_id,
            "registration_code": change.registration_code,
            "event_code": change.event_code,
            "attempt": redrive.attempt if redrive is not None else 1,
            "occurred_at": change.occurred_at,
            "processed_at": now,
            "latency_ms": latency_ms(change.occurred_at, received_at, now),
            "redrive_kind": redrive.kind if redrive is not None else None,
            "replay_id": redrive.replay_id if redrive is not None else None,
        }
        self.first: OutcomeRecord | None = None
        """The change's first not-activated or filtered-out record (`decided`)."""

    def decided(
        self,
        flow: Flow,
        status: OutcomeStatus,
        reason: str,
        also: list[SharedFlows] | None = None,
    ) -> OutcomeRecord:
        """The not-activated or filtered-out record of `flow` (of `also` too): the change's
        first such record is validated, the others are copies of it with their own flow,
        status and reason, the very values validation gives (text and the status enum), for
        about a third of the cost."""
        first = self.first
        if first is None:
            first = self.first = self(flow, status, reason=reason)
            return first if not also else first.model_copy(update={"also": also})
        action = flow.destination.action
        update: dict[str, Any] = {
            "flow_id": flow.id,
            "flow_name": flow.name,
            "mode": flow.mode.value,
            "status": status,
            "reason": reason,
            "action": action.value if action is not None else None,
            "connection_id": flow.destination.connection,
        }
        if also:
            update["also"] = also
        return first.model_copy(update=update)

    def __call__(
        self,
        flow: Flow | None,
        status: OutcomeStatus,
        *,
        flow_id: str | None = None,
        **fields: Any,
    ) -> OutcomeRecord:
        """The record of `flow` (or of `flow_id` when the flow cannot be read): the flow's
        destination gives the action and connection unless `fields` name them."""
        if flow is not None:
            destination = flow.destination
            if fields.get("action") is None:
                fields["action"] = (
                    destination.action.value if destination.action is not None else None
                )
            if fields.get("connection_id") is None:
                fields["connection_id"] = destination.connection
            return OutcomeRecord.model_validate(
                {
                    **self.common,
                    "flow_id": flow.id,
                    "flow_name": flow.name,
                    "mode": flow.mode.value,
                    "status": status,
                    **fields,
                }
            )
        return OutcomeRecord.model_validate(
            {
                **self.common,
                "flow_id": flow_id,
                "flow_name": flow_id or "",
                "mode": "live",
                "status": status,
                **fields,
            }
        )
