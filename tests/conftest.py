"""Fixtures for every test folder come from `tests.support.fixtures` (brokers, sandboxes).

The slow end-to-end modules run first: with `-n` workers (pytest-xdist, `--dist loadscope`), a
long module started last would leave one worker busy while the other sits idle.
"""

from __future__ import annotations

import pytest

from tests.support.fixtures import broker, make_sandbox, module_broker, sandbox

__all__ = ["broker", "make_sandbox", "module_broker", "sandbox"]

SLOW_FIRST = ("e2e", "bench", "slow")


def _module(item: pytest.Item) -> str:
    return item.module.__name__ if isinstance(item, pytest.Function) else ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow_modules = {
        _module(item) for item in items if any(item.get_closest_marker(m) for m in SLOW_FIRST)
    }
    # A stable sort keeps each module's own order; only whole modules move.
    items.sort(key=lambda item: _module(item) not in slow_modules)
