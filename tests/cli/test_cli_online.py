"""ingest, sql, flows and config through a real `csignal control` (embedded broker, DuckDB)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.certain import traffic as sim
from simulators.certain.demo_account import SECRET_ENV, demo_account_yaml
from simulators.certain.send import write_file
from stream.broker import EmbeddedBroker
from stream.cli import main
from tests.support.processes import ControlProcess, start_control

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def control(
    module_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlProcess]:
    """One `csignal control` for the module (Signal's own topic names: the module's broker)."""
    data_dir = tmp_path_factory.mktemp("cli-online") / "var"
    running = start_control(module_broker, data_dir, env={SECRET_ENV: "cli-secret"})
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def env(control: ControlProcess, monkeypatch: pytest.MonkeyPatch) -> ControlProcess:
    monkeypatch.setenv("SIGNAL_API", control.api)
    monkeypatch.setenv("SIGNAL_DATA_DIR", str(control.data_dir))
    monkeypatch.delenv("SIGNAL_API_TOKEN", raising=False)
    return control


def test_ingest_lists_rejections_by_line_and_exits_1(
    env: ControlProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = sim.generate(seed=77, rate=10, duration=4)
    path = tmp_path / "changes.jsonl"
    write_file(items, path)
    bad_lines = [n + 1 for n, item in enumerate(items) if not item.valid]
    assert bad_lines
    assert main(["ingest", str(path), "--chunk", "7"]) == 1
    out = capsys.readouterr().out
    for line in bad_lines:
        assert f"{path}:line {line}: " in out
    assert "changeId: required field is missing" in out
    good = sum(1 for item in items if item.valid)
    assert f"rejected from {path}" in out
    accepted = int(out.strip().splitlines()[-1].split()[0])
    assert accepted <= good


def test_ingest_all_good_exits_0(
    env: ControlProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [i for i in sim.generate(seed=78, rate=10, duration=2) if i.valid]
    path = tmp_path / "good.jsonl"
    write_file(items, path)
    assert main(["ingest", str(path)]) == 0
    assert ", 0 rejected" in capsys.readouterr().out


def test_sql_formats(env: ControlProcess, capsys: pytest.CaptureFixture[str]) -> None:
    query = "SELECT 1 AS one, 'a,b' AS text UNION ALL SELECT 2, NULL ORDER BY one"
    assert main(["sql", query, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"one": 1, "text": "a,b"},
        {"one": 2, "text": None},
    ]
    assert main(["sql", query, "--format", "csv"]) == 0
    assert capsys.readouterr().out == 'one,text\n1,"a,b"\n2,\n'
    assert main(["sql", query]) == 0
    table = capsys.readouterr().out
    assert "one | text" in table and "(2 rows)" in table


ATTENDEE = "\x1b]0;pwned\x07Eve \x1b[2J\x9b31m"
"""An attendee name that retitles the terminal, clears it and sets a colour (C1 CSI) when printed
raw."""


def test_sql_table_output_prints_no_terminal_escapes(
    env: ControlProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    query = f"SELECT '{ATTENDEE}' AS attendee, 1 AS n"
    assert main(["sql", query]) == 0
    table = capsys.readouterr().out
    assert "\x1b" not in table and "\x07" not in table and "\x9b" not in table
    assert "\\x1b]0;pwned\\x07Eve \\x1b[2J\\x9b31m" in table
    # CSV and JSON keep the data exact.
    assert main(["sql", query, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"attendee": ATTENDEE, "n": 1}]
    assert main(["sql", query, "--format", "csv"]) == 0
    assert capsys.readouterr().out == f"attendee,n\n{ATTENDEE},1\n"


def test_sql_truncation_is_reported(
    env: ControlProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "SELECT * FROM range(10)", "--max-rows", "3", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 4
    assert "truncated at 3 rows; use --max-rows" in captured.err


def test_sql_cut_by_the_answer_size_cap_says_so(
    env: ControlProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """More rows would not help when control's byte cap cut the answer: the hint says what will."""
    query = "SELECT repeat('x', 4000) AS wide FROM range(6000)"  # 24 MB over a 16 MiB cap
    assert main(["sql", query, "--max-rows", "6000", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    shown = len(captured.out.strip().splitlines()) - 1
    assert 0 < shown < 6000
    assert f"truncated at {shown} rows by the answer size cap" in captured.err
    assert "--max-rows" not in captured.err


def test_sql_refused_write(env: ControlProcess, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "DELETE FROM changes"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("csignal sql: POST /api/v1/sql failed (400)")
    assert "refused" in err


def test_wrong_token(
    env: ControlProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGNAL_API_TOKEN", "not-the-token")
    assert main(["sql", "SELECT 1"]) == 1
    assert "the API token was refused — check $SIGNAL_DATA_DIR/api-token" in capsys.readouterr().err


def test_config_import_and_export_go_through_control(
    env: ControlProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "account.yaml"
    good.write_text(demo_account_yaml("http://127.0.0.1:9", "cli-client"), encoding="utf-8")
    assert main(["config", "import", str(good)]) == 0
    assert f"into control at {env.url}" in capsys.readouterr().out
    assert main(["config", "export"]) == 0
    exported = capsys.readouterr().out
    assert "id: demo-marketo" in exported and "cli-secret" not in exported
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("mapping: form-fields", "mapping: nope"))
    assert main(["config", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "flows[4].destination.mapping: unknown mapping 'nope'" in err
    assert "not imported" in err


def test_simulate_into_the_api(env: ControlProcess, capsys: pytest.CaptureFixture[str]) -> None:
    items = sim.generate(seed=79, rate=20, duration=1)
    bad = sum(1 for item in items if not item.valid)
    assert main(["simulate", "--rate", "20", "--duration", "1", "--seed", "79"]) == 0
    out = capsys.readouterr().out
    assert f"sent {len(items)} changes" in out
    assert f"{bad} rejected" in out
