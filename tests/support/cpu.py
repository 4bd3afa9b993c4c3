"""Per-test CPU time, summed per module: where the suite's CPU goes, which wall time hides on a
shared machine (a test that waits on a busy core looks slow without costing anything).

Off unless `SIGNAL_TEST_CPU` is set (to the number of rows to list; any other value lists 30):

    SIGNAL_TEST_CPU=40 just test-fast

Each test's setup, call and teardown is measured with `getrusage` for the worker itself and for
its children (processes it started and reaped during the test: control, pipeline, `csignal`).
A module-scoped fixture is charged to the module's first test, a session-scoped one to the test
that happened to set it up or tear it down. Under pytest-xdist each worker measures its own
tests and sends the figures to the controller in the reports' `user_properties`; the controller
prints the modules and the single tests that cost the most.
"""

from __future__ import annotations

import os
import resource
from collections import Counter, defaultdict
from collections.abc import Generator

import pytest

ENV = "SIGNAL_TEST_CPU"
KEY = "cpu_seconds"
_phase_cpu = pytest.StashKey[dict[str, float]]()


def register(config: pytest.Config) -> None:
    """Measure this run if `SIGNAL_TEST_CPU` asks for it (called from tests/conftest.py)."""
    if os.environ.get(ENV):
        config.pluginmanager.register(CpuPerTest(), "signal-cpu-per-test")


def _rows_to_show() -> int:
    value = os.environ.get(ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else 30


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _measure(item: pytest.Item, phase: str) -> Generator[None]:
    before = _cpu()
    yield
    item.stash.setdefault(_phase_cpu, {})[phase] = _cpu() - before


class CpuPerTest:
    def __init__(self) -> None:
        self.per_test: defaultdict[str, float] = defaultdict(float)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None]:
        yield from _measure(item, "setup")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None]:
        yield from _measure(item, "call")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None]:
        yield from _measure(item, "teardown")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, None]:
        report = (yield).get_result()
        seconds = item.stash.get(_phase_cpu, {}).get(call.when)
        if seconds is not None:
            report.user_properties.append((KEY, seconds))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == KEY and isinstance(value, float):
                self.per_test[report.nodeid] += value

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.per_test:
            return
        modules: defaultdict[str, float] = defaultdict(float)
        tests: Counter[str] = Counter()
        for nodeid, seconds in self.per_test.items():
            module = nodeid.split("::", 1)[0]
            modules[module] += seconds
            tests[module] += 1
        rows = _rows_to_show()
        write = terminalreporter.write_line
        terminalreporter.write_sep("=", f"CPU seconds per module, self + children ({ENV})")
        write(f"{sum(modules.values()):9.1f} s  {tests.total():5d} tests  all")
        for module, seconds in _costliest(modules, rows):
            per = seconds / tests[module]
            write(f"{seconds:9.1f} s  {tests[module]:5d} tests  {per:6.2f} s/test  {module}")
        terminalreporter.write_sep("=", "CPU seconds of the costliest tests")
        for nodeid, seconds in _costliest(self.per_test, rows):
            write(f"{seconds:9.1f} s  {nodeid}")


def _costliest(seconds: dict[str, float], rows: int) -> list[tuple[str, float]]:
    return sorted(seconds.items(), key=lambda kv: -kv[1])[:rows]
