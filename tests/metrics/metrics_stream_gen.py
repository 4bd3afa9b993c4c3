"""A deterministic recorded stream for the metrics tests, and its figures counted in Python.

The generator decides each (change, flow) pair's story (not activated for a known reason,
filtered out, delivered, failed and retried, held as a data failure, parked …) and writes the
rows the control service would record for it. The expected figures are counted from those
stories directly — from the reason *codes* chosen here, never by classifying reason text or by
running SQL — so a wrong query cannot agree with them by construction.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stream.store import ApiCallRow, ChangeRow, OutcomeRow, RejectedRow, RetryItem
from stream.store.rows import FailureCategory, Mode, OutcomeStatus, RetryStatus
from stream.store.store import LEDGER_ONLY_STATUSES
from tests.support.changes import change_row, registration_json

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FlowDef:
    flow_id: str
    mode: Mode
    action: str
    connection_id: str
    active: bool


FLOWS = (
    FlowDef("f-lead", "live", "create_update_lead", "c1", True),
    FlowDef("f-camp", "live", "trigger_campaign", "c1", True),
    FlowDef("f-form", "live", "form_post", "c2", True),
    FlowDef("f-old", "live", "create_update_lead", "c2", False),
    FlowDef("t-lead", "test", "create_update_lead", "c1", True),
    FlowDef("t-form", "test", "form_post", "c2", True),
)
RATE_SHARES = {"c1": 0.5, "c2": 1.0}

NOT_ACTIVATED_TEXTS = {
    "source": "flow watches registration.status_change; this is a event.create_update change",
    "mode": "live data; a test flow takes only test registrations and test events",
    "no_matching_tag": "no activate-for tag matched (found status Attended: VIP)",
    "unknown_event": "event EV9 is not in the catalog yet (no event.create_update received), "
    "so its test mode and setup are unknown",
    "inactive_registration": "registration R0001 is inactive (deleted)",
    "quota_hold": "quota_hold: waiting for the daily quota",
    "other": "Something the classifier has never seen",
}


@dataclass
class Attempt:
    row: OutcomeRow


@dataclass
class Pair:
    change_id: str
    flow: FlowDef
    registration_code: str | None
    attempts: list[OutcomeRow] = field(default_factory=list)
    code: str | None = None
    """The reason code this story was generated with (not-triggered outcomes)."""
    retry: RetryItem | None = None

    @property
    def state(self) -> OutcomeRow:
        """The newest attempt that changes the pair: ledger-only rows never do, and neither
        does a replayed row once the pair was delivered (the first delivery stays its state)."""
        state: OutcomeRow | None = None
        for a in self.attempts:
            if a.status in LEDGER_ONLY_STATUSES:
                continue
            if a.replayed and state is not None and state.status == "delivered":
                continue
            state = a
        assert state is not None
        return state


@dataclass
class Stream:
    changes: list[ChangeRow]
    pairs: list[Pair]
    rejected: list[RejectedRow]
    calls: list[ApiCallRow]

    @property
    def outcome_rows(self) -> list[OutcomeRow]:
        return [a for p in self.pairs for a in p.attempts]

    @property
    def retry_items(self) -> list[RetryItem]:
        return [p.retry for p in self.pairs if p.retry is not None]


def generate(seed: int = 7, changes: int = 360) -> Stream:
    rnd = random.Random(seed)
    change_rows: list[ChangeRow] = []
    pairs: list[Pair] = []
    for i in range(changes):
        change_id = f"chg-{i:05d}"
        is_test = rnd.random() < 0.3
        registration = None if rnd.random() < 0.05 else f"R{rnd.randrange(120):04d}"
        occurred = NOW - timedelta(seconds=rnd.uniform(0, 9 * 86400))
        data = registration_json(
            change_id,
            event_code=f"EV{i % 5}",
            code=registration or "R-unknown",
            is_test=is_test,
            occurred_at=occurred,
        )
        row = change_row(data, source="topic")  # received a second after it occurred
        # Some changes carry no registration code: the figures must cope with that.
        change_rows.append(
            dataclasses.replace(row, registration_code=registration, is_test=is_test)
        )
        mode = "test" if is_test else "live"
        for flow in FLOWS:
            if flow.mode != mode or not flow.active:
                continue
            pairs.append(_story(rnd, change_id, flow, registration, occurred))
    rejected = [
        RejectedRow(
            received_at=NOW - timedelta(seconds=rnd.uniform(0, 9 * 86400)),
            reasons=("changeId: field required",),
            payload="{not json",
        )
        for _ in range(40)
    ]
    return Stream(change_rows, pairs, rejected, _calls(rnd))


def _story(
    rnd: random.Random, change_id: str, flow: FlowDef, registration: str | None, occurred: datetime
) -> Pair:
    pair = Pair(change_id, flow, registration)
    at = occurred + timedelta(seconds=rnd.uniform(0.5, 5))

    def attempt(status: OutcomeStatus, when: datetime, **kw: Any) -> None:
        pair.attempts.append(
            OutcomeRow(
                change_id=change_id,
                flow_id=flow.flow_id,
                flow_name=f"Flow {flow.flow_id}",
                mode=flow.mode,
                status=status,
                occurred_at=occurred,
                processed_at=when,
                attempt=len(pair.attempts) + 1,
                registration_code=registration,
                event_code="EV1",
                action=flow.action,
                connection_id=flow.connection_id,
                latency_ms=(when - occurred).total_seconds() * 1000,
                **kw,
            )
        )

    def delivered(when: datetime, **kw: Any) -> None:
        result = "form_posted" if flow.action == "form_post" else rnd.choice(("created", "updated"))
        attempt(
            "delivered", when, lead_result=result, marketo_lead_id=rnd.randrange(1, 10**6), **kw
        )

    def retry(
        status: RetryStatus, category: FailureCategory, created: datetime, updated: datetime, n: int
    ) -> None:
        pair.retry = RetryItem(
            change_id=change_id,
            flow_id=flow.flow_id,
            flow_name=f"Flow {flow.flow_id}",
            integration=flow.connection_id,
            status=status,
            category=category,
            attempts=n,
            reason="HTTP 503" if category == "technical" else "required field 'email' is empty",
            created_at=created,
            updated_at=updated,
            next_attempt_at=updated + timedelta(minutes=5) if status == "retrying" else None,
        )

    story = rnd.choices(
        ["not_activated", "filtered", "delivered", "technical", "data", "parked", "dup"],
        weights=[25, 10, 35, 12, 10, 4, 4],
    )[0]
    if story == "not_activated":
        pair.code = rnd.choice(sorted(NOT_ACTIVATED_TEXTS))
        attempt("not_activated", at, reason=NOT_ACTIVATED_TEXTS[pair.code])
    elif story == "filtered":
        rule = rnd.choice((1, 2, 3))
        pair.code = f"filter_{rule}"
        attempt(
            "filtered_out",
            at,
            reason=f"filter {rule} does not hold: event.eventType equals 'Conference' "
            "(found 'Webinar')",
        )
    elif story == "delivered":
        delivered(at)
        if rnd.random() < 0.1:  # an operator's replay, later
            delivered(at + timedelta(hours=rnd.uniform(1, 30)), replay_id="rp-1")
    elif story == "technical":
        first = at
        attempt("failed", at, category="technical", reason="HTTP 503", marketo_code="503")
        tries = rnd.randrange(1, 4)
        for _ in range(tries):
            at += timedelta(minutes=rnd.uniform(1, 240))
            if rnd.random() < 0.35:
                delivered(at)
                retry("resolved", "technical", first, at, len(pair.attempts))
                break
            attempt("failed", at, category="technical", reason="HTTP 503")
        else:
            status: RetryStatus = "abandoned" if tries == 3 else "retrying"
            retry(status, "technical", first, at, len(pair.attempts))
        pair.code = pair.state.category if pair.state.status == "failed" else None
    elif story == "data":
        first = at
        attempt("failed", at, category="data", reason="required field 'email' is empty")
        pair.code = "data"
        if rnd.random() < 0.3:  # fixed and resubmitted by the operator
            at += timedelta(hours=rnd.uniform(1, 48))
            delivered(at)
            retry("resolved", "data", first, at, 1)
            pair.code = None
        else:
            retry("pending", "data", first, first, 1)
    elif story == "parked":
        attempt("parked", at, category="technical", reason="daily quota reached (607)")
    else:  # delivered, then the same change redelivered and noticed as a duplicate
        delivered(at)
        attempt("skipped_duplicate", at + timedelta(minutes=1), reason="already delivered")
    return pair


def _calls(rnd: random.Random) -> list[ApiCallRow]:
    calls: list[ApiCallRow] = []

    def call(cid: str, at: datetime) -> None:
        kind = rnd.random()
        http: int | None = 200
        marketo: str | None = None
        cls: str | None = None
        if kind < 0.06:
            http = 503
        elif kind < 0.10:
            marketo = "606"
        elif kind < 0.12:
            marketo = "1003"
        elif kind < 0.14:
            http, cls = None, "timeout"
        calls.append(
            ApiCallRow(
                connection_id=cid,
                endpoint="/rest/v1/leads.json",
                started_at=at,
                duration_ms=round(rnd.uniform(20, 900), 3),
                http_status=http,
                marketo_error=marketo,
                error_class=cls,
                batch_size=rnd.randrange(1, 300),
            )
        )

    for cid in ("c1", "c2", "c3"):
        for _ in range(150):
            call(cid, NOW - timedelta(seconds=rnd.uniform(0, 8 * 86400)))
        for _ in range(rnd.randrange(2, 6)):  # bursts: the busiest 20 s
            centre = NOW - timedelta(seconds=rnd.uniform(60, 8 * 86400))
            for _ in range(rnd.randrange(10, 60)):
                call(cid, centre + timedelta(seconds=rnd.uniform(0, 25)))
    for _ in range(17):  # calls in the last 20 s of the window
        call("c1", NOW - timedelta(seconds=rnd.uniform(0.001, 19.9)))
    call("c2", NOW - timedelta(seconds=20))  # exactly on the 20 s boundary: counted
    call("c2", NOW)  # at the window's end: outside [start, end)
    return calls


# -- expected figures, counted from the stories ------------------------------------------------


def _in(at: datetime, start: datetime, end: datetime) -> bool:
    return start <= at < end


def bucket_index(at: datetime, step: timedelta) -> int:
    return (at - EPOCH) // step


def bucket_starts(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    first = EPOCH + bucket_index(start, step) * step
    out = []
    while first < end:
        out.append(first)
        first += step
    return out


def expected_summary(
    s: Stream, mode: str, start: datetime, end: datetime, step: timedelta
) -> dict[str, Any]:
    pairs = [p for p in s.pairs if p.flow.mode == mode and _in(p.state.processed_at, start, end)]
    delivered = [p for p in pairs if p.state.status == "delivered"]
    by_reason: dict[str, Counter[str]] = {"not_activated": Counter(), "filtered_out": Counter()}
    failed: Counter[str] = Counter({"data": 0, "technical": 0})
    other: Counter[str] = Counter()
    for p in pairs:
        status = p.state.status
        if status in by_reason:
            assert p.code is not None
            by_reason[status][p.code] += 1
        elif status == "failed":
            failed[p.state.category or ""] += 1
        elif status != "delivered":
            other[status] += 1
    buckets = []
    for b in bucket_starts(start, end, step):
        inside = [
            p for p in pairs if bucket_index(p.state.processed_at, step) == bucket_index(b, step)
        ]
        buckets.append(
            {
                "start": b.isoformat(),
                "changes": len({p.change_id for p in inside}),
                "triggered": sum(p.state.status == "delivered" for p in inside),
                "not_triggered": sum(
                    p.state.status in ("not_activated", "filtered_out", "failed") for p in inside
                ),
            }
        )
    all_mode = [p.state.processed_at for p in s.pairs if p.flow.mode == mode]
    na, fo = by_reason["not_activated"], by_reason["filtered_out"]
    return {
        "changes_processed": len({p.change_id for p in pairs}),
        "unique_registrations": len({p.registration_code for p in pairs} - {None}),
        "actions_triggered": len(delivered),
        "actions_not_triggered": {
            "total": sum(na.values()) + sum(fo.values()) + sum(failed.values()),
            "not_activated": {"total": sum(na.values()), "by_reason": dict(na)},
            "filtered_out": {"total": sum(fo.values()), "by_reason": dict(fo)},
            "failed": {"total": sum(failed.values()), "by_category": dict(failed)},
        },
        "other_outcomes": dict(other),
        "active_flows": sum(f.active and f.mode == mode for f in FLOWS),
        "form_posts": sum(p.flow.action == "form_post" for p in delivered),
        "leads_created": sum(p.state.lead_result == "created" for p in delivered),
        "leads_updated": sum(p.state.lead_result == "updated" for p in delivered),
        "registration_activity": buckets,
        "last_change_recorded_at": max(all_mode).isoformat() if all_mode else None,
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def expected_troubleshooting(
    s: Stream, mode: str, start: datetime, end: datetime, step: timedelta
) -> dict[str, Any]:
    items = [p.retry for p in s.pairs if p.retry is not None and p.flow.mode == mode]
    queue = {
        st: {"data": 0, "technical": 0} for st in ("pending", "retrying", "abandoned", "resolved")
    }
    for item in items:
        if item.status != "resolved" or _in(item.updated_at, start, end):
            queue[item.status][item.category] += 1
    retries = [
        a
        for p in s.pairs
        if p.flow.mode == mode
        for a in p.attempts
        if a.attempt > 1 and not a.replayed and _in(a.processed_at, start, end)
    ]
    states = [
        p.state for p in s.pairs if p.flow.mode == mode and _in(p.state.processed_at, start, end)
    ]
    data_failures = sum(o.status == "failed" and o.category == "data" for o in states)
    rejected = sum(_in(r.received_at, start, end) for r in s.rejected)
    activity = []
    for b in bucket_starts(start, end, step):
        inside = [a for a in retries if bucket_index(a.processed_at, step) == bucket_index(b, step)]
        activity.append(
            {
                "start": b.isoformat(),
                "retries": len(inside),
                "delivered": sum(a.status == "delivered" for a in inside),
                "failed": sum(a.status == "failed" for a in inside),
            }
        )
    connections = []
    for cid in sorted({c.connection_id for c in s.calls}):
        calls = [c for c in s.calls if c.connection_id == cid and _in(c.started_at, start, end)]
        if not calls:
            continue
        errors: Counter[str] = Counter()
        for c in calls:
            if c.http_status is None or c.http_status >= 400 or c.marketo_error is not None:
                errors[
                    c.marketo_error
                    or (
                        f"http_{c.http_status}" if c.http_status else c.error_class or "no_response"
                    )
                ] += 1
        times = sorted(c.started_at for c in calls)
        peak = max(sum(1 for u in times if t <= u < t + timedelta(seconds=20)) for t in times)
        recent = sum(end - timedelta(seconds=20) <= t < end for t in times)
        budget = int(100 * RATE_SHARES.get(cid, 1.0))
        durations = [c.duration_ms for c in calls]
        connections.append(
            {
                "connection_id": cid,
                "calls": len(calls),
                "errors": sum(errors.values()),
                "errors_by_code": dict(errors),
                "latency_ms": {
                    "p50": quantile(durations, 0.5),
                    "p95": quantile(durations, 0.95),
                    "p99": quantile(durations, 0.99),
                },
                "rate_limit": {
                    "budget_per_20s": budget,
                    "calls_last_20s": recent,
                    "headroom": budget - recent,
                    "peak_20s": peak,
                    "peak_headroom": budget - peak,
                },
            }
        )
    return {
        "retry_queue": {
            "by_status": {st: sum(c.values()) for st, c in queue.items()},
            "by_status_and_category": queue,
            "open": sum(sum(queue[st].values()) for st in ("pending", "retrying", "abandoned")),
        },
        "total_retried": len({(a.change_id, a.flow_id) for a in retries}),
        "retry_attempts": len(retries),
        "retried_abandoned": sum(
            i.status == "abandoned" and _in(i.updated_at, start, end) for i in items
        ),
        "validation_errors": {
            "total": rejected + data_failures,
            "rejected_input": rejected,
            "data_failures": data_failures,
        },
        "retry_activity": activity,
        "connection_activity": connections,
    }


def feed_order(s: Stream, mode: str, start: datetime, end: datetime) -> list[tuple[str, str]]:
    states = [
        p.state for p in s.pairs if p.flow.mode == mode and _in(p.state.processed_at, start, end)
    ]
    states.sort(key=lambda o: (o.processed_at, o.change_id, o.flow_id), reverse=True)
    return [(o.change_id, o.flow_id) for o in states]
