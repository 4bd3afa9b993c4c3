"""What the pipeline's stages publish, and what they can salvage from records they cannot use.

Apart from the stages (`stream.pipeline.app`) because these are pure functions of records: the
order of a route batch's records (`route_records`, whose order is a crash-safety rule), the
reading of a raw record, and the `failed` outcome a broken record or an internal error becomes,
so that no record is dropped with only a log line.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from stream.certain.events import ChangeEvent
from stream.certain.parsing import MAX_DEPTH, MAX_VALUES, Rejection, parse_change
from stream.messages import (
    DeliveryRequest,
    FailureCategory,
    Message,
    OutcomeRecord,
    OutcomeStatus,
    Redrive,
    RedriveRequest,
    utcnow,
)
from stream.pipeline.deliver import Result, outcome_for, queued_outcome
from stream.pipeline.route import Routed
from stream.topics import DELIVERIES, OUTCOMES

__all__ = [
    "describe",
    "internal_failure",
    "parse_record",
    "route_records",
    "salvaged_failure",
    "time_received",
    "where",
]


def time_received(event: Any) -> datetime | None:
    """When the broker took the event's record (its timestamp), if it says."""
    stamp = getattr(event.message, "timestamp", None)
    if not stamp:
        return None
    try:
        return datetime.fromtimestamp(float(stamp), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def internal_failure(request: DeliveryRequest, error: Exception) -> OutcomeRecord:
    """A bug, not a Marketo answer: a technical failure, retryable, for one request."""
    result = Result(
        OutcomeStatus.FAILED,
        FailureCategory.TECHNICAL,
        reason=f"internal error while delivering: {describe(error)}",
        retryable=True,
    )
    return outcome_for(request, result, utcnow())


def route_records(routed: Routed) -> list[tuple[str, str, Message | bytes | None]]:
    """What a route batch publishes: each delivery request with the `queued` outcome of its pair
    (so the ledger sees the delivery in flight), then the outcomes decided without Marketo.

    The order matters after a crash. A change's outcomes share its partition of
    `signal-outcomes` (keyed by change id), and control records them in batches, so what the
    ledger holds of a change whose records were cut short by a crash is a prefix of them.
    Recovery re-drives a change only when it has no outcome at all, and a queued pair only once
    it is recorded: were the decided outcomes first (a `not_activated` of another flow), a
    prefix holding them without the queued record would leave the delivery unseen by both.
    Queued records first, a prefix either holds the queued pair or nothing else of its change;
    and each queued record names its `siblings` (the change's other deliveries of this route),
    so a prefix holding one queued record lets the ledger mark them all in flight. A decided
    outcome several flows share is one record naming them all (`OutcomeRecord.also`), so a
    prefix holds it for every one of its flows or for none.
    """
    flows: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for request in routed.deliveries:
        flows[(request.change_id, request.replay_id)].append(request.flow_id)
    records: list[tuple[str, str, Message | bytes | None]] = []
    for request in routed.deliveries:
        queued = queued_outcome(request)
        siblings = [
            f for f in flows[(request.change_id, request.replay_id)] if f != request.flow_id
        ]
        if siblings:
            queued = queued.model_copy(update={"siblings": siblings})
        records.append((OUTCOMES.name, request.change_id, queued))
        records.append((DELIVERIES.name, request.connection_id, request))
    records.extend((OUTCOMES.name, o.change_id, o) for o in routed.records)
    return records


def salvaged_failure(
    fields: dict[str, Any], reason: str, *, retryable: bool
) -> OutcomeRecord | None:
    """A `failed` (technical) outcome built from what can be read of a broken record: None
    unless it names its change and flow. Fields that do not validate are left out."""
    change_id, flow_id = fields.get("change_id"), fields.get("flow_id")
    if not (isinstance(change_id, str) and change_id and isinstance(flow_id, str) and flow_id):
        return None
    base: dict[str, Any] = {
        "change_id": change_id,
        "flow_id": flow_id,
        "flow_name": flow_id,
        "mode": "live",
        "status": OutcomeStatus.FAILED,
        "category": FailureCategory.TECHNICAL,
        "reason": reason[:500],
        "retryable": retryable,
        "occurred_at": utcnow(),
    }
    optional = {
        "flow_name",
        "mode",
        "occurred_at",
        "registration_code",
        "event_code",
        "action",
        "connection_id",
        "attempt",
        "redrive_kind",
        "replay_id",
        "campaign_id",
        "form_id",
    }
    record = dict(base)
    for name in optional:
        value = fields.get(name)
        if value is None or (name == "mode" and value not in ("live", "test")):
            continue
        try:
            OutcomeRecord.model_validate({**base, name: value})
        except ValueError:
            continue
        record[name] = value
    return OutcomeRecord.model_validate(record)


def describe(error: BaseException) -> str:
    """An error in one line for a reason: its class and the first line of its message."""
    text = str(error).splitlines()
    detail = text[0][:300] if text else ""
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def where(event: Any) -> str:
    """`topic[partition]@offset` of an event, for the log."""
    message = event.message
    return f"{message.topic}[{message.partition}]@{message.offset}"


def parse_record(
    value: bytes | None, redrive: bool
) -> tuple[ChangeEvent, Redrive | None] | Rejection:
    """The change of a `certain-changes` record, or of a redrive request with its `Redrive`."""
    if value is None:
        return Rejection(None, "", "empty record", None)
    if not redrive:
        fast = _plain_change(value)
        if fast is not None:
            return fast, None
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError) as error:
        return Rejection(None, "", f"not JSON: {error}", value[:200].decode("utf-8", "replace"))
    why: Redrive | None = None
    if redrive:
        try:
            request = RedriveRequest.model_validate(data)
        except Exception as error:
            return Rejection(None, "", f"not a redrive request: {str(error)[:300]}", None)
        data, why = request.change, request.redrive
    parsed = parse_change(data)
    if isinstance(parsed, Rejection):
        return parsed
    return parsed, why


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A `\\uD800`-`\\uDFFF` escape in JSON text (or text that merely looks like one)."""


def _plain_change(value: bytes) -> ChangeEvent | None:
    """The change of a record that `parse_change` would accept, read in one step; None when the
    record needs the full reading (which words the rejection), including every doubt.

    `parse_change` first walks the decoded value for nesting past `MAX_DEPTH` and lone
    surrogates, then validates the dict: with the decode, two fifths of routing a change. Both
    checks are settled on the bytes instead when they cannot fail: a text with no more brackets
    than `MAX_DEPTH` cannot nest deeper, and one without a surrogate escape holds no surrogate
    (raw surrogate bytes are not UTF-8, which the JSON reader refuses). Validation from the JSON
    text gives the model validation from its decoded value gives, for any JSON value; anything
    it refuses goes the full way, so every rejection reads as before. Nor can such a text hold
    more than `MAX_VALUES` values when it has few commas: each value but the first of a
    container follows one, so the values are at most the commas, the containers and the root.
    """
    containers = value.count(b"{") + value.count(b"[")
    if containers > MAX_DEPTH or _SURROGATE_ESCAPE.search(value):
        return None
    if value.count(b",") + containers + 1 > MAX_VALUES:
        return None
    try:
        return ChangeEvent.model_validate_json(value)
    except Exception:
        return None
