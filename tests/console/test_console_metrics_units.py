"""The Metrics screen says what each figure counts, and the Activity Feed's status filter.

Against a real control (store, configuration, operator API): the Summary groups its figures by
unit (per change; per change × flow), and `s` cycles the feed through status filters that
control applies (`GET /api/v1/activity?status=…|exclude_status=…`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from textual.pilot import Pilot
from textual.widgets import RichLog, TabbedContent

from console.messages import MetricsSnapshot
from console.screens.metrics import FEED_FILTERS, PER_PAIR, MetricsScreen, summary_text
from stream.store.rows import OutcomeRow
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle
from tests.console.control_harness import Control

SEEDED = 54
"""Outcomes the harness seeds in the live 24 h window: 42 delivered, 12 failed."""
DELIVERED, FAILED = 42, 12
NOT_ACTIVATED = 30


def not_activated(count: int) -> list[OutcomeRow]:
    """Changes every flow saw and did not act on: most of a real feed."""
    now = datetime.now(UTC)
    return [
        OutcomeRow(
            change_id=f"na-{i:03d}",
            flow_id="attended-follow-up",
            flow_name="Attended Follow Up",
            mode="live",
            status="not_activated",
            reason="flow watches registration.status_change; this is a event.create_update change",
            occurred_at=now - timedelta(seconds=30 + i),
            processed_at=now - timedelta(seconds=20 + i),
            registration_code=f"NA{i:04d}",
            event_code="SUMMIT26",
        )
        for i in range(count)
    ]


def feed_lines(screen: Any) -> list[str]:
    log = screen.query_one("#feed-log", RichLog)
    return ["".join(segment.text for segment in strip) for strip in log.lines]


def feed_state(pilot: Pilot[Any]) -> str:
    lines = screen_text(pilot).splitlines()
    return next(line.strip() for line in lines if " outcomes · " in line)


def test_summary_text_groups_figures_by_what_they_count() -> None:
    body = {
        "changes_processed": 4665,
        "unique_registrations": 4100,
        "actions_triggered": 812,
        "actions_not_triggered": {
            "total": 21524,
            "not_activated": {"total": 21000},
            "filtered_out": {"total": 400},
            "failed": {"total": 124},
        },
        "active_flows": 6,
        "form_posts": 12,
        "leads_created": 500,
        "leads_updated": 300,
        "program_status_changes": {"changed": 1250, "not_changed": 37},
        "processing_status": {},
    }
    lines = summary_text(body).splitlines()
    per_change = lines.index("Per change")
    per_pair = lines.index(PER_PAIR)
    assert "change × flow" in PER_PAIR

    def at(label: str) -> int:
        return next(n for n, line in enumerate(lines) if label in line)

    assert per_change < at("Changes processed     4,665") < per_pair
    assert per_change < at("Unique registrations     4,100") < per_pair
    assert per_pair < at("Actions not triggered   21,524")
    assert per_pair < at("Actions triggered       812") < at("not activated 21,000")
    assert per_pair < at("Leads created") and per_pair < at("Form posts")
    assert per_pair < at("Program statuses      1,250   Program not changed         37")
    assert "(now)" in lines[at("Active flows")]
    assert all(len(line) <= 76 for line in lines), "fits an 80-column terminal"


async def test_the_summary_screen_shows_the_units(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "5")
        await settle(pilot)
        text = screen_text(pilot)
        assert "Per change\n" in text or "Per change " in text
        assert PER_PAIR in text
        assert "Changes processed        54" in text
        assert "Actions not triggered" in text
        assert "Registration activity (changes)" in text
        assert not app.errors


def _statuses(screen: Any) -> set[str]:
    found = set()
    for line in feed_lines(screen):
        for status in ("not_activated", "delivered", "failed", "filtered_out"):
            if status in line:
                found.add(status)
    return found


async def test_s_cycles_the_feed_status_filter_that_control_applies(
    control: Control, make_console: MakeConsole
) -> None:
    assert control.store is not None
    await control.acall(control.store.record_outcomes(not_activated(NOT_ACTIVATED)))
    app = make_console(control)
    expected: dict[str, tuple[int, set[str]]] = {
        "all": (SEEDED + NOT_ACTIVATED, {"delivered", "failed", "not_activated"}),
        "activated": (SEEDED, {"delivered", "failed"}),
        "delivered": (DELIVERED, {"delivered"}),
        "failed": (FAILED, {"failed"}),
        "not_activated": (NOT_ACTIVATED, {"not_activated"}),
        "filtered_out": (0, set()),
    }
    assert [f.name for f in FEED_FILTERS] == list(expected)
    async with app.run_test(size=(100, 30)) as pilot:
        await keys(pilot, "5")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MetricsScreen)
        tabs = screen.query_one(TabbedContent)
        assert tabs.active == "summary"
        order = [*[f.name for f in FEED_FILTERS[1:]], "all"]
        await keys(pilot, "l", "l")
        await settle(pilot)
        count, statuses = expected["all"]
        assert feed_state(pilot).startswith(f"{count} outcomes")
        assert "status: all (s)" in feed_state(pilot)
        await keys(pilot, "h", "h")
        for name in order:
            await keys(pilot, "s")
            await settle(pilot)
            assert tabs.active == "feed", "s brings the feed to the front"
            count, statuses = expected[name]
            label = next(f.label for f in FEED_FILTERS if f.name == name)
            state = feed_state(pilot)
            assert state.startswith(f"{count} outcomes · following"), (name, state)
            assert f"status: {label} (s)" in state
            assert len(feed_lines(screen)) == count
            assert _statuses(screen) == statuses, name
        assert not app.errors


async def test_a_snapshot_fetched_under_another_filter_is_dropped(
    control: Control, make_console: MakeConsole
) -> None:
    """A fetch started before the filter changed may answer after it: its rows are not shown."""
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "5", "s", "s")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MetricsScreen)
        assert screen.feed_filter.name == "delivered"
        before = feed_lines(screen)
        assert len(before) == DELIVERED
        stale = [_item("stale-1", "failed")]
        screen.post_message(
            MetricsSnapshot(screen.mode, screen.period, {}, {}, stale, feed_status="all")
        )
        await settle(pilot)
        assert feed_lines(screen) == before
        fresh = [_item("fresh-1", "delivered")]
        screen.post_message(
            MetricsSnapshot(screen.mode, screen.period, {}, {}, fresh, feed_status="delivered")
        )
        await settle(pilot)
        assert len(feed_lines(screen)) == DELIVERED + 1


def _item(change_id: str, status: str) -> dict[str, Any]:
    return {
        "time": datetime.now(UTC).isoformat(),
        "change_id": change_id,
        "flow_id": "attended-follow-up",
        "flow_name": "Attended Follow Up",
        "registration_code": "RSTALE",
        "event_code": "SUMMIT26",
        "status": status,
        "detail": status,
    }


async def test_the_filter_key_is_in_the_footer_and_help(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await keys(pilot, "5")
        await settle(pilot)
        assert "s Feed status" in _footer(screen_text(pilot))
        await keys(pilot, "question_mark")
        await settle(pilot)
        assert "Feed status" in screen_text(pilot)


def _footer(text: str) -> str:
    lines: Iterable[str] = text.splitlines()
    return list(lines)[-1]


def test_summary_shows_lag_by_topic_only_when_control_reports_it() -> None:
    unknown = summary_text({"processing_status": {"consumer_lag": None, "workers_alive": None}})
    assert "lag — · workers —" in unknown and "lag by topic" not in unknown
    known = summary_text(
        {
            "processing_status": {
                "consumer_lag": 1234,
                "workers_alive": 2,
                "consumer_lag_by_topic": {
                    "signal-outcomes": 4,
                    "certain-changes": 1230,
                    "signal-deliveries": 0,
                },
            }
        }
    )
    assert "lag 1234 · workers 2" in known
    assert "  lag by topic: changes 1,230 · deliveries 0 · outcomes 4" in known.splitlines()
