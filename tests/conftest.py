"""Fixtures for every test folder come from `tests.support.fixtures` (brokers, sandboxes).

The slow end-to-end modules run first: with `-n` workers (pytest-xdist, `--dist loadscope`), a
long module started last would leave one worker busy while the other sits idle.
"""

from __future__ import annotations

import pytest

from stream.broker import free_port
from tests.support.fixtures import broker, make_sandbox, module_broker, sandbox

__all__ = ["broker", "make_sandbox", "module_broker", "sandbox"]

SLOW_FIRST = ("e2e", "bench", "slow")


@pytest.fixture(autouse=True)
def _no_default_control(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point `SIGNAL_API` at a closed loopback port unless a test sets its own.

    Without it, a test that expects "control not running" (the CLI's file fallback) would talk to
    whatever Signal happens to run on this machine at the default 127.0.0.1:6066, with its own
    token, and fail for reasons that have nothing to do with the code under test.
    """
    monkeypatch.setenv("SIGNAL_API", f"127.0.0.1:{free_port()}")


def _module(item: pytest.Item) -> str:
    return item.module.__name__ if isinstance(item, pytest.Function) else ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow_modules = {
        _module(item) for item in items if any(item.get_closest_marker(m) for m in SLOW_FIRST)
    }
    # A stable sort keeps each module's own order; only whole modules move.
    items.sort(key=lambda item: _module(item) not in slow_modules)
