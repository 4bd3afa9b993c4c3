"""`csignal config check` and `config import` agree on a `${VAR}` secret whose variable is not
set: both accept the file and warn that the connection has no secret yet (import into a running
control, and into the data dir without one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.certain.demo_account import SECRET_ENV, demo_account_yaml
from stream.broker import EmbeddedBroker, free_port
from stream.cli import main
from tests.support.processes import ControlProcess, start_control

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WARNING = (
    f"warning: connections[0]: no client secret (environment variable {SECRET_ENV} is not set)"
)


@pytest.fixture
def control_without_the_variable(
    module_broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ControlProcess]:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    running = start_control(module_broker, tmp_path / "var")
    monkeypatch.setenv("SIGNAL_API", running.api)
    monkeypatch.setenv("SIGNAL_DATA_DIR", str(running.data_dir))
    monkeypatch.delenv("SIGNAL_API_TOKEN", raising=False)
    try:
        yield running
    finally:
        running.stop()


def _account(tmp_path: Path) -> Path:
    path = tmp_path / "account.yaml"
    path.write_text(demo_account_yaml("http://127.0.0.1:9", "cli-client"), encoding="utf-8")
    return path


def test_check_and_import_into_control_both_warn_about_an_unset_variable(
    control_without_the_variable: ControlProcess,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _account(tmp_path)
    assert main(["config", "check", str(path)]) == 0
    checked = capsys.readouterr().out
    assert WARNING in checked and f"{path}: valid" in checked
    assert main(["config", "import", str(path)]) == 0
    imported = capsys.readouterr().out
    assert WARNING in imported and "into control at" in imported


def test_check_and_import_without_control_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.setenv("SIGNAL_API", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("SIGNAL_DATA_DIR", str(tmp_path / "data"))
    path = _account(tmp_path)
    assert main(["config", "check", str(path)]) == 0
    assert WARNING in capsys.readouterr().out
    assert main(["config", "import", str(path)]) == 0
    out = capsys.readouterr().out
    assert WARNING in out and "imported account" in out
    # a name outside the allow-list is refused by both, by its path
    refused = tmp_path / "refused.yaml"
    refused.write_text(path.read_text().replace(SECRET_ENV, "HOME"), encoding="utf-8")
    assert main(["config", "check", str(refused)]) == 1
    assert "connections[0].client_secret: environment variable HOME" in capsys.readouterr().out
    assert main(["config", "import", str(refused)]) == 1
    assert "connections[0].client_secret: environment variable HOME" in capsys.readouterr().err
