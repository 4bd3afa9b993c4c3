"""Metrics: Summary, Troubleshooting and the Activity Feed, per mode (live/test) and period.

All three come from control in one refresh; a part this control does not serve shows a plain
"not available" note instead of failing the others. The feed follows new outcomes while its view
is at the bottom, and holds still (counting what arrived) while the operator scrolls back; `s`
cycles its status filter (control filters, so a rare status is not crowded out of the page by
the not_activated rows that make most of a busy feed).

The Summary says what each figure counts: changes and registrations once each, actions once
per change × flow (every flow of the mode evaluates every change, so "not triggered" easily
outnumbers the changes processed).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, RichLog, Sparkline, Static, TabbedContent, TabPane

from console import fmt
from console.calls import api_worker
from console.messages import ApiFailed, MetricsSnapshot
from console.screens.base import BaseScreen
from console.widgets.table import SignalTable

PERIODS = ("1h", "24h", "7d", "30d")
T = TypeVar("T")


@dataclass(frozen=True)
class FeedFilter:
    """One choice of the feed's status filter: statuses kept, or statuses left out."""

    name: str
    label: str
    status: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


FEED_FILTERS: tuple[FeedFilter, ...] = (
    FeedFilter("all", "all"),
    FeedFilter("activated", "all but not activated", exclude=("not_activated",)),
    FeedFilter("delivered", "delivered", status=("delivered",)),
    FeedFilter("failed", "failed", status=("failed",)),
    FeedFilter("not_activated", "not activated", status=("not_activated",)),
    FeedFilter("filtered_out", "filtered out", status=("filtered_out",)),
)


def _n(value: Any) -> str:
    return f"{int(value or 0):,}"


def _opt(value: Any) -> str:
    return "—" if value is None else str(value)


def selector_text(mode: str, period: str) -> Text:
    text = Text("mode ")
    for m in ("live", "test"):
        text.append(f" {m.upper()} ", style="reverse bold" if m == mode else "dim")
    text.append("   period ")
    for p in PERIODS:
        text.append(f" {p} ", style="reverse bold" if p == period else "dim")
    text.append("   (m / d)", style="dim")
    return text


PER_PAIR = "Per change × flow (one outcome for each flow that evaluated a change)"
"""The unit of triggered, not triggered, leads and form posts: metrics.definitions counts an
outcome per (change, flow) pair, so these do not add up to the changes processed."""


def summary_text(body: dict[str, Any]) -> str:
    not_triggered = body.get("actions_not_triggered") or {}
    na = (not_triggered.get("not_activated") or {}).get("total", 0)
    fo = (not_triggered.get("filtered_out") or {}).get("total", 0)
    failed = (not_triggered.get("failed") or {}).get("total", 0)
    status = body.get("processing_status") or {}
    active = body.get("active_flows")
    program = body.get("program_status_changes") or {}
    lines = [
        "Per change",
        f"  Changes processed  {_n(body.get('changes_processed')):>8}   "
        f"Unique registrations  {_n(body.get('unique_registrations')):>8}",
        PER_PAIR,
        f"  Actions triggered  {_n(body.get('actions_triggered')):>8}   "
        f"Actions not triggered {_n(not_triggered.get('total')):>8}",
        f"    not activated {_n(na)} · filtered out {_n(fo)} · failed {_n(failed)}",
        f"  Leads created      {_n(body.get('leads_created')):>8}   "
        f"Leads updated         {_n(body.get('leads_updated')):>8}",
        f"  Form posts         {_n(body.get('form_posts')):>8}",
        f"  Program statuses   {_n(program.get('changed', 0)):>8}   "
        f"Program not changed   {_n(program.get('not_changed', 0)):>8}",
        f"Active flows (now)   {'—' if active is None else _n(active):>8}",
        "Processing: last change recorded "
        f"{fmt.short_time(status.get('last_change_recorded_at')) or '—'}"
        f" · lag {_opt(status.get('consumer_lag'))} · workers {_opt(status.get('workers_alive'))}",
    ]
    by_topic = status.get("consumer_lag_by_topic")
    if isinstance(by_topic, dict) and by_topic:
        lines.append("  lag by topic: " + lag_by_topic_text(by_topic))
    return "\n".join(lines)


LAG_TOPIC_LABELS = {
    "certain-changes": "changes",
    "signal-deliveries": "deliveries",
    "signal-outcomes": "outcomes",
}
"""Short names of the topics whose lag control reports (their full names label /metrics)."""


def lag_by_topic_text(by_topic: dict[str, Any]) -> str:
    known = [t for t in LAG_TOPIC_LABELS if t in by_topic]
    others = sorted(t for t in by_topic if t not in LAG_TOPIC_LABELS)
    return " · ".join(f"{LAG_TOPIC_LABELS.get(t, t)} {_n(by_topic[t])}" for t in [*known, *others])


def troubleshooting_text(body: dict[str, Any]) -> str:
    queue = body.get("retry_queue") or {}
    by_status = queue.get("by_status") or {}
    categories: dict[str, int] = {}
    for per in (queue.get("by_status_and_category") or {}).values():
        for category, count in (per or {}).items():
            categories[category] = categories.get(category, 0) + int(count or 0)
    validation = body.get("validation_errors") or {}
    statuses = " · ".join(f"{k} {_n(v)}" for k, v in by_status.items()) or "empty"
    cats = " · ".join(f"{k} {_n(v)}" for k, v in categories.items())
    lines = [
        f"Retry queue open {_n(queue.get('open'))}: {statuses}",
        f"  by category: {cats or '—'}",
        f"Total retried {_n(body.get('total_retried'))} · attempts "
        f"{_n(body.get('retry_attempts'))} · retried abandoned "
        f"{_n(body.get('retried_abandoned'))}",
        f"Validation errors {_n(validation.get('total'))} (rejected input "
        f"{_n(validation.get('rejected_input'))}, data failures "
        f"{_n(validation.get('data_failures'))})",
    ]
    recovery = body.get("recovery")
    if isinstance(recovery, dict):
        lines += recovery_lines(recovery)
    ledger = body.get("ledger")
    if isinstance(ledger, dict):
        lines += ledger_lines(ledger)
    return "\n".join(lines)


def _megabytes(value: Any) -> str:
    return "—" if value is None else f"{int(value) / 1e6:,.1f} MB"


def _days(value: Any) -> str:
    return "—" if value is None else f"{float(value):g} d"


def _date(text: Any) -> str:
    """The UTC day of an ISO time: the oldest rows are days or months old."""
    if not isinstance(text, str) or not text:
        return "—"
    try:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d")
    except ValueError:
        return fmt.safe(text)


def ledger_lines(ledger: dict[str, Any]) -> list[str]:
    """Retention's settings, the ledger's size on disk and the oldest row the busiest tables
    keep (the whole ledger, whatever the period)."""
    policy = ledger.get("policy") or {}
    size = ledger.get("file_bytes") or {}
    oldest = ledger.get("oldest") or {}
    last = ledger.get("last_pass") or {}
    lines = [
        f"Ledger {_megabytes(size.get('database'))} (WAL {_megabytes(size.get('wal'))}) · keeps "
        f"payloads {_days(policy.get('payload_days'))}, outcomes "
        f"{_days(policy.get('outcomes_days'))}, resolved retries "
        f"{_days(policy.get('retry_resolved_days'))}",
        f"  oldest outcome {_date(oldest.get('outcome_log'))} · call "
        f"{_date(oldest.get('api_call_log'))} · full payload "
        f"{_date(oldest.get('change_log_payload'))} · last prune "
        f"{_date(last.get('finished_at'))}",
    ]
    if last.get("error"):
        lines.append(f"  last prune failed: {last['error']}")
    return lines


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "—"
    value = float(seconds)
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def recovery_lines(recovery: dict[str, Any]) -> list[str]:
    """Control's recovery: what the ledger holds without an outcome, re-driven and given up."""
    stranded = int(recovery.get("stranded") or 0)
    lines = [
        f"Recovery (grace {_duration(recovery.get('grace_s'))}, every "
        f"{_duration(recovery.get('every_s'))}, at most {_n(recovery.get('max_redrives'))} "
        "redrives a pair)",
        f"  unpublished {_n(recovery.get('unpublished'))} · unrouted "
        f"{_n(recovery.get('unrouted'))} · queued overdue {_n(recovery.get('queued_overdue'))}"
        f" · oldest {_duration(recovery.get('oldest_age_s'))}",
        f"  re-driven {_n(recovery.get('redriven_total'))} · stranded {_n(stranded)}"
        f"{' (re-driven the most times, still no outcome)' if stranded else ''}"
        f" · last scan {fmt.short_time(recovery.get('last_scan_at')) or '—'}",
    ]
    if recovery.get("last_error"):
        lines.append(f"  last scan failed: {recovery['last_error']}")
    return lines


def feed_key(item: dict[str, Any]) -> str:
    return f"{item.get('time')}|{item.get('change_id')}|{item.get('flow_id')}"


def feed_line(item: dict[str, Any]) -> Text:
    text = Text(f"{fmt.short_time(item.get('time'))} ")
    text.append(f"{fmt.safe(item.get('registration_code') or '—'):<10} ")
    text.append(f"{fmt.cell(item.get('event_code') or '', 10):<10} ")
    text.append(f"{fmt.cell(item.get('flow_name') or item.get('flow_id'), 18):<18} ")
    text.append_text(fmt.outcome_text(str(item.get("status", ""))))
    detail = item.get("detail") or ""
    if detail:
        text.append(f" {fmt.safe(detail)}", style="dim")
    return text


class MetricsScreen(BaseScreen):
    CSS_PATH = Path(__file__).with_name("metrics.tcss")
    SCOPE = "metrics"
    TITLE_TEXT = "Metrics"
    FEED_TAB = "feed"

    def __init__(self) -> None:
        super().__init__()
        self.mode = "live"
        self.period = "24h"
        self.feed_filter = FEED_FILTERS[0]
        self.seen: deque[str] = deque(maxlen=2000)
        self.unseen = 0
        self.following = True
        self.following_pinned = False
        """Set by `end`: the scroll to the bottom may not have happened by the next poll."""

    def body(self) -> ComposeResult:
        yield Static(selector_text(self.mode, self.period), id="selectors")
        with TabbedContent(id="tabs"):
            with TabPane("Summary", id="summary"), Vertical():
                yield Static("loading…", id="summary-text")
                yield Static("Registration activity (changes)", classes="plot-title")
                yield Sparkline([], id="activity-spark")
            with TabPane("Troubleshooting", id="trouble"), Vertical():
                yield Static("loading…", id="trouble-text")
                yield Static("Retry activity", classes="plot-title")
                yield Sparkline([], id="retry-spark")
                table = SignalTable(id="conn-activity", cursor_type="row")
                table.add_column("Connection", key="id", width=16)
                table.add_column("Calls", key="calls", width=6)
                table.add_column("Errors", key="errors", width=6)
                table.add_column("p95 ms", key="p95", width=7)
                table.add_column("Headroom/20s", key="headroom")
                yield table
            with TabPane("Activity Feed", id="feed"), Vertical():
                yield Static("", id="feed-state")
                yield RichLog(id="feed-log", max_lines=1000, wrap=False, markup=False)

    def on_mount(self) -> None:
        self.query_one("#feed-log", RichLog).auto_scroll = False

    # --- selectors -------------------------------------------------------------------------

    def action_toggle_mode(self) -> None:
        self.mode = "test" if self.mode == "live" else "live"
        self._changed_selection()

    def action_next_period(self) -> None:
        self.period = PERIODS[(PERIODS.index(self.period) + 1) % len(PERIODS)]
        self._changed_selection()

    def action_cycle_feed_status(self) -> None:
        """The next status filter of the feed, shown at once: the feed is cleared and refetched
        (control filters), and its tab comes to the front so the key visibly does something."""
        index = FEED_FILTERS.index(self.feed_filter)
        self.feed_filter = FEED_FILTERS[(index + 1) % len(FEED_FILTERS)]
        self.query_one(TabbedContent).active = self.FEED_TAB
        self._changed_selection()

    def _changed_selection(self) -> None:
        self.query_one("#selectors", Static).update(selector_text(self.mode, self.period))
        self.query_one("#feed-log", RichLog).clear()
        self.seen.clear()
        self.unseen = 0
        self.following = True
        self._feed_state()
        self.action_refresh_now()

    def action_tab(self, step: int) -> None:
        tabs = self.query_one(TabbedContent)
        order = ["summary", "trouble", "feed"]
        current = order.index(tabs.active) if tabs.active in order else 0
        tabs.active = order[(current + step) % len(order)]

    def action_follow(self) -> None:
        log = self.query_one("#feed-log", RichLog)
        log.scroll_end(animate=False)
        self.unseen = 0
        self.following = True
        self.following_pinned = True
        self._feed_state()

    # --- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        self.fetch(self.mode, self.period, self.feed_filter)

    @api_worker("metrics-load")
    async def fetch(self, mode: str, period: str, feed: FeedFilter) -> None:
        """The three parts at once; the first of them (in this order) that failed is told."""
        client = self.console.client
        results = await asyncio.gather(
            client.metrics_summary(mode, period),
            client.metrics_troubleshooting(mode, period),
            client.activity(
                mode, period, limit=200, status=feed.status, exclude_status=feed.exclude
            ),
            return_exceptions=True,
        )
        parts: list[Any] = []
        for name, result in zip(("summary", "troubleshooting", "activity"), results, strict=True):
            parts.append(await self.call_api(f"load {name}", _settled(result)))
        summary, trouble, items = parts
        self.post_message(
            MetricsSnapshot(mode, period, summary, trouble, items or [], feed_status=feed.name)
        )

    @on(MetricsSnapshot)
    def snapshot(self, message: MetricsSnapshot) -> None:
        wanted = (self.mode, self.period, self.feed_filter.name)
        if (message.mode, message.period, message.feed_status) != wanted:
            return
        self.query_one("#summary-text", Static).update(Text(summary_text(message.summary)))
        activity = message.summary.get("registration_activity") or []
        self.query_one("#activity-spark", Sparkline).data = [
            float(b.get("changes", 0)) for b in activity
        ]
        body = message.troubleshooting
        self.query_one("#trouble-text", Static).update(Text(troubleshooting_text(body)))
        retries = body.get("retry_activity") or []
        self.query_one("#retry-spark", Sparkline).data = [
            float(b.get("retries", 0)) for b in retries
        ]
        self._connections(body.get("connection_activity") or [])
        self._feed(message.feed)
        self.loaded()

    def _connections(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one("#conn-activity", DataTable)
        with self.app.batch_update():
            table.clear()
            for row in rows:
                latency = row.get("latency_ms") or {}
                limit = row.get("rate_limit") or {}
                table.add_row(
                    *fmt.cells(
                        [
                            fmt.cell(row.get("connection_id"), 16),
                            _n(row.get("calls")),
                            _n(row.get("errors")),
                            f"{float(latency.get('p95') or 0):.0f}",
                            f"{limit.get('headroom', '—')} of {limit.get('budget_per_20s', '—')}",
                        ]
                    ),
                    key=str(row.get("connection_id")),
                )
        table.border_title = "connection activity"

    def _feed(self, items: list[dict[str, Any]]) -> None:
        log = self.query_one("#feed-log", RichLog)
        self.following = (
            log.is_vertical_scroll_end or log.max_scroll_y == 0 or self.following_pinned
        )
        self.following_pinned = False
        fresh = [i for i in reversed(items) if feed_key(i) not in self.seen]
        for item in fresh:
            self.seen.append(feed_key(item))
            log.write(feed_line(item), scroll_end=self.following)
        self.unseen = 0 if self.following else self.unseen + len(fresh)
        self._feed_state()

    def _feed_state(self) -> None:
        if self.following:
            state = "following new outcomes"
        else:
            state = f"paused ({self.unseen} new) — end to follow"
        text = Text(f"{len(self.seen)} outcomes · {state} · status: ", style="dim")
        text.append(self.feed_filter.label, style="bold" if self.feed_filter.name != "all" else "")
        text.append(" (s)", style="dim")
        self.query_one("#feed-state", Static).update(text)

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        self.console.report_error(message.what, message.error)
        self.loaded(ok=False)


async def _settled(result: T | BaseException) -> T:
    """A gathered result as the call would have ended: its answer, or its exception raised."""
    if isinstance(result, BaseException):
        raise result
    return result
