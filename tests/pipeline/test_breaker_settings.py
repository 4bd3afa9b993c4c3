"""The circuit breakers' settings: `SIGNAL_BREAKER_*` → `Settings` → the worker's
`BreakerPolicy`; nonsense stops `csignal pipeline` before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from stream.cli import main
from stream.commands.pipeline import pipeline_options
from stream.core.breaker import BreakerPolicy


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file of the checkout
    options = pipeline_options(Settings(), "kafka://x:1", tmp_path)
    assert options.breaker == BreakerPolicy(threshold=5, open_s=30.0, max_open_s=600.0)
    assert options.config_key_file == tmp_path / "config-key"


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIGNAL_BREAKER_THRESHOLD", "2")
    monkeypatch.setenv("SIGNAL_BREAKER_OPEN_S", "5")
    monkeypatch.setenv("SIGNAL_BREAKER_MAX_OPEN_S", "60")
    options = pipeline_options(Settings(), "kafka://x:1", tmp_path)
    assert options.breaker == BreakerPolicy(threshold=2, open_s=5.0, max_open_s=60.0)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SIGNAL_BREAKER_THRESHOLD": "0"}, "breaker_threshold"),
        ({"SIGNAL_BREAKER_OPEN_S": "-1"}, "breaker_open_s"),
        ({"SIGNAL_BREAKER_OPEN_S": "700"}, "SIGNAL_BREAKER_OPEN_S: expected at most"),
        ({"SIGNAL_BREAKER_MAX_OPEN_S": "10"}, "SIGNAL_BREAKER_OPEN_S: expected at most"),
    ],
)
def test_nonsense_stops_csignal_pipeline_before_it_starts(
    env: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["pipeline", "--broker", "kafka://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("csignal pipeline: bad SIGNAL_* setting") and named in err
