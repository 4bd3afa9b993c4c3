"""Payloads of Signal's internal topics (pipeline ⇄ control).

They are JSON on the wire and versioned by shape only, so every field a later reader might lack
has a default. Secrets never travel in these messages except in `ConfigSnapshot`, which the
pipeline needs to authenticate against Marketo, and there only sealed (`stream.sealing`): a plain
consumer of `signal-config` reads no secret.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from stream.marketo.results import CallRecord


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    def dumps(self) -> bytes:
        """The message's JSON as `model_dump_json` writes it, as bytes straight from the
        serialiser: a route batch writes three or more records a change, and the text round
        trip (bytes to str and back) was a third of writing each."""
        return self.__pydantic_serializer__.to_json(self)

    @classmethod
    def loads(cls, raw: bytes | str) -> Any:
        return cls.model_validate_json(raw)


class OutcomeStatus(StrEnum):
    QUEUED = "queued"
    """Routed to Marketo, no answer yet: the ledger's record of a delivery in flight. It becomes
    a pair's state only when the pair has none (or is queued already); the deliver step's
    outcome replaces it. Control's recovery re-drives pairs queued longer than its grace."""
    NOT_ACTIVATED = "not_activated"
    FILTERED_OUT = "filtered_out"
    DELIVERED = "delivered"
    FAILED = "failed"
    PARKED = "parked"
    SKIPPED_DUPLICATE = "skipped_duplicate"
    WOULD_SEND = "would_send"


class FailureCategory(StrEnum):
    DATA = "data"
    TECHNICAL = "technical"


class Redrive(Message):
    """Why a change is evaluated again: a retry, an operator resubmit or a replay.

    A redriven change is evaluated for `flow_id` only, against the *current* configuration and
    catalog (DESIGN 2), and its outcome carries the attempt number and replay id.
    """

    flow_id: str
    attempt: int = Field(ge=1)
    kind: str = "retry"  # retry | resubmit | replay | recovery
    """`recovery`: control re-drives a change (or a queued pair) the ledger holds without a final
    outcome, after a crash or a broker that forgot; it is a first delivery, not a retry."""
    replay_id: str | None = None
    dry_run: bool = False
    actor: str | None = None


class RedriveRequest(Message):
    change: dict[str, Any]
    redrive: Redrive


class DeliveryRequest(Message):
    """One mapped (change, flow) action, keyed by connection so one worker batches it."""

    change_id: str
    flow_id: str
    flow_name: str
    mode: str
    connection_id: str
    action: str
    registration_code: str | None = None
    event_code: str | None = None
    occurred_at: datetime
    routed_at: datetime = Field(default_factory=utcnow)
    received_at: datetime | None = None
    payload: dict[str, str]
    lookup_field: str = "email"
    campaign_id: int | None = None
    form_id: int | None = None
    program_id: int | None = None
    """The form's program (form_post), or the program whose status is set."""
    program_status: str | None = None
    """update_program_status: the program status name this change sets."""
    tokens: dict[str, str] = Field(default_factory=dict)
    attempt: int = 1
    redrive_kind: str | None = None
    replay_id: str | None = None

    @property
    def delivery_key(self) -> str:
        return f"{self.change_id}\x1f{self.flow_id}"


VERIFIED_IN_MARKETO = "verified_in_marketo"
"""`OutcomeRecord.lead_result` of a pair whose earlier, unanswered call Marketo's activity log
shows it ran: recorded delivered instead of sent again (`stream/pipeline/verify.py`). The ledger
counts these as `verified_after_crash`, apart from the possible repeats."""


class SharedFlows(Message):
    """Further flows an `OutcomeRecord` is the outcome of (`OutcomeRecord.also`): those with
    the same mode, action and connection together, each by its id and name, the fields of its
    own that its ledger row takes instead of the record's. Grouped because flows copied from
    one another share all three, and a hundred flows' entries were most of a routed change's
    bytes on the topic."""

    mode: str
    action: str | None = None
    connection_id: str | None = None
    flows: list[tuple[str, str]]
    """(flow id, flow name) of each flow."""


SharedFlow = tuple[str, str, str, str | None, str | None]
"""One flow of `OutcomeRecord.also`: (flow id, name, mode, action, connection id)."""


class OutcomeRecord(Message):
    """What became of one (change, flow) pair — the row `outcomes` shows — and, through `also`,
    of further pairs of the same change with the very same outcome."""

    change_id: str
    flow_id: str
    flow_name: str
    mode: str
    registration_code: str | None = None
    event_code: str | None = None
    action: str | None = None
    connection_id: str | None = None
    status: OutcomeStatus
    category: FailureCategory | None = None
    reason: str | None = None
    marketo_code: str | None = None
    marketo_lead_id: int | None = None
    lead_result: str | None = None
    attempt: int = 1
    occurred_at: datetime
    processed_at: datetime = Field(default_factory=utcnow)
    latency_ms: float | None = None
    payload: dict[str, str] | None = None
    campaign_id: int | None = None
    form_id: int | None = None
    redrive_kind: str | None = None
    replay_id: str | None = None
    retryable: bool = False
    resume_at: datetime | None = None
    request_id: str | None = None
    possible_repeat: bool = False
    """A delivered outcome of a pair an earlier attempt marked "sending" without recording its
    answer (a worker killed while Marketo had the call): Marketo may have run it twice. The
    ledger counts these as `repeat_after_crash`."""
    siblings: list[str] = Field(default_factory=list)
    """On a `queued` record: the other flows the same route queued for this change. Control
    marks them queued too, so a crash that cuts the route's records after this one leaves
    every delivery of the change in the ledger (recovery re-drives the overdue ones)."""
    also: list[SharedFlows] = Field(default_factory=list)
    """On a `not_activated` record of a first routing: the other flows whose outcome for this
    change is this one (same reason, attempt and times), each with its own flow fields. The
    route step publishes one record per such outcome instead of one per flow, so the flows
    that cannot match a change cost one entry each rather than a record; control records one
    row per pair as before (`stream.control.outcome_batch`)."""

    def dumps(self) -> bytes:
        """`Message.dumps`, with the `also` list serialised once per list object: the route
        step gives every change's shared record the same list for the same flows, and writing
        a hundred flows' entries again per change cost more than routing the change."""
        also = self.also
        if not also:
            return self.__pydantic_serializer__.to_json(self)
        kept = _ALSO_JSON.get(id(also))
        if kept is None or kept[0] is not also:
            if len(_ALSO_JSON) >= _ALSO_JSON_MAX:
                _ALSO_JSON.clear()
            kept = _ALSO_JSON[id(also)] = (also, _SHARED_FLOWS.dump_json(also))
        head = self.__pydantic_serializer__.to_json(self, exclude=_ALSO)
        # `also` is the last field: the same bytes as serialising the whole record.
        return head[:-1] + b',"also":' + kept[1] + b"}"

    def shared(self) -> Iterator[SharedFlow]:
        """The `also` flows, in order, each with its own fields."""
        for group in self.also:
            mode, action, connection_id = group.mode, group.action, group.connection_id
            for flow_id, flow_name in group.flows:
                yield flow_id, flow_name, mode, action, connection_id

    def shared_count(self) -> int:
        """How many flows `also` names."""
        return sum(len(group.flows) for group in self.also)

    def pairs(self) -> list[OutcomeRecord]:
        """The record of each pair this record is the outcome of: its own (without `also`),
        then one per `also` flow with that flow's fields."""
        if not self.also:
            return [self]
        own = self.model_copy(update={"also": []})
        return [own, *(own.for_flow(flow) for flow in self.shared())]

    def for_flow(self, flow: SharedFlow) -> OutcomeRecord:
        """This outcome as `flow`'s own record (with no `also`)."""
        flow_id, flow_name, mode, action, connection_id = flow
        return self.model_copy(
            update={
                "flow_id": flow_id,
                "flow_name": flow_name,
                "mode": mode,
                "action": action,
                "connection_id": connection_id,
                "also": [],
            }
        )


_ALSO: set[str] = {"also"}
_SHARED_FLOWS: TypeAdapter[list[SharedFlows]] = TypeAdapter(list[SharedFlows])
_ALSO_JSON: dict[int, tuple[list[SharedFlows], bytes]] = {}
"""id of an `also` list -> (the list, its JSON): the list is held, so its id is not reused
while kept. The lists are never changed once given to a record (records are frozen)."""
_ALSO_JSON_MAX = 1024


class ApiCallRecord(Message):
    connection_id: str
    endpoint: str
    method: str = "POST"
    started_at: datetime
    duration_ms: float
    http_status: int | None = None
    marketo_error: str | None = None
    batch_size: int = 0
    request_id: str | None = None
    error_class: str | None = None

    @classmethod
    def from_call(cls, record: CallRecord) -> ApiCallRecord:
        """The client's report of one HTTP call, as recorded in `api_calls`."""
        return cls(
            connection_id=record.connection_id,
            endpoint=record.endpoint,
            method=record.method,
            started_at=record.started_at,
            duration_ms=record.duration_ms,
            http_status=record.http_status,
            marketo_error=record.marketo_error,
            batch_size=record.batch_size,
            request_id=record.request_id,
            error_class=record.failure_class.value if record.failure_class else None,
        )


class ConfigSnapshot(Message):
    """The whole account configuration and event catalog as workers need them.

    Published whole (not as diffs) so a worker that joins late needs only the newest message.
    """

    version: int
    published_at: datetime = Field(default_factory=utcnow)
    account: dict[str, Any]
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)
    """Connection id → its client secret sealed for the connection's identity URL and client id
    (`stream.sealing.SecretBox`); never a secret in clear."""
    catalog: dict[str, Any] = Field(default_factory=dict)
    tested: dict[str, datetime] = Field(default_factory=dict)
    """Connection id → when an operator's test last passed with the settings the connection has
    saved (`t` on the Connections pane, Save & Test of an unchanged form): a worker that sees a
    connection's mark move closes its circuit breaker (`stream.pipeline.clients.ClientPool`).
    Kept by control in memory only: a restart forgets the marks, which closes nothing."""
    auth: str | None = None
    """Control's tag over `authenticated_bytes()` (`stream.sealing.SecretBox.tag`): the broker
    lets any local client produce to `signal-config`, so a worker applies only a snapshot whose
    tag its key file verifies."""

    def authenticated_bytes(self) -> bytes:
        """What the tag covers: every field but the tag, as canonical JSON (sorted keys, ASCII),
        so a worker computes the same bytes from the snapshot it parsed."""
        data = self.model_dump(mode="json", exclude={"auth"})
        return json.dumps(
            ["signal-config-snapshot", data], sort_keys=True, separators=(",", ":")
        ).encode()
