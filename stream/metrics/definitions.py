"""The dashboard's metrics as data: what each figure means, the window it covers, and the SQL
expressions that classify rows, so the queries, the `metric_*` views and the Prometheus output
all count the same thing the same way.

Counting rules (DESIGN 5 "Metrics"; the same for every figure):
- An outcome is the current state of one (change, flow) pair (the `outcomes` view). It belongs
  to the mode of its flow and to the period containing its `processed_at` (the time of its
  latest attempt): a pair retried into a later period moves there, so no pair is counted twice.
- A replay does not rewrite a delivered pair: its outcomes are attempts of their own
  (`outcome_attempts`, `replay_id`), and the pair keeps the state of its first delivery, so a
  lead counted in *leads created* stays there (and in its period) when the replay's delivery
  comes back "updated" or fails. A replay of a pair never delivered becomes its state.
- A change is *processed* in a mode and period when at least one of its outcomes is; unique
  registrations are the distinct registration codes of those outcomes.
- Retry attempts are attempt rows (`outcome_attempts`) with `attempt > 1` that are not replays,
  placed in time by their own `processed_at`.
- The retry queue is a snapshot of now: open items (pending, retrying, abandoned) whatever their
  age — an item abandoned last month still needs the operator — and items resolved within the
  period. Its mode is the mode of the item's (change, flow) outcome.
- Rejected input and Marketo calls carry no mode: both modes show the same figures for them.
- A pair whose state is `queued` (routed to Marketo, no answer yet) is in flight: it counts in
  no figure above and is reported apart, with the oldest such pair (`in_flight`).

Pure: no database or web imports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

Mode = Literal["live", "test"]
MODES: tuple[Mode, ...] = get_args(Mode)

RATE_WINDOW = timedelta(seconds=20)
RATE_LIMIT_CALLS = 100
"""Marketo allows 100 calls per 20 s per instance; a connection may use `rate_share` of it."""

QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)

OPEN_RETRY_STATUSES: tuple[str, ...] = ("pending", "retrying", "abandoned")
RETRY_STATUSES: tuple[str, ...] = (*OPEN_RETRY_STATUSES, "resolved")
FAILURE_CATEGORIES: tuple[str, ...] = ("data", "technical")

NOT_TRIGGERED_STATUSES: tuple[str, ...] = ("not_activated", "filtered_out", "failed")
"""Statuses that mean the flow's action did not happen, each broken down by reason."""

IN_FLIGHT_STATUS = "queued"
"""A delivery routed to Marketo with no answer yet: in flight, not processed. It is never
counted as processed, triggered, not triggered, a failure or a retry attempt; the figures show
it apart (`in_flight`: how many pairs, the oldest)."""

DONE = f"status <> '{IN_FLIGHT_STATUS}'"
"""SQL condition: the row is an outcome (anything but a delivery still in flight)."""

# -- reason codes ---------------------------------------------------------------------------

REASON_PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("not_activated", "source", r"^flow watches "),
    ("not_activated", "account", r"^change belongs to account "),
    ("not_activated", "inactive_registration", r"^registration .* is inactive"),
    ("not_activated", "unknown_event", r"^event .* is not in the catalog"),
    ("not_activated", "mode", r"^(test data \(|live data; a test flow)"),
    ("not_activated", "no_matching_tag", r"^no activate-for tag matched"),
)
"""(status, code, regexp on `reason`): the evaluator's reason texts, read back as the codes of
`stream.core.results.NotActivatedCode`. Outcomes carry the text, not the code."""

CODE_PREFIX = r"^([a-z][a-z0-9_]*)(:|$)"
"""A reason written as `code: text` (or a bare code) names its own code."""

FILTER_RULE = r"^filter ([0-9]+) does not hold"
"""Filtered-out reasons name the failing rule; the code is `filter_<n>` (1-based)."""

OTHER_REASON = "other"


def reason_code(status: str, reason: str | None, category: str | None = None) -> str:
    """The code an outcome's reason is grouped under (the Python twin of `reason_code_sql`)."""
    if status == "failed":
        return category or OTHER_REASON
    text = reason or ""
    if status == "filtered_out":
        rule = re.match(FILTER_RULE, text)
        if rule:
            return f"filter_{rule.group(1)}"
    for pattern_status, code, pattern in REASON_PATTERNS:
        if status == pattern_status and re.search(pattern, text):
            return code
    own = re.match(CODE_PREFIX, text)
    return own.group(1) if own else OTHER_REASON


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def reason_code_sql(
    status: str = "status", reason: str = "reason", category: str = "category"
) -> str:
    """SQL expression grouping outcomes by reason code, as `reason_code` does."""
    text = f"coalesce({reason}, '')"
    whens = [
        f"WHEN {status} = 'failed' THEN coalesce({category}, '{OTHER_REASON}')",
        f"WHEN {status} = 'filtered_out' AND regexp_matches({text}, {_sql_text(FILTER_RULE)}) "
        f"THEN 'filter_' || regexp_extract({text}, {_sql_text(FILTER_RULE)}, 1)",
    ]
    whens += [
        f"WHEN {status} = {_sql_text(s)} AND regexp_matches({text}, {_sql_text(p)}) "
        f"THEN {_sql_text(code)}"
        for s, code, p in REASON_PATTERNS
    ]
    whens.append(
        f"WHEN regexp_matches({text}, {_sql_text(CODE_PREFIX)}) "
        f"THEN regexp_extract({text}, {_sql_text(CODE_PREFIX)}, 1)"
    )
    return f"CASE {' '.join(whens)} ELSE '{OTHER_REASON}' END"


# -- Marketo calls --------------------------------------------------------------------------


def call_is_error_sql() -> str:
    """A call failed when it got no response, an HTTP error, or a Marketo error code."""
    return "(http_status IS NULL OR http_status >= 400 OR marketo_error IS NOT NULL)"


def call_error_code_sql() -> str:
    """How failed calls are grouped: Marketo's code, else the HTTP status, else the class."""
    return "coalesce(marketo_error, 'http_' || http_status::VARCHAR, error_class, 'no_response')"


def call_error_code(
    http_status: int | None, marketo_error: str | None, error_class: str | None
) -> str:
    if marketo_error is not None:
        return marketo_error
    if http_status is not None:
        return f"http_{http_status}"
    return error_class or "no_response"


def rate_budget(share: float) -> int:
    """Calls per 20 s a connection may make (as `MarketoSettings.calls_per_window`)."""
    return max(1, int(RATE_LIMIT_CALLS * share + 1e-9))


# -- periods and buckets --------------------------------------------------------------------

_PERIOD = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_PERIOD = timedelta(days=400)

BUCKET_STEPS: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=7),
)
MAX_BUCKETS = 60
"""Activity charts get the finest step that keeps them to at most this many bars."""


class ParameterError(ValueError):
    """A mode, period, limit or cursor the dashboard cannot use; the message says what works."""


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open interval [start, end) a figure covers, and its chart step."""

    start: datetime
    end: datetime
    label: str

    @property
    def bucket(self) -> timedelta:
        span = self.end - self.start
        for step in BUCKET_STEPS:
            if span / step <= MAX_BUCKETS:
                return step
        return BUCKET_STEPS[-1]

    def bucket_starts(self) -> list[datetime]:
        """Every bucket start, aligned to the Unix epoch, covering the window."""
        step = self.bucket
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        first = epoch + ((self.start - epoch) // step) * step
        starts = []
        at = first
        while at < self.end:
            starts.append(at)
            at += step
        return starts

    def bucket_of(self, at: datetime) -> datetime:
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return epoch + ((at - epoch) // self.bucket) * self.bucket


def parse_mode(value: str | None) -> Mode:
    value = (value or "live").strip().lower()
    if value == "live":
        return "live"
    if value == "test":
        return "test"
    raise ParameterError(f"mode must be live or test, got {value!r}")


def parse_window(
    period: str | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> Window:
    """`period` like 15m, 1h, 24h, 7d, 30d ending at `end` (default now), or explicit
    `start`/`end`. Explicit bounds must be timezone-aware."""
    now = now or datetime.now(UTC)
    for name, value in (("from", start), ("to", end)):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ParameterError(f"{name} must include a time zone (e.g. 2026-11-28T12:00:00Z)")
    stop = (end or now).astimezone(UTC)
    if start is not None:
        if period is not None:
            raise ParameterError("give either period or from/to, not both")
        begin = start.astimezone(UTC)
        label = f"{begin.isoformat()}/{stop.isoformat()}"
    else:
        text = (period or "24h").strip().lower()
        match = _PERIOD.match(text)
        if not match:
            raise ParameterError(
                "period must be a number and a unit m, h or d (e.g. 1h, 24h, 7d, 30d), "
                f"got {text!r}"
            )
        span = int(match.group(1)) * _UNITS[match.group(2)]
        if span > MAX_PERIOD:
            raise ParameterError(f"period is longer than {MAX_PERIOD.days} days")
        begin = stop - span
        label = text
    if begin >= stop:
        raise ParameterError("from must be before to")
    if stop - begin > MAX_PERIOD:
        raise ParameterError(f"from/to span more than {MAX_PERIOD.days} days")
    return Window(begin, stop, label)


# -- the catalogue --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    description: str
    source: str
    """The view (or input) the figure is computed from."""


SUMMARY_METRICS: tuple[Metric, ...] = (
    Metric("changes_processed", "distinct changes with at least one outcome", "outcomes"),
    Metric("unique_registrations", "distinct registration codes of those outcomes", "outcomes"),
    Metric("actions_triggered", "outcomes delivered to Marketo", "outcomes"),
    Metric(
        "actions_not_triggered",
        "not activated and filtered out (by reason code), failed (by category), and other "
        "statuses (parked, skipped, dry runs)",
        "outcomes",
    ),
    Metric("active_flows", "flows of this mode switched on", "configuration"),
    Metric("form_posts", "delivered outcomes of form_post flows", "outcomes"),
    Metric(
        "leads_created",
        "delivered outcomes Marketo reported as created (a replay of the pair leaves it created)",
        "outcomes",
    ),
    Metric("leads_updated", "delivered outcomes Marketo reported as updated", "outcomes"),
    Metric(
        "program_status_changes",
        "delivered update_program_status outcomes: changed (Marketo moved the member) and "
        "not_changed (the lead already was in that status or past it)",
        "outcomes",
    ),
    Metric(
        "registration_activity",
        "per bucket: changes processed, actions triggered and not triggered",
        "outcomes",
    ),
    Metric(
        "processing_status",
        "last change recorded (database), deliveries in flight (queued pairs and the oldest; "
        "database), last change seen, consumer lag, workers alive (runtime)",
        "runtime",
    ),
)

TROUBLESHOOTING_METRICS: tuple[Metric, ...] = (
    Metric(
        "retry_queue",
        "open items by status and category (any age), items resolved in the period",
        "retry_queue",
    ),
    Metric(
        "total_retried",
        "pairs retried (and retry attempts) in the period, replays excluded",
        "outcome_attempts",
    ),
    Metric("retried_abandoned", "retry items abandoned, last updated in the period", "retry_queue"),
    Metric(
        "validation_errors",
        "rejected input (any mode) and data failures of this mode",
        "rejected_changes, outcomes",
    ),
    Metric("retry_activity", "per bucket: retry attempts, delivered, failed", "outcome_attempts"),
    Metric(
        "connection_activity",
        "per connection (any mode): calls, errors by code, latency p50/p95/p99, calls in the "
        "last 20 s and the busiest 20 s of the period against the connection's budget",
        "api_calls",
    ),
)
