"""Recovery's settings: `SIGNAL_RECOVERY_*` → `Settings` → `ControlSettings` → the policy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import Settings
from stream.cli import main
from stream.commands.control import control_settings
from stream.control.retry_scheduler import DEFAULT_SCHEDULE


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file of the checkout
    policy = control_settings(Settings(), "kafka://x:1", DEFAULT_SCHEDULE).recovery_policy
    assert (policy.grace, policy.horizon, policy.every_s) == (
        timedelta(seconds=60),
        timedelta(days=7),
        15.0,
    )
    assert (policy.max_redrives, policy.batch_size) == (5, 2000)
    assert control_settings(Settings(), "kafka://x:1", DEFAULT_SCHEDULE).fresh_broker is False


def test_a_fresh_broker_reaches_control(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIGNAL_FRESH_BROKER", "1")
    assert control_settings(Settings(), "kafka://x:1", DEFAULT_SCHEDULE).fresh_broker is True


@pytest.mark.parametrize(("value", "kept"), [("0", 0), ("64", 64), ("4096", 4096)])
def test_the_embedded_broker_limit(
    value: str, kept: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings().embedded_broker_max_mb == 512
    monkeypatch.setenv("SIGNAL_EMBEDDED_BROKER_MAX_MB", value)
    assert Settings().embedded_broker_max_mb == kept


@pytest.mark.parametrize("value", ["63", "-1", "lots"])
def test_an_embedded_broker_limit_it_cannot_keep_is_named(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIGNAL_EMBEDDED_BROKER_MAX_MB", value)
    with pytest.raises(ValueError, match="embedded_broker_max_mb") as refused:
        Settings()
    if value != "lots":
        assert "expected 0 (never roll over) or 64 to 1048576 MiB, got" in str(refused.value)


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "SIGNAL_RECOVERY_EVERY_S": "2.5",
        "SIGNAL_RECOVERY_GRACE_S": "10",
        "SIGNAL_RECOVERY_HORIZON_DAYS": "1.5",
        "SIGNAL_RECOVERY_MAX_REDRIVES": "3",
        "SIGNAL_RECOVERY_BATCH": "50",
    }.items():
        monkeypatch.setenv(name, value)
    policy = control_settings(Settings(), "kafka://x:1", DEFAULT_SCHEDULE).recovery_policy
    assert (policy.grace, policy.horizon, policy.every_s) == (
        timedelta(seconds=10),
        timedelta(hours=36),
        2.5,
    )
    assert (policy.max_redrives, policy.batch_size) == (3, 50)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SIGNAL_RECOVERY_GRACE_S", "0"),
        ("SIGNAL_RECOVERY_EVERY_S", "-1"),
        ("SIGNAL_RECOVERY_MAX_REDRIVES", "0"),
        ("SIGNAL_RECOVERY_HORIZON_DAYS", "0.0001"),
    ],
)
def test_nonsense_stops_csignal_control_before_it_starts(
    name: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    assert main(["control"]) == 2
    assert capsys.readouterr().err.startswith("csignal control:")
