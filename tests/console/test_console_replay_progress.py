"""The replay screen's "only changes not yet delivered for this flow" checkbox and what ctrl+x
says when there is nothing to cancel, against a real operator API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from textual.widgets import Checkbox, Input

from console.screens.modals import ConfirmModal, TypeToConfirmModal
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import Control
from tests.console.test_console_replay import FLOW, _activate_for_cancelled, _fill, _open

DELIVERED = 12


async def _deliver_some(control: Control) -> None:
    """The flow delivered the first archived changes of the scope already."""
    from stream.store.rows import OutcomeRow
    from tests.support.clock import FIXED

    assert control.store is not None
    store = control.store
    rows = [
        OutcomeRow(
            change_id=f"rq-{i:03d}",
            flow_id=FLOW,
            flow_name=FLOW,
            mode="test",
            status="delivered",
            occurred_at=FIXED - timedelta(hours=5),
            processed_at=FIXED - timedelta(hours=5),
            lead_result="created",
        )
        for i in range(DELIVERED)
    ]

    async def record() -> None:
        await store.record_outcomes(rows)

    await control.acall(record())


def _notes(app: Any) -> str:
    return " ".join(n.message for n in app._notifications)


async def test_only_undelivered_leaves_out_what_the_flow_delivered(
    control: Control, make_console: MakeConsole
) -> None:
    await _activate_for_cancelled(control)
    await _deliver_some(control)
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot)
        _fill(screen, start="2026-11-28", stop="2026-11-28")
        await keys(pilot, "ctrl+d")
        await settle(pilot)
        assert "would send 45" in screen_text(pilot)
        screen.query_one("#replay-undelivered", Checkbox).value = True
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, TypeToConfirmModal), "the checkbox changed the scope"
        assert "dry run of this scope first" in _notes(app)
        await keys(pilot, "ctrl+d")
        await settle(pilot)
        text = screen_text(pilot)
        assert f"{DELIVERED} already delivered by this flow, left out" in text
        assert f"would send {45 - DELIVERED}" in text
        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, TypeToConfirmModal)
        app.screen.query_one(Input).value = FLOW
        await keys(pilot, "enter")
        for _ in range(100):
            await settle(pilot)
            if screen.progress and screen.progress.get("state") != "publishing":
                break
            await pilot.pause(0.1)
        assert screen.progress is not None
        assert screen.progress["published"] == len(control.redriven) == 45 - DELIVERED
        assert f"{DELIVERED} already delivered, skipped" in screen_text(pilot)


async def test_ctrl_x_says_why_there_is_nothing_to_cancel(
    control: Control, make_console: MakeConsole
) -> None:
    await _activate_for_cancelled(control)
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot)
        await keys(pilot, "ctrl+x")
        assert not isinstance(app.screen, ConfirmModal)
        assert "no replay to cancel: start one with ctrl+s" in _notes(app)
        _fill(screen, start="2026-11-28", stop="2026-11-28")
        await keys(pilot, "ctrl+d")
        await settle(pilot)
        await keys(pilot, "ctrl+s")
        await type_text(pilot, FLOW)
        await keys(pilot, "enter")
        for _ in range(100):
            await settle(pilot)
            if screen.progress and screen.progress.get("state") != "publishing":
                break
            await pilot.pause(0.1)
        assert screen.progress is not None and screen.progress["state"] == "awaiting_outcomes"
        await keys(pilot, "ctrl+x")
        assert not isinstance(app.screen, ConfirmModal), "everything is published already"
        assert "is awaiting outcomes: nothing left to cancel; 45 published changes await" in (
            _notes(app)
        )
