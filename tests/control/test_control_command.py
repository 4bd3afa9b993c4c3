"""`csignal control` refuses bad options before starting anything."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stream.cli import main
from stream.commands.control import _schedule
from stream.control.retry_scheduler import DEFAULT_SCHEDULE, DEMO_SCHEDULE


@pytest.mark.parametrize(
    "argv",
    [
        ["control", "--api", "nonsense"],
        ["control", "--retry-delays", "5,-1"],
        ["control", "--retry-delays", "x"],
    ],
)
def test_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("csignal control:")


def test_unknown_schedule_from_the_environment_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGNAL_RETRY_SCHEDULE", "fast")
    assert main(["control"]) == 2
    assert "unknown retry profile 'fast'" in capsys.readouterr().err


def test_schedules() -> None:
    assert _schedule("default", None) is DEFAULT_SCHEDULE
    assert _schedule("demo", None) is DEMO_SCHEDULE
    custom = _schedule("default", "1,2.5")
    assert custom.delays == (timedelta(seconds=1), timedelta(seconds=2.5))
    assert custom.poll_interval_s == 0.25
