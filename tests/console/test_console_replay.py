"""The replay screen against a real operator API: dry run first, then a typed confirmation,
live progress until every published change has its outcome, and cancel while it publishes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Select

from console import actions
from console.screens.modals import ConfirmModal, TypeToConfirmModal
from console.screens.replay import ReplayScreen, parse_bound
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import Control

FLOW = "test-registered"


async def _open(pilot: Pilot[Any]) -> ReplayScreen:
    await settle(pilot)
    await keys(pilot, "colon")
    await type_text(pilot, "replay")
    await keys(pilot, "enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ReplayScreen)
    return screen


def _fill(screen: ReplayScreen, *, flow: str = FLOW, start: str = "", stop: str = "") -> None:
    screen.query_one("#replay-flow", Select).value = flow
    screen.query_one("#replay-from", Input).value = start
    screen.query_one("#replay-to", Input).value = stop


async def _activate_for_cancelled(control: Control) -> None:
    """The seeded registrations are cancellations: let the test flow act on them."""
    assert control.config is not None
    config = control.config

    async def widen() -> None:
        flow = config.account.flow(FLOW)
        assert flow is not None
        flow = flow.model_copy(deep=True)
        flow.activate_for.registration_statuses.append("cancelled")
        await config.update_flow(FLOW, flow, "test")

    await control.acall(widen())


def _slow_replays(control: Control) -> None:
    """Five changes a chunk, a pause between chunks: long enough to watch and to cancel, even
    on a loaded machine where the console takes seconds to press its keys (a faster replay
    finished before the cancel reached it)."""
    from stream.control.replay import ReplayManager

    assert control.ops is not None and control.store is not None and control.config is not None

    async def publish(records: Sequence[tuple[bytes, bytes]]) -> None:
        control.redriven.extend(records)

    control.ops.replays = ReplayManager(control.store, publish, control.config, chunk=5, pace_s=1.5)


async def answer_replay(control: Control, replay_id: str) -> None:
    """What the pipeline would record for a replay's published changes: all delivered but the
    first, which fails."""
    from stream.control.recorder import outcome_row
    from stream.messages import FailureCategory, OutcomeRecord, OutcomeStatus, RedriveRequest
    from tests.support.clock import FIXED

    assert control.store is not None
    store = control.store
    ids = [RedriveRequest.loads(value).change["changeId"] for _, value in control.redriven]
    records = [
        OutcomeRecord(
            change_id=change_id,
            flow_id=FLOW,
            flow_name=FLOW,
            mode="test",
            status=OutcomeStatus.FAILED if n == 0 else OutcomeStatus.DELIVERED,
            category=FailureCategory.DATA if n == 0 else None,
            occurred_at=FIXED,
            processed_at=FIXED,
            replay_id=replay_id,
        )
        for n, change_id in enumerate(ids)
    ]

    async def record() -> None:
        await store.record_outcomes([outcome_row(r) for r in records])

    await control.acall(record())


def test_the_replay_actions_are_in_the_registry() -> None:
    assert actions.is_dangerous("replay", "start_replay")
    assert actions.is_dangerous("replay", "cancel_replay")
    assert not actions.is_dangerous("replay", "dry_run")
    assert actions.BY_ID["goto-replay"].action == "app.goto('replay')"


def test_bounds_take_days_and_times() -> None:
    assert parse_bound("2026-11-27", end=False).isoformat() == "2026-11-27T00:00:00+00:00"
    assert parse_bound("2026-11-27", end=True).isoformat() == "2026-11-28T00:00:00+00:00"
    assert parse_bound("2026-11-27T10:00", end=True).isoformat() == "2026-11-27T10:00:00+00:00"


async def test_dry_run_then_confirmed_replay_runs_to_done(
    control: Control, make_console: MakeConsole
) -> None:
    await _activate_for_cancelled(control)
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot)
        _fill(screen, start="2026-11-28", stop="2026-11-28")
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, TypeToConfirmModal), "no real replay before a dry run"
        await keys(pilot, "ctrl+d")
        await settle(pilot)
        text = screen_text(pilot)
        assert "45 changes in scope" in text and "would send 45" in text
        assert "sample payload" in text and '"email"' in text
        assert control.redriven == [], "a dry run sends nothing"

        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, TypeToConfirmModal)
        await type_text(pilot, "attended-follow-up")
        await keys(pilot, "enter")
        assert isinstance(app.screen, TypeToConfirmModal), "the wrong flow id does not confirm"
        app.screen.query_one(Input).value = FLOW
        await keys(pilot, "enter")
        for _ in range(100):
            await settle(pilot)
            if screen.progress and screen.progress.get("state") != "publishing":
                break
            await pilot.pause(0.1)
        assert screen.progress is not None
        assert screen.progress["state"] == "awaiting_outcomes", "nothing answered yet: not done"
        assert screen.progress["published"] == len(control.redriven) > 0
        published = screen.progress["published"]
        assert f"published {published}, {published} awaiting outcome" in screen_text(pilot)
        await answer_replay(control, screen.progress["id"])
        for _ in range(100):
            await settle(pilot)
            if screen.progress and screen.progress.get("finished"):
                break
            await pilot.pause(0.1)
        assert screen.progress is not None and screen.progress["state"] == "done"
        assert f"done: published {published} · {published - 1} delivered, 1 failed" in (
            screen_text(pilot)
        )


async def test_a_changed_scope_needs_a_new_dry_run(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot)
        _fill(screen, start="2026-11-28", stop="2026-11-28")
        await keys(pilot, "ctrl+d")
        await settle(pilot)
        _fill(screen, start="2026-11-27", stop="2026-11-28")
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, TypeToConfirmModal)
        screen.query_one("#replay-event", Input).value = "SUMMIT26"
        await keys(pilot, "ctrl+d")
        await settle(pilot)
        assert "not both" in " ".join(n.message for n in app._notifications)
        assert control.redriven == []


async def test_cancel_stops_a_running_replay(control: Control, make_console: MakeConsole) -> None:
    await _activate_for_cancelled(control)
    _slow_replays(control)
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot)
        await keys(pilot, "ctrl+x")
        assert not isinstance(app.screen, ConfirmModal), "nothing to cancel yet"
        _fill(screen, start="2026-11-28", stop="2026-11-28")
        await keys(pilot, "ctrl+d")
        await settle(pilot)
        await keys(pilot, "ctrl+s")
        await type_text(pilot, FLOW)
        await keys(pilot, "enter")
        for _ in range(50):
            await pilot.pause(0.05)
            if screen.progress is not None:
                break
        assert screen.running
        await keys(pilot, "ctrl+x")
        assert isinstance(app.screen, ConfirmModal)
        await keys(pilot, "y")
        for _ in range(100):
            await settle(pilot)
            if screen.progress and screen.progress.get("state") != "publishing":
                break
            await pilot.pause(0.1)
        assert screen.progress is not None and screen.progress["state"] == "cancelled"
        assert screen.progress["published"] == len(control.redriven) < 45
        assert "cancelled by" in screen_text(pilot)
        await keys(pilot, "ctrl+x")
        assert not isinstance(app.screen, ConfirmModal), "nothing is left to cancel"
        assert "nothing left to cancel" in " ".join(n.message for n in app._notifications)


async def test_read_only_hides_the_real_replay(control: Control, make_console: MakeConsole) -> None:
    app = make_console(control, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot)
        _fill(screen, start="2026-11-28", stop="2026-11-28")
        await keys(pilot, "ctrl+d")
        await settle(pilot)
        assert "45 changes in scope" in screen_text(pilot)
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, TypeToConfirmModal)
        assert control.redriven == []


async def test_replay_is_in_the_palette_and_help(
    control: Control, make_console: MakeConsole
) -> None:
    from textual.command import CommandPalette

    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open(pilot)
        await keys(pilot, "question_mark")
        text = screen_text(pilot)
        assert "Replay for real !" in text and "Dry run" in text
        await keys(pilot, "escape", "ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await type_text(pilot, "replay for")
        await settle(pilot)
        assert "Replay for real" in screen_text(pilot)


async def test_command_line_names_the_flow_and_event(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "colon")
        await type_text(pilot, f"replay {FLOW} SUMMIT26")
        await keys(pilot, "enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        assert screen.scope() == {"flow_id": FLOW, "event_code": "SUMMIT26"}
        await keys(pilot, "colon")
        await type_text(pilot, "replay no-such-flow")
        await keys(pilot, "enter")
        await settle(pilot)
        assert "no complete flow 'no-such-flow'" in " ".join(n.message for n in app._notifications)


async def test_the_form_hints_show_in_full_at_80(
    control: Control, make_console: MakeConsole
) -> None:
    """The "to" box's hint once read `2026-11-28 (day` at 80×24: its end did not fit."""
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        text = screen_text(pilot)
        for box in screen.query(Input):
            if box.id != "command-line":
                assert str(box.placeholder) in text, box.id
