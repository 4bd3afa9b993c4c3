"""The console's shared plumbing: the table every screen shows (its keys, from the action
registry and the operator's keymap) and `call_api`, which tells the operator of a failed call
the same way on every screen — a refused token, a refused request (409) and a control that is
not there, each against a real operator API or a real closed port."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Input, Static, TextArea

from apiclient.client import ApiClient
from apiclient.rows import ConnectionRow
from console.app import SignalConsole, make_app
from console.host import ConsoleHost
from console.screens.connections import ConnectionForm
from console.screens.flow_detail import FlowDetailScreen
from console.screens.mapping_preview import MappingPreviewModal, PreviewTable
from console.screens.sql import SqlScreen
from console.widgets.table import SignalTable
from tests.console.console_helpers import MakeConsole, fixed_clock, keys, settle
from tests.console.control_harness import TOKEN, Control

ROWS = 30
CONNECTION = "demo-marketo"


class TableApp(App[None]):
    """One table of `ROWS` rows and a preview table: the widgets on their own."""

    def compose(self) -> ComposeResult:
        for table in (SignalTable(id="plain", cursor_type="row"), PreviewTable(id="preview")):
            table.add_column("n", key="n")
            for n in range(ROWS):
                table.add_row(str(n), key=str(n))
            yield table


def _row(app: App[Any], selector: str) -> int:
    return app.query_one(selector, DataTable).cursor_row


async def test_every_table_moves_with_j_k_g_and_shift_g() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        for selector in ("#plain", "#preview"):
            app.query_one(selector, DataTable).focus()
            await pilot.press("j", "j", "j")
            assert _row(app, selector) == 3
            await pilot.press("k")
            assert _row(app, selector) == 2
            await pilot.press("G")
            assert _row(app, selector) == ROWS - 1
            await pilot.press("g")
            assert _row(app, selector) == 0
            assert app.query_one(selector, SignalTable).selected_key() == "0"


async def test_the_preview_table_goes_to_its_first_and_last_row_with_home_and_end() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        app.query_one("#preview", DataTable).focus()
        await pilot.press("end")
        assert _row(app, "#preview") == ROWS - 1
        await pilot.press("home")
        assert _row(app, "#preview") == 0


async def test_table_keys_follow_the_keymap() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        app.set_keymap({"table-down": "f6", "table-bottom": "f7"})
        app.query_one("#plain", DataTable).focus()
        await pilot.press("j")
        assert _row(app, "#plain") == 0, "j is no longer bound once table-down moved to f6"
        await pilot.press("f6", "f6")
        assert _row(app, "#plain") == 2
        await pilot.press("f7")
        assert _row(app, "#plain") == ROWS - 1


async def test_an_empty_table_has_no_selected_row_and_its_keys_do_nothing() -> None:
    class Empty(App[None]):
        def compose(self) -> ComposeResult:
            yield SignalTable(id="plain", cursor_type="row")

    app = Empty()
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(SignalTable)
        table.focus()
        await pilot.press("j", "G", "g", "k")
        assert table.selected_key() is None


async def test_every_screen_shows_its_tables_as_the_console_table(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    host: ConsoleHost = app  # the app is what its screens need (console.host)
    assert host.client is app.client
    async with app.run_test(size=(120, 40)) as pilot:
        for mode in ("flows", "connections", "catalog", "retry", "metrics", "sql"):
            await app.action_goto(mode)
            await settle(pilot)
            tables = list(app.screen.query(DataTable))
            assert tables, mode
            assert all(isinstance(t, SignalTable) for t in tables), (mode, tables)
        await app.action_goto("flows")
        await settle(pilot)
        await keys(pilot, "enter")
        editor = app.screen
        assert isinstance(editor, FlowDetailScreen)
        assert isinstance(editor.query_one("#mapping-fields"), SignalTable)
        await keys(pilot, "ctrl+o")
        await settle(pilot)
        assert isinstance(app.screen, MappingPreviewModal)
        assert isinstance(app.screen.query_one(DataTable), PreviewTable)


async def test_the_keymap_file_moves_the_table_keys_of_the_flow_list(
    control: Control, make_console: MakeConsole, tmp_path: Path
) -> None:
    keymap = tmp_path / "keys.yaml"
    keymap.write_text("table-down: f6\ntable-bottom: f7\n", encoding="utf-8")
    app = make_console(control, keymap_file=keymap)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert not app.errors
        table = app.screen.query_one(SignalTable)
        assert table.row_count > 2 and table.cursor_row == 0
        await keys(pilot, "f6")
        assert table.cursor_row == 1
        await keys(pilot, "j")
        assert table.cursor_row == 1
        await keys(pilot, "f7")
        assert table.cursor_row == table.row_count - 1


# --- call_api: what the operator sees when a call fails --------------------------------------


def _closed_port() -> int:
    """A local port nothing listens on: a connection to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _console(url: str, token: str, tmp_path: Path) -> SignalConsole:
    return make_app(
        url,
        token,
        clock=fixed_clock,
        refresh_s=0,
        watch_tty=False,
        keymap_file=tmp_path / "no-keymap.yaml",
    )


def _told(app: SignalConsole) -> list[tuple[str, str]]:
    """What the console reported, as the debug panel lists it: what it tried, and the error."""
    return [(what, error) for _, what, error in app.errors]


def _toasts(app: SignalConsole) -> list[tuple[str, str]]:
    """The notifications the operator sees: title and text."""
    return [(n.title, n.message) for n in app._notifications]


async def test_a_refused_token_is_told_and_the_flow_list_goes_stale(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control, token="not-the-token")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        refused = "the API token was refused — check the token given"
        assert _told(app) == [("load flows", refused)], "told once, and the worker ended quietly"
        assert _toasts(app) == [("Could not load flows", refused)]
        assert "stale" in str(app.screen.query_one("#topbar", Static).render())
        # the next load fails the same way: the refresh loop goes on after a failed call
        await keys(pilot, "ctrl+r")
        await settle(pilot)
        assert _told(app) == [("load flows", refused)] * 2


async def test_an_unreachable_control_is_told_on_every_screen(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    app = _console(url, TOKEN, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await app.action_goto("connections")
        await settle(pilot)
        await app.action_goto("sql")
        await settle(pilot)
        await keys(pilot, "ctrl+j")
        await settle(pilot)
        told = _told(app)
        assert [what for what, _ in told] == ["load flows", "load connections", "reach control"]
        assert all(f"control is not reachable at {url}" in error for _, error in told), told
        screen = app.screen
        assert isinstance(screen, SqlScreen)
        status = str(screen.query_one("#sql-status", Static).render())
        assert status.startswith(f"✗ control is not reachable at {url}")
        assert [title for title, _ in _toasts(app)] == [
            "Could not load flows",
            "Could not load connections",
            "Could not reach control",
        ]


async def test_a_statement_control_refuses_is_the_query_s_fault(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await app.action_goto("sql")
        await settle(pilot)
        app.screen.query_one("#query", TextArea).text = "DELETE FROM outcomes"
        await keys(pilot, "ctrl+j")
        await settle(pilot)
        [(what, _)] = _told(app)
        assert what == "run the query"
        assert [title for title, _ in _toasts(app)] == ["Could not run the query"]


async def _connection(control: Control) -> ConnectionRow:
    async with ApiClient.for_console(control.url, TOKEN) as client:
        [row] = [c for c in await client.connections() if c.id == CONNECTION]
        return row


async def test_a_409_on_saving_a_connection_shows_on_the_form_and_saves_nothing(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control)
    async with app.run_test(size=(100, 30)) as pilot:
        await keys(pilot, "2")
        await settle(pilot)
        await keys(pilot, "enter")
        form = app.screen
        assert isinstance(form, ConnectionForm)
        # someone else saves the connection after the form read it: its version moves on
        opened = await _connection(control)
        async with ApiClient.for_console(control.url, TOKEN) as other:
            theirs = {k: v for k, v in opened.raw.items() if not k.startswith("secret")}
            theirs["name"] = "Renamed elsewhere"
            await other.save_connection(theirs, create=False, version=opened.raw["version"])
        form.query_one("#name", Input).value = "Renamed here"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert app.screen is form, "the form stays open to be fixed"
        [(what, error)] = _told(app)
        assert what == "save the connection"
        assert error == "version: changed since it was read (now version 2)"
        assert str(form.query_one("#result", Static).render()) == f"✗ {error}"
        assert _toasts(app) == [("Could not save the connection", error)]
    after = await _connection(control)
    assert after.name == "Renamed elsewhere"


async def test_a_call_failing_in_a_dialog_is_shown_in_the_dialog(
    control: Control, make_console: MakeConsole, tmp_path: Path
) -> None:
    """The tag dialog shows a refusal itself (`call_api`'s `failed` hook) and posts nothing:
    no toast, nothing in the error log, and the dialog stays open to be fixed."""
    app = make_console(control)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "3")
        await settle(pilot)
        await keys(pilot, "a")
        await settle(pilot)
        dialog = app.screen
        dialog.query_one("#label", Input).value = "Registered"
        await settle(pilot)  # the label's current tags fill the tags box first
        dialog.query_one("#tags", Input).value = "no-such-tag"
        await keys(pilot, "ctrl+s")
        await settle(pilot)
        assert app.screen is dialog
        error = str(dialog.query_one("#error", Static).render())
        assert error.startswith("✗ ") and "no-such-tag" in error
        assert dialog.query_one("#tags", Input).has_class("error")
        assert _told(app) == [] and _toasts(app) == []


def _console_classes() -> list[type[Any]]:
    """Every class with bindings that the console's modules define (not Textual's own)."""
    import importlib
    import inspect
    import pkgutil

    import console
    import console.screens
    import console.widgets

    found: list[type[Any]] = []
    for package in (console, console.screens, console.widgets):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == module.__name__ and "BINDINGS" in cls.__dict__:
                    found.append(cls)
    return found


def test_every_console_binding_comes_from_the_registry() -> None:
    """A key bound outside the registry would be missing from help, the palette and keymaps."""
    from textual.binding import Binding

    from console import actions

    classes = _console_classes()
    assert len(classes) >= 15, [c.__name__ for c in classes]
    outside: list[str] = []
    for cls in classes:
        for binding in cls.__dict__["BINDINGS"]:
            assert isinstance(binding, Binding), (cls.__name__, binding)
            spec = actions.BY_ID.get(binding.id or "")
            if spec is None or (spec.keys, spec.action) != (binding.key, binding.action):
                outside.append(f"{cls.__name__}: {binding.key} -> {binding.action}")
    assert outside == []


def test_help_lists_the_table_keys_with_the_screens_own() -> None:
    from console.screens.help import help_text

    for scope in ("flows", "retry", "sql"):
        text = help_text(scope, read_only=False, keymap={"table-down": "J"})
        assert "Every table" in text
        assert "Next row" in text and "J " in text
    assert "Every table" not in help_text("quit", read_only=False)
