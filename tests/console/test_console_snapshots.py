"""SVG snapshots of every screen at 80×24 (the SSH default) and 120×40.

The console's clock is fixed and the outcomes are seeded relative to it; the metrics screens use
a store without outcomes because control's metric windows end at the real time. Every snapshot
waits for the screen's workers and clears toasts first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.console.console_helpers import CLOCK, MakeConsole, settle
from tests.console.control_harness import Control
from tests.console.svg_text import svg_lines

FIXED_URL = "https://123-ABC-456.mktorest.com"
SIZES = [(80, 24), (120, 40)]

SCREENS: dict[str, tuple[str, ...]] = {
    "flows": (),
    "flow_reasons": ("down", "down", "down", "down", "down", "down", "down", "down", "i"),
    "flow_detail": ("enter",),
    "connections": ("2",),
    "connection_form": ("2", "enter"),
    "catalog": ("3",),
    "retry": ("4",),
    "retry_selected": ("4", "space", "space", "r"),
    "sql": ("6", "ctrl+j"),
    "retry_detail": ("4", "enter"),
    "help": ("question_mark",),
}
QUIET_SCREENS: dict[str, tuple[str, ...]] = {
    "metrics_summary": ("5",),
    "metrics_troubleshooting": ("5", "l"),
    "metrics_feed": ("5", "l", "l"),
}


def fixed_connection_url(service: Control) -> None:
    async def change() -> None:
        assert service.config is not None
        connection = service.config.connection("demo-marketo").model_copy(deep=True)
        connection.service_url = FIXED_URL  # type: ignore[assignment]
        await service.config.save_connection(connection, "test", create=False)

    service.call(change())


# Snapshots only look: one control per module serves them all (a test that changed something
# would show in the snapshots of the tests after it).
def snapshot_control(data_dir: Path, **options: Any) -> Iterator[Control]:
    """A control seeded relative to the console's fixed clock, with a fixed connection URL."""
    service = Control(data_dir, base=CLOCK, **options).start()
    fixed_connection_url(service)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def snap_control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Control]:
    yield from snapshot_control(tmp_path_factory.mktemp("snap"))


@pytest.fixture(scope="module")
def quiet_control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Control]:
    yield from snapshot_control(tmp_path_factory.mktemp("quiet"), outcomes=False)


def steps(presses: tuple[str, ...]) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in presses:
            await pilot.press(key)
            await settle(pilot, rounds=2)
        pilot.app.clear_notifications()
        await settle(pilot)

    return run


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(
    snap_compare: Any,
    snap_control: Control,
    make_console: MakeConsole,
    screen: str,
    size: tuple[int, int],
) -> None:
    app = make_console(snap_control)
    assert snap_compare(app, terminal_size=size, run_before=steps(SCREENS[screen]))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(QUIET_SCREENS))
def test_metrics_screen(
    snap_compare: Any,
    quiet_control: Control,
    make_console: MakeConsole,
    screen: str,
    size: tuple[int, int],
) -> None:
    app = make_console(quiet_control)
    assert snap_compare(app, terminal_size=size, run_before=steps(QUIET_SCREENS[screen]))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_read_only_flows(
    snap_compare: Any, snap_control: Control, make_console: MakeConsole, size: tuple[int, int]
) -> None:
    app = make_console(snap_control, read_only=True)
    assert snap_compare(app, terminal_size=size, run_before=steps(()))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sql_refused(
    snap_compare: Any, snap_control: Control, make_console: MakeConsole, size: tuple[int, int]
) -> None:
    from textual.widgets import TextArea

    async def refused(pilot: Pilot[Any]) -> None:
        await steps(("6",))(pilot)
        pilot.app.screen.query_one(TextArea).text = "DELETE FROM changes"
        await steps(("ctrl+j",))(pilot)

    app = make_console(snap_control)
    assert snap_compare(app, terminal_size=size, run_before=refused)


def test_narrow_flow_list_fits_80_columns(snap_control: Control, make_console: MakeConsole) -> None:
    """Every column header and the key hints are on screen at 80×24, nothing scrolled off."""
    from textual._doc import take_svg_screenshot

    app = make_console(snap_control)
    svg = take_svg_screenshot(app=app, terminal_size=(80, 24), run_before=steps(()))
    lines = svg_lines(svg)
    header = next(line for line in lines if "Name" in line and "Status" in line)
    for column in ("Name", "Source", "Status", "Act", "Mode", "Sent", "Fail", "8h"):
        assert column in header
    assert all(len(line) <= 80 for line in lines)
    assert "a Active" in lines[-1] and "q Back/quit" in lines[-1]
