"""Leaving the console (issue 17): standalone `q` quits as before; under `csignal run` quitting
asks — Detach (Signal keeps running) / Stop Signal / Cancel — and the exit code carries the
answer to the runner, which stops the services only on "Stop Signal". A crash's traceback is
kept in the crash log. The runner's side is tested with stand-in consoles (tiny Python
programs that end the way a console can end), without starting any service."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from textual.content import Content
from textual.widgets import Button

from console import session
from console.fmt import ZERO_WIDTH_SPACE, esc
from console.screens.flows import FlowsScreen
from console.screens.help import HelpScreen, help_text
from console.screens.modals import QuitModal
from stream.runner import Runner, RunOptions
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import Control


@pytest.fixture(scope="module")
def quit_control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Control]:
    """Quitting changes nothing in control: one serves the module."""
    service = Control(tmp_path_factory.mktemp("quit")).start()
    yield service
    service.stop()


# --- the console ------------------------------------------------------------------------------


async def test_standalone_q_on_the_flow_list_quits_at_once(
    quit_control: Control, make_console: MakeConsole
) -> None:
    app = make_console(quit_control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "q")
    assert app.return_code == 0


async def test_under_run_q_asks_and_cancel_keeps_the_console(
    quit_control: Control, make_console: MakeConsole
) -> None:
    app = make_console(quit_control, under_run=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "q")
        assert isinstance(app.screen, QuitModal)
        text = screen_text(pilot)
        for words in ("Leave the console", "Detach (d)", "Stop Signal (s)", "Cancel (esc)"):
            assert words in text, text
        assert app.focused is not None and app.focused.id == "detach"  # the safe choice
        await keys(pilot, "escape")
        assert isinstance(app.screen, FlowsScreen)
        await keys(pilot, "q", "c")
        assert isinstance(app.screen, FlowsScreen)
        await keys(pilot, "4", "q")  # elsewhere q still goes back first
        assert isinstance(app.screen, FlowsScreen)
        await keys(pilot, "q", "d")
    assert app.return_code == session.DETACH


@pytest.mark.parametrize(
    ("presses", "code"),
    [(("q", "s"), session.STOP_SIGNAL), (("ctrl+q", "ctrl+q"), session.DETACH)],
    ids=["stop-signal-is-its-own-exit-code", "ctrl-q-twice-detaches"],
)
async def test_under_run_keys_answer_with_their_exit_code(
    quit_control: Control, make_console: MakeConsole, presses: tuple[str, str], code: int
) -> None:
    app = make_console(quit_control, under_run=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, *presses)
    assert app.return_code == code


@pytest.mark.parametrize("how", ["ctrl+q", "ctrl+c", ":q"])
async def test_under_run_every_way_out_asks_first(
    quit_control: Control, make_console: MakeConsole, how: str
) -> None:
    app = make_console(quit_control, under_run=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        if how == ":q":
            await keys(pilot, "colon")
            await type_text(pilot, "q")
            await keys(pilot, "enter")
        else:
            await keys(pilot, how)
        assert isinstance(app.screen, QuitModal), how
        # the dialog's Detach button has the focus: enter detaches
        await keys(pilot, "enter")
    assert app.return_code == session.DETACH


async def test_quit_keys_follow_the_keymap_and_show_in_help(
    quit_control: Control, make_console: MakeConsole, tmp_path: Path
) -> None:
    keymap = tmp_path / "keys.yaml"
    keymap.write_text("quit-stop: x\n", encoding="utf-8")
    app = make_console(quit_control, under_run=True, keymap_file=keymap)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "question_mark")
        assert "q on the flow list (or ctrl+q) asks: detach" in screen_text(pilot)
        await keys(pilot, "escape", "q")
        assert str(app.screen.query_one("#stop", Button).label) == "Stop Signal (x)"
        await keys(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(pilot)
        assert "Detach: close the console, Signal keeps running" in text
        assert "x              Stop Signal" in text
        await keys(pilot, "escape", "s")  # no longer bound
        assert isinstance(app.screen, QuitModal)
        await keys(pilot, "x")
    assert app.return_code == session.STOP_SIGNAL


async def test_a_crash_inside_a_screen_ends_the_console_with_its_traceback_kept(
    quit_control: Control,
    make_console: MakeConsole,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: FlowsScreen) -> None:
        raise RuntimeError("forced crash inside the flow list")

    monkeypatch.setattr(FlowsScreen, "action_show_reasons", broken)
    crash_log = tmp_path / "logs" / session.CRASH_LOG_NAME
    app = make_console(quit_control, under_run=True, crash_log=crash_log)
    with pytest.raises(RuntimeError, match="forced crash"):
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("i")
            await pilot.pause()
    assert app.return_code == 1
    logged = crash_log.read_text(encoding="utf-8")
    assert "console crashed" in logged and "RuntimeError: forced crash" in logged


def test_help_text_renders_for_every_scope_and_mode() -> None:
    from console import actions

    for scope in {a.scope for a in actions.ACTIONS}:
        for read_only in (False, True):
            for under_run in (False, True):
                Content.from_markup(help_text(scope, read_only, under_run=under_run))


@given(st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), max_size=40))
def test_escaped_text_shows_as_it_is(text: str) -> None:
    """Markup-like data (`[/b]`, `[ x`, `\\[`, a trailing backslash) shows as it is, before
    and after markup; control characters are not the point (Content drops a carriage return,
    markup or not)."""
    shown = Content.from_markup(f"[b]x[/b]{esc(text)}[b]x[/b]").plain
    assert shown.replace(ZERO_WIDTH_SPACE, "") == f"x{text}x".replace(ZERO_WIDTH_SPACE, "")


def test_console_command_takes_the_runner_options_without_listing_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from stream.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["console", "--under-run", "--crash-log", "/tmp/c.log"])
    assert args.under_run and args.crash_log == Path("/tmp/c.log")
    with pytest.raises(SystemExit):
        parser.parse_args(["console", "--help"])
    assert "--under-run" not in capsys.readouterr().out


# --- the runner ---------------------------------------------------------------------------------


def stand_in(code: str) -> list[str]:
    """A console that runs `code` (with `crash_log`, the path the runner passes) and ends."""
    prelude = "import os, signal, sys; crash_log = sys.argv[sys.argv.index('--crash-log') + 1]; "
    return [sys.executable, "-c", prelude + code]


async def end_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str
) -> tuple[Runner, bool]:
    """A runner (no service started) whose console is `stand_in(code)`: the runner, and
    whether it decided to stop."""
    monkeypatch.setenv("SIGNAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIGNAL_API", raising=False)
    runner = Runner(
        RunOptions(data_dir=tmp_path / "data", console_command=stand_in(code), out=io.StringIO())
    )
    runner.logs.mkdir(parents=True, exist_ok=True)
    return runner, await runner._console("http://127.0.0.1:6066")


def said(runner: Runner) -> str:
    out = runner.out
    assert isinstance(out, io.StringIO)
    return out.getvalue()


async def test_the_runner_stops_only_when_stop_signal_was_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, stops = await end_console(tmp_path, monkeypatch, f"sys.exit({session.STOP_SIGNAL})")
    assert stops and runner.stop_event.is_set()
    assert "Stop Signal was chosen in the console" in said(runner)


async def test_a_detached_console_leaves_signal_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, stops = await end_console(tmp_path, monkeypatch, "sys.exit(0)")
    assert not stops and not runner.stop_event.is_set()
    text = said(runner)
    assert "The console was closed (detached)." in text
    assert "Signal keeps running" in text
    assert f"SIGNAL_DATA_DIR={tmp_path / 'data'} csignal console --api" in text
    assert "Ctrl-C here stops everything" in text


async def test_a_crashed_console_leaves_signal_running_and_says_where_the_traceback_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash = "open(crash_log, 'a').write('Traceback: boom\\n'); sys.exit(1)"
    runner, stops = await end_console(tmp_path, monkeypatch, crash)
    assert not stops and not runner.stop_event.is_set()
    text = said(runner)
    assert "The console crashed (exit code 1)" in text
    assert str(runner.logs / session.CRASH_LOG_NAME) in text
    assert "Signal keeps running" in text


async def test_a_killed_console_leaves_signal_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, stops = await end_console(tmp_path, monkeypatch, "os.kill(os.getpid(), signal.SIGKILL)")
    assert not stops and not runner.stop_event.is_set()
    assert "The console was ended by SIGKILL." in said(runner)
