"""Keys that do what they say: the palette finds the current screen's actions, a key that would
change something in a read-only console says why, digits typed into a field stay in the field,
and the audit trail names the console's operator as `console:<login>`."""

from __future__ import annotations

import getpass
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from apiclient.client import ApiClient
from console.screens.connections import ConnectionForm
from console.screens.flows import FlowsScreen
from console.screens.help import HelpScreen
from console.screens.modals import ConfirmModal, TypeToConfirmModal
from console.screens.replay import ReplayScreen
from console.screens.retry import RetryScreen
from console.screens.sql import SqlScreen
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle, type_text
from tests.console.control_harness import Control


def notes(pilot: Pilot[Any]) -> list[str]:
    return [n.message for n in pilot.app._notifications]


def top(pilot: Pilot[Any]) -> object:
    """The screen on top, read afresh (not narrowed by an earlier isinstance check)."""
    return pilot.app.screen


def palette_lines(pilot: Pilot[Any]) -> str:
    palette = pilot.app.screen
    assert isinstance(palette, CommandPalette)
    return screen_text(pilot)


@pytest.mark.parametrize(
    ("goto", "screen_type", "query", "found"),
    [
        ("4", RetryScreen, "resub", "Resubmit all matching"),
        ("4", RetryScreen, "status", "Status filter"),
        ("1", FlowsScreen, "live", "Live/test"),
        ("1", FlowsScreen, "reasons", "Reasons"),
    ],
)
async def test_the_palette_finds_the_current_screens_actions(
    control: Control,
    make_console: MakeConsole,
    goto: str,
    screen_type: type[Any],
    query: str,
    found: str,
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, goto)
        assert isinstance(app.screen, screen_type)
        footer_before = screen_text(pilot).splitlines()[-1]
        await keys(pilot, "ctrl+p")
        await type_text(pilot, query)
        await settle(pilot)
        # The palette's list sits at the top; the footer below it must not be what matched.
        listed = "\n".join(palette_lines(pilot).splitlines()[:12])
        assert found in listed, listed
        assert found not in footer_before or found in listed


async def test_a_palette_action_runs_on_the_screen_it_was_opened_over(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "4")
        screen = app.screen
        assert isinstance(screen, RetryScreen)
        retry: RetryScreen = screen
        before = retry.filters.status
        await keys(pilot, "ctrl+p")
        await type_text(pilot, "status filter")
        await settle(pilot)
        await keys(pilot, "enter")
        await settle(pilot)
        assert app.screen is screen, "the palette ran the action somewhere else"
        assert retry.filters.status != before


async def test_the_read_only_palette_leaves_changes_out(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "4", "ctrl+p")
        await type_text(pilot, "resub")
        await settle(pilot)
        assert "Resubmit" not in "\n".join(palette_lines(pilot).splitlines()[:12])


@pytest.mark.parametrize(
    ("goto", "key", "description"),
    [("1", "a", "Active"), ("1", "t", "Live/test"), ("4", "r", "Resubmit")],
)
async def test_a_change_key_in_read_only_says_why_it_does_nothing(
    control: Control, make_console: MakeConsole, goto: str, key: str, description: str
) -> None:
    app = make_console(control, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await keys(pilot, goto)
        screen = app.screen
        await keys(pilot, key)
        assert app.screen is screen
        assert not isinstance(app.screen, (ConfirmModal, TypeToConfirmModal))
        said = [n for n in notes(pilot) if "read-only" in n]
        assert said, notes(pilot)
        assert said[-1].startswith(f"{description} changes Signal, and this console is read-only")


async def test_a_read_only_console_stays_quiet_on_keys_that_only_look(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await keys(pilot, "4", "s", "c")
        assert not [n for n in notes(pilot) if "read-only" in n]


async def test_digits_typed_into_a_field_stay_there(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await keys(pilot, "7")
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        field = screen.query_one("#replay-from", Input)
        field.focus()
        await settle(pilot)
        await type_text(pilot, "2026-12-04")
        await keys(pilot, "1", "4", "7")
        assert app.screen is screen
        assert field.value == "2026-12-04147"
        field.blur()
        screen.set_focus(None)
        await keys(pilot, "1")
        assert isinstance(app.screen, FlowsScreen), "digits still switch screens outside fields"


async def test_f1_opens_help_where_a_text_box_takes_the_question_mark(
    control: Control, make_console: MakeConsole
) -> None:
    """In the connection form (focus in a text box) and the SQL editor `?` is typed, so help
    was out of reach there; f1 opens it, and the box keeps what was typed."""
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2", "enter")
        form = app.screen
        assert isinstance(form, ConnectionForm)
        name = form.query_one("#name", Input)
        assert form.focused is name
        before = name.value
        await keys(pilot, "end", "question_mark")
        assert app.screen is form and name.value == before + "?"
        await keys(pilot, "f1")
        assert isinstance(app.screen, HelpScreen)
        assert "Connection" in screen_text(pilot)
        await keys(pilot, "f1")
        assert top(pilot) is form and name.value == before + "?"
        await keys(pilot, "escape", "d", "6")  # the typed ? is an unsaved edit: discard it
        sql = app.screen
        assert isinstance(sql, SqlScreen)
        editor = sql.query_one(TextArea)
        assert sql.focused is editor
        text = editor.text
        await keys(pilot, "f1")
        assert isinstance(app.screen, HelpScreen)
        await keys(pilot, "escape")
        assert top(pilot) is sql and editor.text == text


async def test_the_audit_names_the_console_operator_when_user_is_empty(
    control: Control, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "")
    monkeypatch.setenv("LOGNAME", "")
    client = ApiClient.for_console(control.url, control.token)
    try:
        assert client.actor == f"console:{getpass.getuser()}"
        await client.set_active("registered-to-nurture", False)
        result = await client.sql(
            "SELECT actor FROM config_audit WHERE object_id = 'registered-to-nurture' "
            'ORDER BY "at" DESC LIMIT 1'
        )
    finally:
        await client.close()
    assert result.rows == [[f"console:{getpass.getuser()}"]]


async def test_the_audit_keeps_the_console_login(
    control: Control, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "ana")
    client = ApiClient.for_console(control.url, control.token)
    try:
        await client.set_active("registered-to-nurture", False)
        result = await client.sql(
            "SELECT actor FROM config_audit WHERE object_id = 'registered-to-nurture' "
            'ORDER BY "at" DESC LIMIT 1'
        )
    finally:
        await client.close()
    assert result.rows == [["console:ana"]]
