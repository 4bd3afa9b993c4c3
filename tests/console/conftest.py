"""Console test fixtures: a real operator API (store, configuration, sandbox) per test, and the
console built through the same factory `csignal console` uses, with a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, TextArea

from console.app import SignalConsole, make_app
from tests.console.console_helpers import CLOCK, MakeConsole, fixed_clock
from tests.console.control_harness import Control
from tests.console.textual_css import shared_parsed_css


@pytest.fixture(autouse=True, scope="session")
def parsed_css_once() -> Iterator[None]:
    """Every App of the process takes its parsed CSS from one cache (textual_css.py)."""
    with shared_parsed_css():
        yield


@pytest.fixture(autouse=True)
def no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blinking cursor makes screenshots differ from run to run."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setattr(TextArea, "_toggle_cursor_blink_visible", lambda self: None)


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Control]:
    """Outcomes seeded relative to the real time, so every metrics window holds them."""
    service = Control(tmp_path).start()
    yield service
    service.stop()


@pytest.fixture
def fixed_control(tmp_path: Path) -> Iterator[Control]:
    """Outcomes seeded relative to the console's fixed clock: stable flow-list figures."""
    service = Control(tmp_path, base=CLOCK).start()
    yield service
    service.stop()


@pytest.fixture
def make_console(tmp_path: Path) -> MakeConsole:
    def make(service: Control, **options: Any) -> SignalConsole:
        options.setdefault("keymap_file", tmp_path / "no-keymap.yaml")
        options.setdefault("clock", fixed_clock)
        options.setdefault("refresh_s", 0)
        options.setdefault("watch_tty", False)
        token = options.pop("token", service.token)
        return make_app(service.url, token, **options)

    return make
