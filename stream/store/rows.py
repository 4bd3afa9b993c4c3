"""Row types written to and read from the store.

Rows are validated when built, so a malformed outcome fails in the caller that made it rather
than half-way through a batch transaction. Every timestamp must be timezone-aware and is kept in
UTC: DuckDB renders TIMESTAMPTZ in the session time zone, and a naive datetime would silently be
read as local time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

Mode = Literal["live", "test"]
OutcomeStatus = Literal[
    "queued",
    "not_activated",
    "filtered_out",
    "delivered",
    "failed",
    "rejected",
    "parked",
    "skipped_stale",
    "skipped_duplicate",
    "would_send",
    "dry_run",
]
FailureCategory = Literal["data", "technical"]
RetryStatus = Literal["pending", "retrying", "abandoned", "resolved"]
ChangeSource = Literal["api", "topic", "replay", "file", "poll"]
"""Where a change came from; `poll`: the Certain source (`stream.control.certain_poller`)."""

MODES: frozenset[str] = frozenset(get_args(Mode))
OUTCOME_STATUSES: frozenset[str] = frozenset(get_args(OutcomeStatus))
FAILURE_CATEGORIES: frozenset[str] = frozenset(get_args(FailureCategory))
RETRY_STATUSES: frozenset[str] = frozenset(get_args(RetryStatus))
CHANGE_SOURCES: frozenset[str] = frozenset(get_args(ChangeSource))


def utc(value: datetime, name: str) -> datetime:
    """Return `value` in UTC, refusing naive datetimes (their zone would be a guess)."""
    aware(value, name)
    return value.astimezone(UTC)


def aware(value: datetime, name: str) -> None:
    """`utc`'s refusal alone: for a caller that converts a whole column at once."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def _optional_utc(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else utc(value, name)


def _member(value: object, allowed: frozenset[str], name: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")


def _non_empty(value: str, name: str) -> None:
    if not value:
        raise ValueError(f"{name} must not be empty")


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One change received, archived verbatim; `payload` is the change event as JSON text.

    `published_at` is when the broker acknowledged the change on `certain-changes`: None for a
    change accepted by the ingest API and not yet published (the outbox); a change archived
    from the topic was published when it was received.
    """

    change_id: str
    type: str
    account_code: str
    event_code: str | None
    registration_code: str | None
    is_test: bool
    occurred_at: datetime
    received_at: datetime
    payload: str
    source: ChangeSource = "topic"
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    published_at: datetime | None = None

    def __post_init__(self) -> None:
        _non_empty(self.change_id, "change_id")
        _non_empty(self.type, "type")
        _member(self.source, CHANGE_SOURCES, "source")
        object.__setattr__(self, "occurred_at", utc(self.occurred_at, "occurred_at"))
        object.__setattr__(self, "received_at", utc(self.received_at, "received_at"))
        object.__setattr__(self, "published_at", _optional_utc(self.published_at, "published_at"))


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """Input that could not be accepted, kept with its reasons so nothing is dropped silently."""

    received_at: datetime
    reasons: tuple[str, ...]
    payload: str
    source: ChangeSource = "topic"
    change_id: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError("a rejected change needs at least one reason")
        _member(self.source, CHANGE_SOURCES, "source")
        object.__setattr__(self, "reasons", tuple(self.reasons))
        object.__setattr__(self, "received_at", utc(self.received_at, "received_at"))


@dataclass(frozen=True, slots=True)
class RejectedRecordRow:
    """A record of one of Signal's topics that control could not take (unreadable, or kept out
    of its batch by an unexpected error), with the reasons, so nothing is dropped silently."""

    received_at: datetime
    topic: str
    agent: str
    reasons: tuple[str, ...]
    payload: str
    kafka_partition: int | None = None
    kafka_offset: int | None = None

    def __post_init__(self) -> None:
        _non_empty(self.topic, "topic")
        _non_empty(self.agent, "agent")
        if not self.reasons:
            raise ValueError("a rejected record needs at least one reason")
        object.__setattr__(self, "reasons", tuple(self.reasons))
        object.__setattr__(self, "received_at", utc(self.received_at, "received_at"))


def outcome_key(
    change_id: str,
    flow_id: str,
    attempt: int,
    replayed: bool,
    processed_at: datetime,
    replay_id: str | None = None,
) -> str:
    """Deterministic id of one evaluation, so a redelivered outcome record is stored once."""
    return outcome_key_at(
        change_id, flow_id, attempt, replayed, processed_at.isoformat(), replay_id
    )


def outcome_key_at(
    change_id: str,
    flow_id: str,
    attempt: int,
    replayed: bool,
    processed_at: str,
    replay_id: str | None = None,
) -> str:
    """`outcome_key` with `processed_at` (UTC) already in ISO text, for callers that key
    several rows of one record (a queued record's siblings) off one conversion."""
    parts = (change_id, flow_id, str(attempt), str(int(replayed)), processed_at, replay_id or "")
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One evaluation of a (change, flow) pair; `attempt` counts from 1 for that pair."""

    change_id: str
    flow_id: str
    flow_name: str
    mode: Mode
    status: OutcomeStatus
    occurred_at: datetime
    processed_at: datetime
    attempt: int = 1
    registration_code: str | None = None
    event_code: str | None = None
    action: str | None = None
    category: FailureCategory | None = None
    reason: str | None = None
    marketo_lead_id: int | None = None
    lead_result: str | None = None
    latency_ms: float | None = None
    replayed: bool = False
    request_id: str | None = None
    connection_id: str | None = None
    marketo_code: str | None = None
    replay_id: str | None = None
    possible_repeat: bool = False
    """Delivered again after a crash left the pair marked "sending": Marketo may have it twice."""
    outcome_id: str = field(default="")

    def __post_init__(self) -> None:
        _non_empty(self.change_id, "change_id")
        _non_empty(self.flow_id, "flow_id")
        _member(self.mode, MODES, "mode")
        _member(self.status, OUTCOME_STATUSES, "status")
        if self.category is not None:
            _member(self.category, FAILURE_CATEGORIES, "category")
        if self.status == "failed" and self.category is None:
            raise ValueError("a failed outcome needs a category (data or technical)")
        if self.replay_id is not None:
            object.__setattr__(self, "replayed", True)
        if self.attempt < 1:
            raise ValueError(f"attempt counts from 1, got {self.attempt}")
        object.__setattr__(self, "occurred_at", utc(self.occurred_at, "occurred_at"))
        object.__setattr__(self, "processed_at", utc(self.processed_at, "processed_at"))
        if not self.outcome_id:
            key = outcome_key(
                self.change_id,
                self.flow_id,
                self.attempt,
                self.replayed,
                self.processed_at,
                self.replay_id,
            )
            object.__setattr__(self, "outcome_id", key)


@dataclass(frozen=True, slots=True)
class ApiCallRow:
    """One HTTP call to a Marketo instance."""

    connection_id: str
    endpoint: str
    started_at: datetime
    duration_ms: float
    method: str = "POST"
    http_status: int | None = None
    marketo_error: str | None = None
    batch_size: int = 1
    request_id: str | None = None
    error_class: str | None = None

    def __post_init__(self) -> None:
        _non_empty(self.connection_id, "connection_id")
        _non_empty(self.endpoint, "endpoint")
        if self.duration_ms < 0:
            raise ValueError(f"duration_ms must not be negative, got {self.duration_ms}")
        object.__setattr__(self, "started_at", utc(self.started_at, "started_at"))


@dataclass(frozen=True, slots=True)
class RetryItem:
    """Current state of one failed delivery in the retry queue, keyed by (change_id, flow_id)."""

    change_id: str
    flow_id: str
    status: RetryStatus
    category: FailureCategory
    attempts: int
    updated_at: datetime
    integration: str = ""
    flow_name: str = ""
    reason: str | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    resubmitted_by: str | None = None
    resubmitted_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None

    def __post_init__(self) -> None:
        _non_empty(self.change_id, "change_id")
        _non_empty(self.flow_id, "flow_id")
        _member(self.status, RETRY_STATUSES, "status")
        _member(self.category, FAILURE_CATEGORIES, "category")
        if self.attempts < 0:
            raise ValueError(f"attempts must not be negative, got {self.attempts}")
        object.__setattr__(self, "updated_at", utc(self.updated_at, "updated_at"))
        for name in ("next_attempt_at", "created_at", "resubmitted_at", "lease_until"):
            object.__setattr__(self, name, _optional_utc(getattr(self, name), name))


@dataclass(frozen=True, slots=True)
class RetryFilter:
    """Retry queue filters as the operator API exposes them; None means any."""

    integration: str | None = None
    status: RetryStatus | None = None
    category: FailureCategory | None = None
    flow_id: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    offset: int = 0
    limit: int = 100

    def __post_init__(self) -> None:
        if self.offset < 0 or not 1 <= self.limit <= 10_000:
            raise ValueError("page needs offset >= 0 and 1 <= limit <= 10000")


@dataclass(frozen=True, slots=True)
class RetryPage:
    items: tuple[RetryItem, ...]
    total: int


@dataclass(frozen=True, slots=True)
class ConfigObject:
    """One stored configuration object (flow, connection, tag, mapping …), body already redacted."""

    kind: str
    object_id: str
    body: dict[str, Any]
    version: int
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class ConfigAuditEntry:
    at: datetime
    actor: str
    object: str
    object_id: str
    action: Literal["create", "update", "delete"]
    change: dict[str, Any]
