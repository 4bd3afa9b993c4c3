"""Fixtures for every test folder come from `tests.support.fixtures` (brokers, sandboxes).

The slow end-to-end modules run first: with `-n` workers (pytest-xdist, `--dist loadscope
--no-loadscope-reorder`), a long module started last would leave one worker busy while the
others sit idle.

`just test-fast` is the inner loop: every test that starts another process or a real broker is
marked `slow` here, by one rule rather than test by test (`starts_processes`).
"""

from __future__ import annotations

import functools
import gc
import sys
from collections import Counter
from collections.abc import Callable
from types import ModuleType

import pytest

from stream.broker import free_port
from tests.support import cpu
from tests.support.fixtures import broker, make_sandbox, module_broker, sandbox, web_server

__all__ = ["broker", "make_sandbox", "module_broker", "sandbox", "web_server"]

SLOW_FIRST = ("e2e", "bench", "slow")


def pytest_configure(config: pytest.Config) -> None:
    cpu.register(config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadscope` with the suite's own units and lookahead (tests/support/scheduling.py)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from tests.support.scheduling import SignalScheduling

    return SignalScheduling(config, log)


GC_THRESHOLDS = (50_000, 10, 10)
"""The test process's garbage collector thresholds (CPython's default: 700, 10, 10)."""


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection imported (Textual, DuckDB, pyarrow, hypothesis, every test module)
    and collect the young generation every 50,000 allocations instead of 700. A worker runs
    hundreds of tests in one heap; at the defaults the collector walked it again and again and
    took a sixth of the CPU of console and store tests (4.5 of 27.3 CPU-s over four modules,
    1.6 with these settings; the four modules 27.3 -> 22.3 CPU-s). Objects still die with their
    last reference; only cycles wait longer for a collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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


BROKER_FIXTURES = frozenset({"broker", "module_broker"})
SHARED_FIXTURES = "tests.support.fixtures"
PROCESS_MODULES = frozenset({"tests.support.processes", "subprocess", "stream.broker"})
PROCESS_NAMES = frozenset({"EmbeddedBroker", "Popen", "ServiceProcess", "ControlProcess"})


@functools.cache
def _holds_processes(module: ModuleType | None) -> bool:
    """The module uses `subprocess`, the broker or `tests.support.processes` (any name of it).
    Asked once per module, not once per test and fixture (a tenth of collection's CPU)."""
    if module is None:
        return False
    for name, value in vars(module).items():
        if name in PROCESS_NAMES or (
            isinstance(value, ModuleType) and value.__name__ in PROCESS_MODULES
        ):
            return True
        if getattr(value, "__module__", None) in PROCESS_MODULES and name != "free_port":
            return True
    return False


def starts_processes(item: pytest.Item) -> bool:
    """An `integration` test, one using a broker fixture, or one whose module (or the module of
    a fixture it uses, outside the shared in-process ones) starts processes or a broker."""
    names = set(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("integration") or BROKER_FIXTURES & names:
        return True
    modules = {getattr(item, "module", None)}
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info is not None else ():
        for fixturedef in defs:
            module = getattr(fixturedef.func, "__module__", "")
            if module != SHARED_FIXTURES:
                modules.add(sys.modules.get(module))
    return any(_holds_processes(module) for module in modules)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not item.get_closest_marker("slow") and starts_processes(item):
            item.add_marker(pytest.mark.slow)
    items.sort(key=_start_order(items))


def _start_order(items: list[pytest.Item]) -> Callable[[pytest.Item], tuple[int, int]]:
    """Whole modules in the order they should start: end-to-end, then bench, then other slow
    ones, then the rest; within a tier, modules with more tests first. The sort is stable, so
    each module keeps its own order. (`just test` tells xdist to keep this order.)"""
    tier: dict[str, int] = {}
    size: Counter[str] = Counter()
    for item in items:
        module = _module(item)
        size[module] += 1
        marks = [i for i, m in enumerate(SLOW_FIRST) if item.get_closest_marker(m)]
        tier[module] = min([tier.get(module, len(SLOW_FIRST)), *marks])
    return lambda item: (tier[_module(item)], -size[_module(item)])
