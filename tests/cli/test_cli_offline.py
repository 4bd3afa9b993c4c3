"""simulate/ingest/sql without a running control: files, formats, and the errors operators see."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from apiclient.rows import SqlResult
from stream.broker import free_port
from stream.certain.parsing import parse_changes
from stream.cli import main
from stream.commands.sql import render

UNREACHABLE = "is not reachable at"


@pytest.fixture
def no_control(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    port = free_port()
    monkeypatch.setenv("SIGNAL_API", f"127.0.0.1:{port}")
    monkeypatch.setenv("SIGNAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIGNAL_API_TOKEN", raising=False)
    return f"http://127.0.0.1:{port}"


def test_simulate_writes_a_file_without_control(
    no_control: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "changes.jsonl"
    args = ["simulate", "--rate", "10", "--duration", "6", "--seed", "9", "--output", str(out)]
    assert main([*args, "--start", "2026-11-28T12:00:00Z"]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 60
    accepted, rejected = parse_changes("\n".join(lines))
    assert accepted and rejected
    assert "seed 9" in capsys.readouterr().err
    again = tmp_path / "again.jsonl"
    args[-1] = str(again)
    assert main([*args, "--start", "2026-11-28T12:00:00Z"]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_simulate_dry_run_summarises(no_control: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--rate", "5", "--duration", "4", "--seed", "1", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "20 changes" in err and "event.create_update" in err and "invalid" in err


def test_simulate_rejects_bad_options(no_control: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--rate", "0", "--dry-run"]) == 2
    assert main(["simulate", "--start", "yesterday", "--dry-run"]) == 2
    assert "--start" in capsys.readouterr().err


def test_simulate_to_api_when_control_is_down(
    no_control: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--rate", "5", "--duration", "1", "--seed", "1"]) == 1
    err = capsys.readouterr().err
    assert f"control {UNREACHABLE} {no_control}" in err
    assert "`csignal control` (or `csignal run`)" in err


def test_ingest_when_control_is_down(
    no_control: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text('{"changeId": "x"}\n', encoding="utf-8")
    assert main(["ingest", str(path)]) == 1
    assert UNREACHABLE in capsys.readouterr().err


def test_ingest_missing_file(
    no_control: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(tmp_path / "absent.jsonl")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["ingest", str(tmp_path)]) == 1
    assert f"{tmp_path}: a directory, not a file" in capsys.readouterr().err


def test_sql_when_control_is_down(no_control: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT 1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("csignal sql: control is not reachable")


def test_sql_api_option_wins(no_control: str, capsys: pytest.CaptureFixture[str]) -> None:
    other = f"http://127.0.0.1:{free_port()}"
    assert main(["sql", "SELECT 1", "--api", other]) == 1
    assert other in capsys.readouterr().err


RESULT = SqlResult(
    columns=["status", "n", "detail"],
    rows=[["delivered", 12, None], ["failed", 3, 'bad, "quoted"\nvalue']],
    truncated=False,
)


def test_table_format() -> None:
    out = io.StringIO()
    render(RESULT, "table", out)
    lines = out.getvalue().splitlines()
    assert lines[0].split(" | ")[0].strip() == "status"
    assert set(lines[1]) <= {"-", "+"}
    assert "delivered" in lines[2] and "NULL" in lines[2]
    assert lines[-1] == "(2 rows)"
    assert lines[0].index("|") == lines[2].index("|") == lines[3].index("|")
    assert "⏎" in lines[3]


def test_csv_format_round_trips() -> None:
    out = io.StringIO()
    render(RESULT, "csv", out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["status", "n", "detail"]
    assert rows[2] == ["failed", "3", 'bad, "quoted"\nvalue']
    assert rows[1][2] == ""


def test_json_format_is_objects() -> None:
    out = io.StringIO()
    render(RESULT, "json", out)
    data = json.loads(out.getvalue())
    assert data[0] == {"status": "delivered", "n": 12, "detail": None}


@pytest.mark.parametrize(
    ("command", "name", "value", "expected"),
    [
        (["run", "--headless"], "SIGNAL_EMBEDDED_BROKER_MAX_MB", "10", "64 to 1048576 MiB"),
        (["run", "--headless"], "SIGNAL_RECOVERY_GRACE_S", "0", "expected more than 0"),
        (["flows"], "SIGNAL_BREAKER_OPEN_S", "soon", "a valid number"),
        (["sql", "SELECT 1"], "SIGNAL_RETENTION_BATCH", "5", "expected at least 100"),
    ],
)
def test_a_setting_it_cannot_use_is_named_not_a_traceback(
    no_control: str,
    command: list[str],
    name: str,
    value: str,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(name, value)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"csignal {command[0]}: {name}='{value}': "), err
    assert expected in err and "Traceback" not in err, err


def test_a_rule_across_settings_names_its_variables_in_plain_words(
    no_control: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGNAL_RECOVERY_HORIZON_DAYS", "100")
    assert main(["sql", "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "csignal sql: SIGNAL_RETAIN_PAYLOAD_DAYS: expected more days than "
        "SIGNAL_RECOVERY_HORIZON_DAYS (100"
    ), err
    assert "Value error" not in err and "SIGNAL_*" not in err, err
