"""The Connections list says whether deliveries to each connection flow: its circuit breaker as
`/healthz` lists it (the pipeline workers' heartbeats), against a real operator API whose
breakers are set by the test. An open breaker reads "paused until" its probe time on the
console's fixed clock; a breaker control cannot report reads unknown, never flowing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta, timezone
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from apiclient.rows import BreakerRow
from apiclient.rows import TestResult as Answer
from console.screens.connections import ConnectionForm, ConnectionsScreen, deliveries_text
from console.screens.form_parts import test_text as answer_text
from tests.console.console_helpers import CLOCK, MakeConsole, keys, screen_text, settle
from tests.console.control_harness import Control
from tests.console.test_console_snapshots import snapshot_control, steps

CONNECTION = "demo-marketo"
RETRY_AT = CLOCK + timedelta(minutes=4, seconds=35)


def open_breaker() -> dict[str, Any]:
    return {
        "state": "open",
        "since": (CLOCK - timedelta(seconds=25)).isoformat(),
        "retry_at": RETRY_AT.isoformat(),
        "failures": 5,
    }


def connection_line(pilot: Pilot[Any]) -> str:
    [line] = [line for line in screen_text(pilot).splitlines() if "Marketo sandbox" in line]
    return line


async def test_an_open_breaker_reads_paused_until_its_probe_time(
    control: Control, make_console: MakeConsole
) -> None:
    control.breakers = {CONNECTION: open_breaker()}
    async with make_console(control).run_test(size=(120, 40)) as pilot:
        await keys(pilot, "2")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ConnectionsScreen)
        assert "Deliveries" in screen_text(pilot)
        assert "paused until 12:04:35" in connection_line(pilot)

        # The pane's own refresh follows the breaker: probing, closed, then not reported.
        for breakers, words in (
            ({CONNECTION: {**open_breaker(), "state": "half_open", "retry_at": None}}, "probing"),
            ({CONNECTION: {**open_breaker(), "state": "closed", "retry_at": None}}, "flowing"),
            ({}, "no calls yet"),
            (None, "unknown"),
        ):
            control.breakers = breakers
            await keys(pilot, "ctrl+r")
            await settle(pilot)
            line = connection_line(pilot)
            assert words in line, (breakers, line)
            assert "paused" not in line


def test_each_state_in_words() -> None:
    row = BreakerRow.from_json(open_breaker())
    assert deliveries_text(row, True, CLOCK).plain == "paused until 12:04:35"
    # The probe time is shown in the console clock's zone, whatever zone control wrote.
    local = CLOCK.astimezone(timezone(timedelta(hours=-5)))
    assert deliveries_text(row, True, local).plain == "paused until 07:04:35"
    no_time = BreakerRow.from_json({**open_breaker(), "retry_at": None})
    assert deliveries_text(no_time, True, CLOCK).plain == "paused"
    assert deliveries_text(BreakerRow("half_open"), True, CLOCK).plain == "probing"
    assert deliveries_text(BreakerRow("closed"), True, CLOCK).plain == "flowing"
    assert deliveries_text(None, True, CLOCK).plain == "no calls yet"
    assert deliveries_text(BreakerRow("melted"), True, CLOCK).plain == "unknown"
    assert deliveries_text(BreakerRow("closed"), False, CLOCK).plain == "unknown"


@pytest.fixture(scope="module")
def paused_control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Control]:
    for service in snapshot_control(tmp_path_factory.mktemp("paused")):
        service.breakers = {CONNECTION: open_breaker()}
        yield service


def test_paused_connection_snapshot(
    snap_compare: Any, paused_control: Control, make_console: MakeConsole
) -> None:
    app = make_console(paused_control)
    assert snap_compare(app, terminal_size=(80, 24), run_before=steps(("2",)))


async def test_the_form_of_a_paused_connection_says_save_and_test_closes_it(
    control: Control, make_console: MakeConsole
) -> None:
    control.breakers = {CONNECTION: open_breaker()}
    async with make_console(control).run_test(size=(120, 40)) as pilot:
        await keys(pilot, "2", "enter")
        await settle(pilot)
        form = pilot.app.screen
        assert isinstance(form, ConnectionForm)
        assert str(form.query_one("#result", Static).render()) == (
            "Deliveries paused until 12:04:35 (circuit breaker): a passing Save & Test closes it."
        )


def test_a_pass_says_how_many_parked_deliveries_it_sent_again() -> None:
    """The answer's `released` (deliveries the breaker parked, due again at once) is shown with
    the pass; a pass that released none reads as before, and an answer without it counts 0."""
    body = {"ok": True, "message": "Marketo answered", "checks": [], "fields": 12}
    plain = Answer.from_json(body, 84.0)
    assert plain.released == 0
    assert answer_text(plain).plain == "✓ Connected in 84 ms — Marketo answered"
    released = Answer.from_json({**body, "released": 3}, 84.0)
    assert answer_text(released).plain.endswith(
        "Marketo answered; 3 parked deliveries sent again now"
    )
    one = Answer.from_json({**body, "released": 1}, 84.0)
    assert answer_text(one).plain.endswith("; 1 parked delivery sent again now")
    assert Answer.from_json({**body, "released": "3"}, 84.0).released == 0
