"""Certain sources on the Connections screen and their form, at 80×24, against a real operator
API whose pollers call a real Certain sandbox: Save & Test signs in before saving, a refused test
saves nothing, "save anyway" saves a wrong password that Certain then refuses (the list says the
source stopped, and why), and fixing the password in the form starts it polling again; a
read-only console changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from apiclient.client import ApiClient
from apiclient.rows import SourceRow
from console.screens.connections import ConnectionsScreen
from console.screens.modals import ConfirmModal
from console.screens.source_form import SourceForm
from simulators.certain.sandbox_seed import DEFAULT_PASSWORD, DEFAULT_USER
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle
from tests.console.control_harness import TOKEN, Control
from tests.support.waiting import until

SOURCE = "acme-certain"
WRONG = "wrong-pass-8d2f"
SIZE = (80, 24)


@pytest.fixture
def certain_control(tmp_path: Path) -> Iterator[Control]:
    service = Control(tmp_path, certain=True).start()
    yield service
    service.stop()


async def _sources(control: Control) -> list[SourceRow]:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        return await client.sources()
    finally:
        await client.close()


async def _state(control: Control, state: str) -> SourceRow | None:
    """The source once its poller reports `state` (None until then)."""
    rows = [r for r in await _sources(control) if r.id == SOURCE]
    return rows[0] if rows and rows[0].state == state else None


def _on_top(pilot: Pilot[Any], kind: type[Screen[Any]]) -> bool:
    return isinstance(pilot.app.screen, kind)


def _result(form: SourceForm) -> str:
    return str(form.query_one("#result", Static).render())


async def _new_form(pilot: Pilot[Any], control: Control, password: str) -> SourceForm:
    await settle(pilot)
    await keys(pilot, "2", "c")
    form = pilot.app.screen
    assert isinstance(form, SourceForm)
    for name, value in (
        ("id", SOURCE),
        ("name", "ACME on Certain"),
        ("host", control.certain_url),
        ("account_code", "ACME"),
        ("username", DEFAULT_USER),
        ("password", password),
        ("poll_interval_s", "1"),
    ):
        form.query_one(f"#{name}", Input).value = value
    return form


async def _list_shows(pilot: Pilot[Any], words: str) -> str:
    """Refresh the Connections screen until it shows `words` (the poller runs on its own)."""

    async def shown() -> str:
        await keys(pilot, "ctrl+r")
        text = screen_text(pilot)
        return text if words in text else ""

    return await until(shown, f"the Connections screen showing {words!r}", every=0.2)


async def test_save_and_test_signs_in_saves_and_the_source_polls(
    certain_control: Control, make_console: MakeConsole
) -> None:
    app = make_console(certain_control)
    async with app.run_test(size=SIZE) as pilot:
        form = await _new_form(pilot, certain_control, DEFAULT_PASSWORD)
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        assert app.screen is form
        result = _result(form)
        assert "✓ Connected in" in result and "signed in as 'signal-api'" in result
        assert result.endswith("— saved")
        label = str(form.query_one("#password-label", Label).render())
        assert "Password (set: entered here, kept in control's secret store" in label
        assert form.query_one("#password", Input).value == ""
        await until(lambda: _state(certain_control, "polling"), "the new source polling")
        await keys(pilot, "escape")
        assert _on_top(pilot, ConnectionsScreen)
        text = await _list_shows(pilot, "polling")
        assert "Certain sources [1]" in text and "ACME on Certain" in text
        assert DEFAULT_PASSWORD not in text


async def test_a_refused_test_saves_nothing(
    certain_control: Control, make_console: MakeConsole
) -> None:
    app = make_console(certain_control)
    async with app.run_test(size=SIZE) as pilot:
        form = await _new_form(pilot, certain_control, WRONG)
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        assert _on_top(pilot, ConfirmModal)
        shown = screen_text(pilot)
        assert "wrong username or password" in shown and "Nothing was saved" in shown
        assert WRONG not in shown
        await keys(pilot, "n")
        assert app.screen is form
        assert "Not saved — the test failed: wrong username or password" in _result(form)
        form.query_one("#host", Input).value = "http://127.0.0.1:9"
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        assert "cannot reach 127.0.0.1:9" in screen_text(pilot)
        await keys(pilot, "n")
    assert await _sources(certain_control) == []


async def test_save_anyway_stops_on_401_and_a_fixed_password_polls_again(
    certain_control: Control, make_console: MakeConsole
) -> None:
    app = make_console(certain_control)
    async with app.run_test(size=SIZE) as pilot:
        form = await _new_form(pilot, certain_control, WRONG)
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        assert _on_top(pilot, ConfirmModal)
        await keys(pilot, "y")
        await settle(pilot)
        assert app.screen is form and "✓ Saved" in _result(form)
        stopped = await until(
            lambda: _state(certain_control, "stopped: unauthorized"), "the source stopped"
        )
        assert stopped is not None and stopped.last_error and "401" in stopped.last_error
        await keys(pilot, "escape")
        text = await _list_shows(pilot, "stopped: credentials refused (401)")
        assert "last error:" in text and WRONG not in text
        await keys(pilot, "tab")
        await keys(pilot, "enter")
        edit = app.screen
        assert isinstance(edit, SourceForm) and edit.row is not None
        assert edit.query_one("#id", Input).disabled
        edit.query_one("#password", Input).value = DEFAULT_PASSWORD
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        assert "✓ Connected in" in _result(edit) and "saved" in _result(edit)
        await until(lambda: _state(certain_control, "polling"), "the source polling again")
        await keys(pilot, "escape")
        await _list_shows(pilot, "polling")


async def test_a_read_only_console_shows_sources_and_changes_nothing(
    certain_control: Control, make_console: MakeConsole
) -> None:
    client = ApiClient.for_console(certain_control.url, TOKEN)
    try:
        body = {
            "id": SOURCE,
            "name": "ACME on Certain",
            "host": certain_control.certain_url,
            "account_code": "ACME",
            "username": DEFAULT_USER,
        }
        before = await client.save_source(body, create=True, password=WRONG)
    finally:
        await client.close()
    await until(lambda: _state(certain_control, "stopped: unauthorized"), "the source stopped")
    app = make_console(certain_control, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        text = screen_text(pilot)
        assert "stopped: credentials refused (401)" in text
        assert "New Certain source" not in text and "c New" not in text
        await keys(pilot, "c")
        assert _on_top(pilot, ConnectionsScreen)
        await keys(pilot, "tab", "enter")
        form = app.screen
        assert isinstance(form, SourceForm)
        assert not [b for b in form.query("Button") if b.display]
        form.query_one("#password", Input).value = DEFAULT_PASSWORD
        await keys(pilot, "ctrl+t", "ctrl+s")
        assert not _on_top(pilot, ConfirmModal)
    [after] = await _sources(certain_control)
    assert after.raw["version"] == before.raw["version"]
    assert after.state == "stopped: unauthorized"
