"""The connection form against a real operator API and Marketo sandbox: Save & Test tests the
settings before saving them, "save anyway" saves a failed candidate only when confirmed, the
secret's label says what is stored and where, and a change of destination without a new secret
says the secret was cleared."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from apiclient.client import ApiClient
from apiclient.rows import ConnectionRow
from console.screens.connections import ConnectionForm
from console.screens.modals import ConfirmModal
from tests.console.console_helpers import MakeConsole, keys, screen_text, settle
from tests.console.control_harness import TOKEN, Control

CONNECTION = "demo-marketo"
ENV_SOURCE = "env:SIGNAL_DEMO_MARKETO_SECRET"


async def _stored(control: Control) -> tuple[ConnectionRow, bool]:
    """The connection as control has it, and whether its stored settings pass a test."""
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        [row] = [c for c in await client.connections() if c.id == CONNECTION]
        result = await client.test_connection(CONNECTION) if row.secret_set else None
    finally:
        await client.close()
    return row, bool(result and result.ok)


async def _open_form(pilot: Pilot[Any]) -> ConnectionForm:
    await keys(pilot, "2")
    await settle(pilot)
    await keys(pilot, "enter")
    form = pilot.app.screen
    assert isinstance(form, ConnectionForm)
    return form


def _on_top(pilot: Pilot[Any], kind: type[Screen[Any]]) -> bool:
    """Whether the screen on top is a `kind` (a function, so the type checker does not narrow
    `app.screen` for the rest of the test)."""
    return isinstance(pilot.app.screen, kind)


def _label(form: ConnectionForm) -> str:
    return str(form.query_one("#secret-label", Label).render())


def _result(form: ConnectionForm) -> str:
    return str(form.query_one("#result", Static).render())


async def test_a_wrong_secret_is_tested_first_and_nothing_is_saved(
    control: Control, make_console: MakeConsole
) -> None:
    before, _ = await _stored(control)
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await _open_form(pilot)
        form.query_one("#name", Input).value = "Renamed while testing"
        form.query_one("#client_secret", Input).value = "not-the-secret"
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        assert _on_top(pilot, ConfirmModal)
        shown = screen_text(pilot)
        assert "bad client id or secret" in shown and "Nothing was saved" in shown
        assert "not-the-secret" not in shown
        await keys(pilot, "n")
        assert app.screen is form
        assert "Not saved — the test failed: bad client id or secret" in _result(form)
    after, still_good = await _stored(control)
    assert after.raw["version"] == before.raw["version"]
    assert after.name == before.name and after.secret_source == ENV_SOURCE
    assert still_good, "the stored secret must be untouched"


async def test_save_anyway_saves_the_failed_settings_when_confirmed(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await _open_form(pilot)
        form.query_one("#client_secret", Input).value = "not-the-secret"
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        assert _on_top(pilot, ConfirmModal)
        await keys(pilot, "y")
        await settle(pilot)
        assert app.screen is form
        assert "✓ Saved" in _result(form)
        label = _label(form)
        assert "entered here, kept in control's secret store" in label
        assert "env:" not in label and "environment" not in label
    after, good = await _stored(control)
    assert after.secret_source == "stored" and not good


async def test_a_good_secret_is_saved_after_its_test_and_the_label_says_where(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await _open_form(pilot)
        assert "read from control's environment variable SIGNAL_DEMO_MARKETO_SECRET" in (
            _label(form)
        )
        form.query_one("#client_secret", Input).value = "sandbox-secret"
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        assert app.screen is form
        assert "✓ Connected in" in _result(form) and "saved" in _result(form)
        label = _label(form)
        assert "set: entered here, kept in control's secret store (replaced" in label
        assert "SIGNAL_DEMO_MARKETO_SECRET" not in label
        assert form.query_one("#client_secret", Input).value == ""
    after, good = await _stored(control)
    assert after.secret_source == "stored" and good


async def test_changing_the_client_id_without_a_secret_says_it_was_cleared(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await _open_form(pilot)
        form.query_one("#client_id", Input).value = "another-client"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        result = _result(form)
        assert "the client secret was cleared because the client id changed" in result
        assert "enter it again" in result
        assert _label(form) == "Client Secret (cleared: enter it again)"
    after, _ = await _stored(control)
    assert not after.secret_set and after.client_id == "another-client"


async def test_moving_the_identity_url_is_not_tested_with_the_stored_secret(
    control: Control, make_console: MakeConsole
) -> None:
    before, _ = await _stored(control)
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await _open_form(pilot)
        form.query_one("#service_url", Input).value = "http://127.0.0.1:9"
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        assert _on_top(pilot, ConfirmModal)
        shown = screen_text(pilot)
        assert "identity URL changed" in shown and "enter it again" in shown
        await keys(pilot, "n")
        assert form.query_one("#client_secret", Input).has_class("error")
        unchanged, _ = await _stored(control)
        assert unchanged.raw["version"] == before.raw["version"]
        await keys(pilot, "ctrl+t")
        await settle(pilot)
        await keys(pilot, "y")
        await settle(pilot)
        assert "the client secret was cleared because the identity URL changed" in _result(form)
        assert _label(form) == "Client Secret (cleared: enter it again)"
    after, _ = await _stored(control)
    assert not after.secret_set and after.service_url.rstrip("/") == "http://127.0.0.1:9"
