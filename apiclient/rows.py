"""What the operator API's answers are read into: typed rows for what a client shows or acts on.

Readers are lenient about fields control may leave out (defaults stand in) and keep the whole
object in `raw` for the JSON and CSV outputs, so a field added to the API reaches a script before
any row learns it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class FlowRow:
    id: str
    name: str
    mode: str
    active: bool
    complete: bool
    reasons: tuple[str, ...]
    """Why an incomplete flow cannot run (control's `incomplete_reasons`)."""
    source: str | None = None
    connection: str | None = None
    action: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlowRow:
        destination = data.get("destination")
        destination = destination if isinstance(destination, dict) else {}
        listed = data.get("incomplete_reasons", data.get("reasons"))
        reasons = tuple(str(r) for r in listed) if isinstance(listed, list) else ()
        complete = data.get("complete")
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            mode=str(data.get("mode", "test")),
            active=bool(data.get("active", False)),
            complete=complete if isinstance(complete, bool) else not reasons,
            reasons=reasons,
            source=data.get("source"),
            connection=destination.get("connection"),
            action=destination.get("action"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class FlowStats:
    delivered: int = 0
    failed: int = 0
    hourly: tuple[int, ...] = ()


@dataclass(frozen=True)
class ConnectionRow:
    id: str
    name: str
    service_url: str
    client_id: str | None
    secret_set: bool
    secret_source: str | None
    primary: bool
    force_update: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    secret_cleared: str | None = None
    """Why control cleared the secret (the identity URL or client id changed), until a new one
    is entered."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConnectionRow:
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            service_url=str(data.get("service_url", "")),
            client_id=data.get("client_id"),
            secret_set=bool(data.get("secret_set", False)),
            secret_source=data.get("secret_source"),
            primary=bool(data.get("primary", False)),
            force_update=bool(data.get("force_update", False)),
            raw=dict(data),
            secret_cleared=data.get("secret_cleared") or None,
        )


@dataclass(frozen=True)
class SourceRow:
    """A Certain source as `GET /api/v1/sources` gives it: its settings (in `raw`, the body an
    editor sends back) and how its poller is doing."""

    id: str
    name: str
    host: str
    account_code: str
    state: str
    password_set: bool
    password_source: str | None
    active: bool
    last_poll_at: datetime | None = None
    last_poll_records: int | None = None
    lag_s: float | None = None
    last_error: str | None = None
    retry_at: datetime | None = None
    errors: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    password_cleared: str | None = None
    """Why control cleared the password (the host or username changed), in a save's answer."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SourceRow:
        last_poll = data.get("last_poll")
        records = last_poll.get("records") if isinstance(last_poll, dict) else None
        totals = data.get("totals")
        errors = totals.get("errors") if isinstance(totals, dict) else 0
        lag = data.get("lag_s")
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            host=str(data.get("host", "")),
            account_code=str(data.get("account_code", "")),
            state=str(data.get("state", "")),
            password_set=bool(data.get("password_set", False)),
            password_source=data.get("password_source"),
            active=bool(data.get("active", True)),
            last_poll_at=_stamp(data.get("last_poll_at")),
            last_poll_records=records if isinstance(records, int) else None,
            lag_s=float(lag) if isinstance(lag, int | float) else None,
            last_error=data.get("last_error") or None,
            retry_at=_stamp(data.get("retry_at")),
            errors=errors if isinstance(errors, int) else 0,
            raw=dict(data),
            password_cleared=data.get("password_cleared") or None,
        )


@dataclass(frozen=True)
class BreakerRow:
    """A connection's circuit breaker as `GET /healthz` lists it under `connections` (the
    pipeline workers' heartbeats carry it): `closed` deliveries flow, `open` they are parked
    until `retry_at`, `half_open` one probe call is out. Times are wall-clock (UTC)."""

    state: str
    since: datetime | None = None
    """When the state last changed; None if it never did."""
    retry_at: datetime | None = None
    """While open: when the next probe may go."""
    failures: int = 0
    """Connection-wide call failures in a row."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BreakerRow:
        failures = data.get("failures")
        return cls(
            state=str(data.get("state", "")),
            since=_stamp(data.get("since")),
            retry_at=_stamp(data.get("retry_at")),
            failures=failures if isinstance(failures, int) else 0,
        )


def _stamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class TestResult:
    ok: bool
    message: str
    elapsed_ms: float
    checks: tuple[tuple[str, bool, str], ...] = ()
    fields: int = 0
    released: int = 0
    """Deliveries parked by the connection's circuit breaker that the pass made due at once."""

    @classmethod
    def from_json(cls, body: Mapping[str, Any], elapsed_ms: float) -> TestResult:
        checks = tuple(
            (str(c.get("name", "")), bool(c.get("ok")), str(c.get("message", "")))
            for c in body.get("checks", [])
            if isinstance(c, dict)
        )
        fields = body.get("fields", 0)
        return cls(
            ok=bool(body.get("ok")),
            message=str(body.get("message", "")),
            elapsed_ms=elapsed_ms,
            checks=checks,
            fields=fields if isinstance(fields, int) else len(fields or []),
            released=released if isinstance(released := body.get("released"), int) else 0,
        )


@dataclass(frozen=True)
class TargetField:
    name: str
    display_name: str
    data_type: str
    read_only: bool


@dataclass(frozen=True)
class SqlResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False
    elapsed_ms: float | None = None
    truncated_by: str | None = None
    """The cap that cut the answer: `rows` (max_rows) or `bytes` (control's answer size cap)."""


@dataclass(frozen=True)
class RetryFilters:
    integration: str | None = None
    status: str | None = None
    category: str | None = None
    search: str | None = None

    def params(self) -> dict[str, str]:
        out = {
            "integration": self.integration,
            "status": self.status,
            "category": self.category,
            "q": self.search,
        }
        return {k: v for k, v in out.items() if v}

    def describe(self) -> str:
        parts = [f"{k}:{v}" for k, v in self.params().items()]
        return " ".join(parts)


@dataclass(frozen=True)
class RetryRow:
    change_id: str
    flow_id: str
    flow_name: str
    integration: str
    status: str
    category: str
    reason: str
    attempts: int
    updated_at: str
    next_attempt_at: str | None
    last_error: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.change_id}|{self.flow_id}"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetryRow:
        return cls(
            change_id=str(data.get("change_id", "")),
            flow_id=str(data.get("flow_id", "")),
            flow_name=str(data.get("flow_name") or data.get("flow_id", "")),
            integration=str(data.get("integration") or ""),
            status=str(data.get("status", "")),
            category=str(data.get("category", "")),
            reason=str(data.get("reason") or ""),
            attempts=int(data.get("attempts") or 0),
            updated_at=str(data.get("updated_at") or ""),
            next_attempt_at=data.get("next_attempt_at"),
            last_error=data.get("last_error"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class RetryPage:
    rows: list[RetryRow]
    total: int
    offset: int
    limit: int


SKIP_REASONS = ("skipped_already_resolved", "skipped_in_flight", "not_found", "missing_change")


@dataclass(frozen=True)
class SubmitResult:
    """What control did with a resubmit: how many went out and why others did not."""

    submitted: int
    selected: int
    skipped: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Any, asked: int) -> SubmitResult:
        data = body if isinstance(body, dict) else {}
        skipped = {
            key.removeprefix("skipped_").replace("_", " "): int(value)
            for key, value in data.items()
            if key in SKIP_REASONS and isinstance(value, int) and value
        }
        return cls(int(data.get("submitted", 0)), int(data.get("selected", asked)), skipped)

    def describe(self) -> str:
        text = f"Resubmitted {self.submitted} of {self.selected}"
        if self.skipped:
            text += " (" + ", ".join(f"{v} {k}" for k, v in self.skipped.items()) + ")"
        return text


@dataclass(frozen=True)
class IngestRejection:
    """One refused item. `line` is 1-based in the file (or the item's position in the list)."""

    line: int | None
    path: str
    reason: str
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def field(self) -> str:
        return self.path or "(item)"


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: list[IngestRejection] = field(default_factory=list)
    duplicates: int = 0
    sent: int = 0

    def merge(self, other: IngestResult) -> None:
        self.accepted += other.accepted
        self.rejected.extend(other.rejected)
        self.duplicates += other.duplicates
        self.sent += other.sent

    @classmethod
    def from_json(cls, body: Any, first_line: int, count: int) -> IngestResult:
        """Control's answer to a batch: counts, and `errors` listing each bad item by its
        0-based `index` (a rejection's `line` counts from `first_line`)."""
        result = cls(sent=count)
        if not isinstance(body, dict):
            return result
        result.accepted = _count(body.get("accepted"))
        result.duplicates = _count(body.get("duplicates"))
        errors: list[Any] = []
        for key in ("errors", "rejected"):
            value = body.get(key)
            if isinstance(value, list):
                errors = value
                break
        for item in errors:
            if not isinstance(item, dict):
                continue
            index = item.get("index")
            line = first_line + index if isinstance(index, int) else None
            problems = tuple(
                (str(p.get("path", "")), str(p.get("message", p.get("reason", ""))))
                for p in item.get("problems", [])
                if isinstance(p, dict)
            )
            reason = item.get("message", item.get("reason", ""))
            result.rejected.append(
                IngestRejection(line, str(item.get("path", "")), str(reason), problems)
            )
        return result


def _count(value: Any) -> int:
    if isinstance(value, list):
        return len(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
