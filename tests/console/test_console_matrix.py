"""Every screen × help, the command palette and every dialog it can open, at 80×24
and 120×40, as operator, read-only and under `csignal run`: anything that fails to render (a
markup error in a help text, a border title, a toast, a cell) fails the suite (issue 17).

Textual ends the app on an unhandled exception and Pilot raises it when the test leaves
`run_test`, so each probe only has to open its screen and let it paint. Every probe also checks
that what it opened is really on screen, so a key that stopped working cannot pass by testing
nothing. Probes open and cancel; none changes control's state, so one control serves the module.
Its data carries square brackets where operators and the API can put them (a flow name, a typed
filter, an SQL column, an error message).

Screens are named by class name, not imported, so the matrix runs on any version of the console.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, TextArea

from config.models import Flow
from tests.console.console_helpers import MakeConsole, screen_text, settle, type_text
from tests.console.control_harness import Control, incomplete_flow

# Minutes of Pilot key presses: started first by `just test`, left out of `just test-fast`.
pytestmark = pytest.mark.slow

SIZES = [(80, 24), (120, 40)]
ODD_FLOW = "odd-name"
ODD_NAME = "Odd [/b] name [red]"
"""Content markup in a flow name: it must show as typed, everywhere the name appears."""
BRACKETS = "[/b]"
TEST_FLOW = "test-registered"
LIVE_FLOW = "registered-to-nurture"

Step = Callable[[Pilot[Any]], Awaitable[None]]


@pytest.fixture(scope="module")
def matrix_control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Control]:
    service = Control(tmp_path_factory.mktemp("matrix")).start()
    assert service.config is not None
    odd = Flow.model_validate({**incomplete_flow(), "id": ODD_FLOW, "name": ODD_NAME})
    service.call(service.config.create_flow(odd, "test"))
    yield service
    service.stop()


# --- moving around ----------------------------------------------------------------------------


def screen_name(pilot: Pilot[Any]) -> str:
    return type(pilot.app.screen).__name__


async def idle(pilot: Pilot[Any]) -> None:
    """Let the key's messages run and the workers it started finish."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def press(*presses: str) -> Step:
    async def step(pilot: Pilot[Any]) -> None:
        for key in presses:
            await pilot.press(key)
            await idle(pilot)

    return step


def on_row(flow_id: str, *presses: str, table: str = "DataTable") -> Step:
    async def step(pilot: Pilot[Any]) -> None:
        grid = pilot.app.screen.query_one(table, DataTable)
        grid.focus()
        grid.move_cursor(row=grid.get_row_index(flow_id))
        await pilot.pause()
        await press(*presses)(pilot)

    return step


def then(*steps: Step) -> Step:
    async def step(pilot: Pilot[Any]) -> None:
        for each in steps:
            await each(pilot)

    return step


async def help_key(pilot: Pilot[Any]) -> None:
    """`?`, or the help action where a text field has the focus and would take the `?`."""
    if isinstance(pilot.app.focused, (Input, TextArea)):
        await pilot.app.run_action("help")
        await idle(pilot)
    else:
        await press("question_mark")(pilot)


async def palette(pilot: Pilot[Any]) -> None:
    await press("ctrl+p")(pilot)
    await type_text(pilot, "r")  # hits with their matches highlighted
    await idle(pilot)


async def escape(pilot: Pilot[Any]) -> None:
    await press("escape")(pilot)


async def escape_palette(pilot: Pilot[Any]) -> None:
    for _ in range(3):
        if screen_name(pilot) != "CommandPalette":
            return
        await press("escape")(pilot)


def typed(selector: str, text: str, *presses: str) -> Step:
    async def step(pilot: Pilot[Any]) -> None:
        pilot.app.screen.query_one(selector, Input).value = text
        await idle(pilot)
        await press(*presses)(pilot)

    return step


def chosen(selector: str, value: str) -> Step:
    async def step(pilot: Pilot[Any]) -> None:
        pilot.app.screen.query_one(selector, Select).value = value
        await idle(pilot)

    return step


def sql(statement: str) -> Step:
    async def step(pilot: Pilot[Any]) -> None:
        pilot.app.screen.query_one(TextArea).text = statement
        await press("ctrl+j")(pilot)

    return step


async def error_with_brackets(pilot: Pilot[Any]) -> None:
    pilot.app.report_error("load [/b] things", f"{BRACKETS} [red] went wrong [/]")  # type: ignore[attr-defined]
    await idle(pilot)


# --- what is probed where -------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    name: str
    open: Step
    shows: str
    """The screen's class name once open ("" when the probe stays on the place itself)."""
    close: Step = escape
    text: str = ""
    """Something the probe must show (checked in the screenshot)."""
    modes: tuple[str, ...] = ("operator",)
    """Help and the palette run in every mode; the rest only where they differ: read-only hides
    the dialogs of changes, and under `csignal run` only leaving the console is different."""


HELP = Probe("help", help_key, "HelpScreen")
PALETTE = Probe("palette", palette, "CommandPalette", close=escape_palette)
EVERYWHERE = (HELP, PALETTE)


@dataclass(frozen=True)
class Place:
    route: Step
    shows: str
    probes: tuple[Probe, ...] = ()
    modes: tuple[str, ...] = ("operator", "read-only")


PLACES: dict[str, Place] = {
    "flows": Place(
        press(),
        "FlowsScreen",
        (
            Probe("debug", press("f12"), "DebugScreen"),
            Probe("reasons", on_row(ODD_FLOW, "i"), "TextModal", text=ODD_NAME),
            Probe("activate-incomplete", on_row(ODD_FLOW, "a"), "ConfirmModal"),
            Probe("to-live", on_row(TEST_FLOW, "t"), "TypeToConfirmModal"),
            Probe("deactivate-live", on_row(LIVE_FLOW, "a"), "ConfirmModal"),
            Probe("to-test", on_row(LIVE_FLOW, "t"), "ConfirmModal"),
            Probe("filter", then(press("slash"), typed("#filter", "[/b")), "", text="/[/b/"),
            Probe(
                "command-line",
                then(press("colon"), typed("#command-line", "[/b", "enter")),
                "",
                close=press(),
            ),
            Probe("quit", press("q"), "QuitModal", modes=("under-run",)),
        ),
        modes=("operator", "read-only", "under-run"),
    ),
    "quit-dialog": Place(
        press("q"),
        "QuitModal",
        (Probe("detach-listed", help_key, "HelpScreen", text="Detach", modes=("under-run",)),),
        modes=("under-run",),
    ),
    "flow-editor": Place(
        on_row(LIVE_FLOW, "enter"),
        "FlowDetailScreen",
        (
            Probe("add-field", press("ctrl+n"), "FieldForm"),
            Probe("preview", press("ctrl+o"), "MappingPreviewModal", text="Mapping preview"),
            Probe(
                "unsaved",
                then(typed("#name", BRACKETS), press("escape")),
                "UnsavedModal",
                text="not saved",
            ),
        ),
    ),
    "odd-flow-editor": Place(
        on_row(ODD_FLOW, "enter"),
        "FlowDetailScreen",
        (
            Probe(
                "save-as-live",
                then(chosen("#mode", "live"), press("ctrl+s")),
                "TypeToConfirmModal",
                text=ODD_NAME,
            ),
        ),
        modes=("operator",),
    ),
    "new-flow": Place(press("n"), "FlowDetailScreen", modes=("operator",)),
    "connections": Place(
        press("2"),
        "ConnectionsScreen",
        (Probe("delete", press("d"), "TypeToConfirmModal"),),
    ),
    "connection-form": Place(press("2", "enter"), "ConnectionForm"),
    "new-connection": Place(press("2", "n"), "ConnectionForm", modes=("operator",)),
    "catalog": Place(
        press("3"),
        "CatalogScreen",
        (
            Probe(
                "event-setup",
                on_row("SUMMIT26", "enter", table="#events"),
                "TextModal",
                text="set-up",
            ),
            Probe("assign", press("a"), "AssignTagsModal", text="Assign tags"),
        ),
    ),
    "retry": Place(
        press("4"),
        "RetryScreen",
        (
            Probe("detail", press("enter"), "ItemDetail"),
            Probe("resubmit", press("r"), "ConfirmModal"),
            Probe("resubmit-all", press("R"), "TypeToConfirmModal"),
            Probe(
                "search",
                then(press("slash"), typed("#search", "[/b", "enter")),
                "",
                close=press("slash", "escape"),
                text="[/b",
            ),
        ),
    ),
    "retry-detail": Place(press("4", "enter"), "ItemDetail"),
    "assign-tags": Place(press("3", "a"), "AssignTagsModal", modes=("operator",)),
    "metrics": Place(
        press("5"),
        "MetricsScreen",
        (
            Probe("troubleshooting", press("l"), "", close=press(), text="Retry queue open"),
            Probe("feed", press("l"), "", close=press("l"), text="outcomes"),
        ),
    ),
    "sql": Place(
        press("6", "escape"),
        "SqlScreen",
        (
            Probe(
                "brackets", sql(f"SELECT '{BRACKETS}' AS \"[x]\""), "", close=press(), text="[x]"
            ),
            Probe("refused", sql(f"DELETE FROM changes -- {BRACKETS}"), "", close=press()),
        ),
    ),
    "replay": Place(
        press("7"),
        "ReplayScreen",
        (
            Probe(
                "dry-run",
                then(chosen("#replay-flow", TEST_FLOW), typed("#replay-event", "[/b", "ctrl+d")),
                "",
                close=press(),
                text="[/b",
            ),
            Probe(
                "replay-for-real",
                then(
                    chosen("#replay-flow", TEST_FLOW),
                    typed("#replay-event", "SUMMIT26", "ctrl+d"),
                    press("ctrl+s"),
                ),
                "TypeToConfirmModal",
            ),
        ),
    ),
    "debug": Place(then(error_with_brackets, press("f12")), "DebugScreen", modes=("operator",)),
}

MODES: dict[str, dict[str, Any]] = {
    "operator": {},
    "read-only": {"read_only": True},
    "under-run": {"under_run": True},
}
CASES = [(place, mode) for place, spec in PLACES.items() for mode in spec.modes]


async def on_top(pilot: Pilot[Any], name: str) -> None:
    """Wait (briefly) for `name` to be the screen on top: some dialogs open from a worker's
    result message."""
    for _ in range(100):
        if screen_name(pilot) == name:
            return
        await pilot.pause(0.02)


async def check(pilot: Pilot[Any], probe: Probe, place: str, home: Any) -> None:
    where = f"{probe.name} on {place}"
    await probe.open(pilot)
    if probe.shows:
        await on_top(pilot, probe.shows)
        assert screen_name(pilot) == probe.shows, f"{where}: {screen_name(pilot)} is on top"
    else:
        assert pilot.app.screen is home, f"{where}: left the screen ({screen_name(pilot)})"
    text = screen_text(pilot)  # every widget painted at this size
    if probe.text:
        assert probe.text in text, f"{where}: {probe.text!r} not shown:\n{text}"
    await probe.close(pilot)
    assert pilot.app.screen is home, f"{where}: did not close ({screen_name(pilot)})"


@pytest.mark.parametrize(("place", "mode"), CASES, ids=[f"{p}-{m}" for p, m in CASES])
async def test_every_probe_renders(
    matrix_control: Control, make_console: MakeConsole, place: str, mode: str, tmp_path: Path
) -> None:
    spec = PLACES[place]
    probes = [*EVERYWHERE, *(p for p in spec.probes if mode in p.modes)]
    app = make_console(matrix_control, **MODES[mode])
    async with app.run_test(size=SIZES[0]) as pilot:
        await settle(pilot)
        await spec.route(pilot)
        await settle(pilot)
        await on_top(pilot, spec.shows)
        assert screen_name(pilot) == spec.shows, f"{place}: {screen_name(pilot)} is on top"
        home = pilot.app.screen
        for width, height in SIZES:
            # One app, resized: the layout is made again for the new size (what the snapshot
            # tests check from a fresh start), and the route is not walked twice.
            await pilot.resize_terminal(width, height)
            await settle(pilot)
            for probe in probes:
                await check(pilot, probe, f"{place} at {width}×{height}", home)
    # Textual re-raises an exception of the run on leaving run_test; be explicit anyway.
    assert app.return_code in (None, 0), f"{place}: exit code {app.return_code}"
