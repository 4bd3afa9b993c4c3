"""The console against the operator routes it relies on: a resubmit-all that carries the
confirmed count, per-flow figures, mapping edits with versions."""

from __future__ import annotations

import pytest
from console_helpers import MakeConsole, keys, settle, type_text
from control_harness import TOKEN, Control
from textual.widgets import DataTable

from console.client import ConsoleClient, Refused, RetryFilters
from console.screens.modals import TypeToConfirmModal


async def test_resubmit_all_with_a_stale_count_is_refused(control: Control) -> None:
    client = ConsoleClient(control.url, TOKEN)
    try:
        with pytest.raises(Refused) as refused:
            await client.retry_submit_matching(RetryFilters(status="abandoned"), 16)
        assert refused.value.status == 409
        [problem] = refused.value.problems
        assert problem.path == "expected_count" and "now 15 items match" in problem.message
        assert control.redriven == []
        result = await client.retry_submit_matching(RetryFilters(status="abandoned"), 15)
        assert (result.submitted, result.selected) == (15, 15)
    finally:
        await client.close()


async def test_queue_moving_under_the_prompt_stops_the_resubmit(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "4")
        await settle(pilot)
        await keys(pilot, "s", "s", "s")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 15
        await keys(pilot, "R")
        assert isinstance(app.screen, TypeToConfirmModal)
        other = ConsoleClient(control.url, TOKEN)
        try:
            first = str(next(iter(table.rows)).value).split("|")
            await other.retry_submit([(first[0], first[1])])
        finally:
            await other.close()
        sent_before = len(control.redriven)
        await type_text(pilot, "15")
        await keys(pilot, "enter")
        await settle(pilot)
        assert len(control.redriven) == sent_before
        assert any("now 14 items match" in error for _, _, error in app.errors)
        assert table.row_count == 14
