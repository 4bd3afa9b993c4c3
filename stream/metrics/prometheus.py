"""The ledger's counters in Prometheus text exposition format (version 0.0.4) for `GET /metrics`.

Counters are all-time totals read from the append-only tables, so they only grow (a scraper's
`rate()` gives the per-second figures); current states (outcomes by status, the retry queue) are
gauges. Alerts from the reliability playbook map onto them: abandoned retries
(`signal_retry_queue_items{status="abandoned"}`), data-failure spikes
(`rate(signal_outcome_attempts_total{status="failed"})`), 607s
(`signal_marketo_call_errors_total{code="607"}`), lag (`signal_consumer_lag{topic,group}`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream.messages import VERIFIED_IN_MARKETO
from stream.metrics import live
from stream.metrics.certain_sources import STATES as CERTAIN_SOURCE_STATES
from stream.metrics.certain_sources import CertainSourceStatus
from stream.metrics.definitions import (
    IN_FLIGHT_STATUS,
    MODES,
    RATE_WINDOW,
    call_error_code_sql,
    call_is_error_sql,
    rate_budget,
)
from stream.metrics.queries import RuntimeStatus
from stream.metrics.recovery import RecoveryStatus
from stream.store.retention import file_bytes, oldest_rows
from stream.store.store import Store
from stream.store.writer import Con

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Mapping[str, str]


@dataclass
class Family:
    name: str
    kind: str  # counter | gauge | summary
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        self.samples.append((suffix, labels, value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(families: Sequence[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for suffix, labels, value in family.samples:
            text = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in sorted(labels.items()))
            name = family.name + suffix
            lines.append(
                f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


def _rows(con: Con, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in con.execute(sql, list(params)).fetchall()]


_ATTEMPTS = """
    SELECT mode, status, sum(n), sum(repeated) FROM (
        SELECT mode, status, count(*) AS n, count(*) FILTER (WHERE possible_repeat) AS repeated
        FROM outcome_attempts WHERE {raw} GROUP BY ALL
        UNION ALL
        SELECT mode, status, sum(attempts), sum(attempts) FILTER (WHERE possible_repeat)
        FROM live_attempts WHERE {clean} GROUP BY ALL
        UNION ALL
        SELECT mode, status, sum(attempts), sum(attempts) FILTER (WHERE possible_repeat)
        FROM rollup_attempts GROUP BY ALL)
    GROUP BY ALL ORDER BY 1, 2
"""
"""Attempts by mode and status, and those possibly repeated after a crash: the kept rows outside
the live rollups' clean hours (`stream.metrics.live.all_time`), the clean hours' rollups, and
the hours retention pruned."""

_STATES = f"""
    SELECT mode, status, lead_result, sum(n), min(first) FROM (
        SELECT mode, status, lead_result, count(*) AS n,
               min(processed_at) FILTER (WHERE status = '{IN_FLIGHT_STATUS}') AS first
        FROM outcomes WHERE {{raw}} GROUP BY ALL
        UNION ALL
        SELECT mode, status, lead_result, sum(pairs), NULL
        FROM live_outcomes WHERE {{clean}} GROUP BY ALL
        UNION ALL
        SELECT mode, '{IN_FLIGHT_STATUS}', lead_result, sum(pairs), min(oldest)
        FROM live_in_flight WHERE {{clean}} GROUP BY ALL)
    GROUP BY ALL
"""
"""Pairs by mode, status and lead result, and the oldest in flight: the kept rows outside the
clean hours, and the clean hours' outcomes and pairs in flight. Pairs by status and in flight,
delivered pairs by lead result and those verified in Marketo are all sums of these."""


def collect_on(
    con: Con,
    *,
    now: datetime | None = None,
    runtime: RuntimeStatus | None = None,
    rate_shares: Mapping[str, float] | None = None,
) -> list[Family]:
    now = now or datetime.now(UTC)
    runtime = runtime or RuntimeStatus()
    received = Family(
        "signal_changes_received_total", "counter", "Changes archived, by mode of the change."
    )
    # Counted with filters, not grouped: grouping by a boolean cost 15 ms on 3.3M changes, this 3.
    ((live_changes, test_changes),) = _rows(
        con,
        "SELECT count(*) FILTER (WHERE NOT is_test), count(*) FILTER (WHERE is_test) FROM changes",
    )
    for mode, n in (("live", live_changes), ("test", test_changes)):
        if n:
            received.add(n, mode=mode)
    rejected = Family(
        "signal_changes_rejected_total", "counter", "Input rejected as invalid (any mode)."
    )
    rejected.add(_rows(con, "SELECT count(*) FROM rejected_changes")[0][0])
    attempts = Family(
        "signal_outcome_attempts_total",
        "counter",
        "Evaluations and delivery attempts recorded, by mode and status "
        "(status queued: deliveries routed to Marketo, answered by a later row).",
    )
    parts, raw, raw_params = live.all_time(con)
    clean, clean_params = parts.rollup_condition()
    counted: dict[str, int] = {}
    for mode, status, n, repeated in _rows(
        con, _ATTEMPTS.format(raw=raw, clean=clean), [*raw_params, *clean_params]
    ):
        attempts.add(n, mode=mode, status=status)
        counted[mode] = counted.get(mode, 0) + int(repeated or 0)
    states = Family("signal_outcomes", "gauge", "(change, flow) pairs by current status and mode.")
    leads = Family("signal_leads", "gauge", "Delivered pairs by Marketo's lead result and mode.")
    by_status: dict[tuple[str, str], int] = {}
    by_result: dict[tuple[str, str], int] = {}
    flying: dict[str, tuple[int, datetime | None]] = {}
    found: dict[str, int] = {}
    for mode, status, result, n, first in _rows(
        con,
        _STATES.format(raw=raw, clean=clean),
        [*raw_params, *clean_params, *clean_params],
    ):
        n = int(n)
        by_status[(mode, status)] = by_status.get((mode, status), 0) + n
        if status == "delivered" and result is not None:
            by_result[(mode, result)] = by_result.get((mode, result), 0) + n
        if result == VERIFIED_IN_MARKETO:
            found[mode] = found.get(mode, 0) + n
        if status == IN_FLIGHT_STATUS:
            count, oldest_at = flying.get(mode, (0, None))
            flying[mode] = (count + n, first if oldest_at is None else min(oldest_at, first))
    for (mode, status), n in sorted(by_status.items()):
        states.add(n, mode=mode, status=status)
    for (mode, result), n in sorted(by_result.items()):
        leads.add(n, mode=mode, result=result)
    in_flight = Family(
        "signal_in_flight_deliveries",
        "gauge",
        "(change, flow) pairs routed to Marketo with no answer yet (state queued), by mode.",
    )
    oldest = Family(
        "signal_in_flight_oldest_age_seconds",
        "gauge",
        "Age of the oldest pair in flight (state queued), by mode; 0 when none.",
    )
    for mode in MODES:
        n, first = flying.get(mode, (0, None))
        in_flight.add(n, mode=mode)
        oldest.add(0.0 if first is None else max(0.0, (now - first).total_seconds()), mode=mode)
    repeats = Family(
        "signal_repeat_after_crash_total",
        "counter",
        "Deliveries made again after a crash for pairs marked sending without Marketo's answer "
        "on record (Marketo may have run each twice), by mode.",
    )
    for mode in MODES:
        repeats.add(int(counted.get(mode, 0)), mode=mode)
    verified = Family(
        "signal_verified_after_crash_total",
        "counter",
        "Pairs whose unanswered call Marketo's activity log showed it had run, recorded delivered "
        "instead of sent again after a crash or timeout, by mode.",
    )
    for mode, n in _rows(
        con,
        "SELECT mode, sum(pairs) FROM rollup_outcomes "
        f"WHERE lead_result = '{VERIFIED_IN_MARKETO}' GROUP BY 1",
    ):
        found[mode] = found.get(mode, 0) + int(n)
    for mode in MODES:
        verified.add(int(found.get(mode, 0)), mode=mode)
    queue = Family("signal_retry_queue_items", "gauge", "Retry queue items by status and category.")
    for status, category, n in _rows(
        con, "SELECT status, category, count(*) FROM retry_queue GROUP BY ALL ORDER BY 1, 2"
    ):
        queue.add(n, status=status, category=category)

    calls = Family("signal_marketo_calls_total", "counter", "HTTP calls to Marketo, by connection.")
    errors = Family(
        "signal_marketo_call_errors_total",
        "counter",
        "Failed Marketo calls by connection and code (Marketo code, http_<status> or class).",
    )
    duration = Family(
        "signal_marketo_call_duration_ms", "summary", "Marketo call duration in milliseconds."
    )
    for cid, n, total_ms in _rows(
        con,
        "SELECT connection_id, sum(n), sum(ms) FROM ("
        "SELECT connection_id, count(*) AS n, sum(duration_ms) AS ms FROM api_calls GROUP BY 1 "
        "UNION ALL SELECT connection_id, sum(calls), sum(duration_ms) FROM rollup_api_calls "
        "GROUP BY 1) GROUP BY 1 ORDER BY 1",
    ):
        calls.add(n, connection=cid)
        duration.add(total_ms or 0.0, "_sum", connection=cid)
        duration.add(n, "_count", connection=cid)
    for cid, code, n in _rows(
        con,
        f"SELECT connection_id, code, sum(n) FROM ("
        f"SELECT connection_id, {call_error_code_sql()} AS code, count(*) AS n FROM api_calls "
        f"WHERE {call_is_error_sql()} GROUP BY ALL "
        "UNION ALL SELECT connection_id, error_code, sum(calls) FROM rollup_api_calls "
        "WHERE error_code <> '' GROUP BY ALL) GROUP BY ALL ORDER BY 1, 2",
    ):
        errors.add(n, connection=cid, code=code)

    if rate_shares is None:
        rate_shares = {
            str(cid): float(share)
            for cid, share in _rows(
                con,
                "SELECT object_id, TRY_CAST(body->>'rate_share' AS DOUBLE) FROM config_objects "
                "WHERE kind = 'connection'",
            )
            if share is not None
        }
    recent = Family(
        "signal_marketo_calls_last_20s", "gauge", "Marketo calls in the last 20 s, by connection."
    )
    budget = Family(
        "signal_marketo_rate_budget_20s",
        "gauge",
        "Calls per 20 s the connection may make (100 x its rate share).",
    )
    seen = dict(
        (str(cid), int(n))
        for cid, n in _rows(
            con,
            "SELECT connection_id, count(*) FROM api_calls "
            "WHERE started_at >= ? AND started_at < ? GROUP BY 1",
            [now - RATE_WINDOW, now],
        )
    )
    for cid in sorted(
        set(seen) | set(rate_shares) | {str(s[1]["connection"]) for s in calls.samples}
    ):
        recent.add(seen.get(cid, 0), connection=cid)
        budget.add(rate_budget(rate_shares.get(cid, 1.0)), connection=cid)

    families = [received, rejected, attempts, states, leads, in_flight, oldest, repeats, verified]
    families.append(queue)
    families += [calls, errors, duration]
    families += [recent, budget]
    if runtime.consumer_lag is not None:
        lag = Family(
            "signal_consumer_lag",
            "gauge",
            "Messages of a topic not yet committed by a group that reads it (runtime).",
        )
        for g in runtime.consumer_lag.groups:
            lag.add(g.lag, topic=g.topic, group=g.group)
        families.append(lag)
    if runtime.workers_alive is not None:
        alive = Family("signal_workers_alive", "gauge", "Pipeline workers alive (runtime).")
        alive.add(runtime.workers_alive)
        families.append(alive)
    if runtime.recovery is not None:
        families += recovery_families(runtime.recovery)
    if runtime.certain_sources:
        families += certain_source_families(runtime.certain_sources, now)
    families += ledger_families(con, runtime.retention)
    if runtime.last_change_seen_at is not None:
        last = Family(
            "signal_last_change_seen_timestamp_seconds",
            "gauge",
            "Unix time of the newest change seen (runtime).",
        )
        last.add(runtime.last_change_seen_at.timestamp())
        families.append(last)
    return families


def ledger_families(con: Con, retention: Mapping[str, Any] | None) -> list[Family]:
    """The ledger's disk use and the oldest row each table keeps; with the pruner's snapshot
    (`stream.control.retention.Retention.snapshot`), the retention settings and rows pruned."""
    size = Family(
        "signal_ledger_file_bytes",
        "gauge",
        "Disk used by the ledger: the DuckDB file and its write-ahead log, in bytes.",
    )
    free = Family(
        "signal_ledger_free_bytes",
        "gauge",
        "Free blocks inside the DuckDB file (reused before the file grows), in bytes.",
    )
    for (path,) in _rows(
        con, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ):
        if path:
            for file, n in file_bytes(Path(path)).items():
                size.add(float(n), file=file)
    for block, blocks in _rows(con, "SELECT block_size, free_blocks FROM pragma_database_size()"):
        free.add(float(int(block) * int(blocks)))
    oldest = Family(
        "signal_ledger_oldest_row_timestamp_seconds",
        "gauge",
        "Unix time of the oldest row each ledger table keeps (change_log_payload: the oldest "
        "change whose payload retention has not redacted).",
    )
    for table, at in oldest_rows(con).items():
        if at is not None:
            oldest.add(at.timestamp(), table=table)
    families = [size, free, oldest]
    if retention is not None:
        days = Family("signal_ledger_retention_days", "gauge", "Retention settings, in days.")
        for what, key in (
            ("payload", "payload_days"),
            ("outcomes", "outcomes_days"),
            ("retry_resolved", "retry_resolved_days"),
        ):
            days.add(float(retention["policy"][key]), what=what)
        pruned = Family(
            "signal_ledger_retention_rows_total",
            "counter",
            "Rows retention dropped or redacted since control started, by table and action.",
        )
        for name, n in sorted(retention["totals"].items()):
            table, _, action = name.partition(":")
            pruned.add(float(n), table=table, action=action)
        families += [days, pruned]
        last = retention.get("last_pass")
        if last is not None:
            took = Family(
                "signal_ledger_retention_last_pass_seconds",
                "gauge",
                "How long the last retention pass took.",
            )
            took.add(float(last["seconds"]))
            longest = Family(
                "signal_ledger_retention_longest_step_seconds",
                "gauge",
                "The longest one step of the last retention pass held the ledger's writer "
                "(what recording queued behind it waited).",
            )
            longest.add(float(last.get("longest_step_s", 0.0)))
            families += [took, longest]
    return families


def recovery_families(status: RecoveryStatus) -> list[Family]:
    """Control's recovery: its settings, what the ledger holds without a final outcome (as of
    the last scan), what it re-drove and gave up on. Alert on `signal_recovery_stranded > 0`,
    on a growing `signal_recovery_oldest_age_seconds`, and on failed scans."""

    def gauge(name: str, help_text: str, value: float) -> Family:
        family = Family(name, "gauge", help_text)
        family.add(value)
        return family

    def counter(name: str, help_text: str, value: float) -> Family:
        family = Family(name, "counter", help_text)
        family.add(value)
        return family

    families = [
        gauge(
            "signal_recovery_grace_seconds",
            "How long a change or queued delivery may wait for its outcome before recovery "
            "re-drives it.",
            status.grace_s,
        ),
        gauge(
            "signal_recovery_max_redrives",
            "Redrives per (change, flow) before recovery gives up (stranded).",
            status.max_redrives,
        ),
        gauge(
            "signal_recovery_unpublished_changes",
            "Changes accepted by the ingest API not yet acknowledged by the broker.",
            status.unpublished,
        ),
        gauge(
            "signal_recovery_unrouted_changes",
            "Changes published longer than the grace ago with no outcome for any flow.",
            status.unrouted,
        ),
        gauge(
            "signal_recovery_queued_overdue",
            "(change, flow) pairs queued for Marketo longer than the grace ago, no answer.",
            status.queued_overdue,
        ),
        counter(
            "signal_recovery_redriven_total",
            "(change, flow) redrives made by recovery (from the ledger).",
            status.redriven_total,
        ),
        gauge(
            "signal_recovery_stranded",
            "Pairs re-driven the allowed number of times and still without a final outcome.",
            status.stranded,
        ),
        gauge(
            "signal_recovery_nothing_expected_changes",
            "Changes recovery found no flow would act on.",
            status.nothing_expected,
        ),
        gauge(
            "signal_recovery_deferred_changes",
            "Changes without any outcome waiting for an event control's catalog does not hold "
            "(bounded by signal_recovery_defer_limit).",
            status.deferred,
        ),
        counter(
            "signal_recovery_deferral_expired_total",
            "Deferred changes given up on (waited too long, or too many waited) and recorded "
            "as failed (from the ledger).",
            status.deferral_expired,
        ),
        counter(
            "signal_recovery_scans_failed_total",
            "Recovery scans that failed since control started (broker or store down).",
            status.failed_scans,
        ),
    ]
    families.append(
        gauge(
            "signal_recovery_oldest_age_seconds",
            "Age of the oldest unpublished change, unrouted change or overdue queued pair "
            "(0 when there is none).",
            status.oldest_age_s or 0.0,
        )
    )
    if status.defer_max_s is not None:
        families.append(
            gauge(
                "signal_recovery_defer_max_seconds",
                "How long a change may stay deferred before it is recorded as failed.",
                status.defer_max_s,
            )
        )
    if status.defer_limit is not None:
        families.append(
            gauge(
                "signal_recovery_defer_limit",
                "How many changes may wait deferred at once.",
                status.defer_limit,
            )
        )
    if status.last_scan_at is not None:
        families.append(
            gauge(
                "signal_recovery_last_scan_timestamp_seconds",
                "Unix time of the last recovery scan.",
                status.last_scan_at.timestamp(),
            )
        )
    if status.reseeded_keys is not None:
        families.append(
            gauge(
                "signal_recovery_reseeded_keys",
                "Delivered keys written back to signal-delivered from the ledger at start.",
                status.reseeded_keys,
            )
        )
    return families


def certain_source_families(
    statuses: Sequence[CertainSourceStatus], now: datetime | None = None
) -> list[Family]:
    """Each Certain source's state, lag, last poll and totals (`stream.control.certain_poller`);
    alert on `signal_certain_source_state{state="stopped: unauthorized"} == 1` and on a growing
    lag."""
    moment = now or datetime.now(UTC)
    state = Family(
        "signal_certain_source_state",
        "gauge",
        "1 for the state each Certain source is in (polling, backing off, stopped: …).",
    )
    lag = Family(
        "signal_certain_source_lag_seconds",
        "gauge",
        "Now minus the newest dateModified the Certain source has seen.",
    )
    records = Family(
        "signal_certain_source_last_poll_records", "gauge", "Records read by the last poll."
    )
    counters = {
        name: Family(f"signal_certain_source_{name}_total", "counter", help_text)
        for name, help_text in (
            ("polls", "Polls completed by the Certain source."),
            ("records", "Records read from Certain."),
            ("changes", "Change events derived from the records read."),
            ("rejected", "Malformed records rejected (kept in rejected_changes)."),
            ("requests", "HTTP requests made to Certain."),
            ("errors", "Polls that failed (5xx, timeout, refusal, 401)."),
        )
    }
    last = Family(
        "signal_certain_source_last_poll_timestamp_seconds",
        "gauge",
        "Unix time of the Certain source's last completed poll.",
    )
    for s in statuses:
        labels = {"source": s.source_id, "account": s.account_code}
        for name in CERTAIN_SOURCE_STATES:
            state.add(1.0 if s.state == name else 0.0, **labels, state=name)
        seconds = s.lag_s(moment)
        if seconds is not None:
            lag.add(seconds, **labels)
        records.add(s.last_poll_records, **labels)
        counters["polls"].add(s.polls, **labels)
        counters["records"].add(s.records_total, **labels)
        counters["changes"].add(s.changes_total, **labels)
        counters["rejected"].add(s.rejected_total, **labels)
        counters["requests"].add(s.requests_total, **labels)
        counters["errors"].add(s.errors_total, **labels)
        if s.last_poll_at is not None:
            last.add(s.last_poll_at.timestamp(), **labels)
    return [state, lag, records, *counters.values(), last]


async def exposition(
    store: Store,
    *,
    runtime: RuntimeStatus | None = None,
    rate_shares: Mapping[str, float] | None = None,
    now: datetime | None = None,
) -> str:
    families = await store.read(
        lambda con: live.one_snapshot(
            con, lambda c: collect_on(c, now=now, runtime=runtime, rate_shares=rate_shares)
        )
    )
    return render(families)
