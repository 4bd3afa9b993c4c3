"""`--format`: one set of choices (table|json|csv, `text` = table) on every command that prints
data, and csv output that makes sense for rows (a header) and for single records (field,value).

The parser checks run the real argument tree; the output checks run the real CLI against a real
`csignal control` with the demo account imported.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.certain.demo_account import SECRET_ENV, demo_account_yaml
from stream.broker import EmbeddedBroker
from stream.cli import build_parser, main
from stream.commands.base import FORMATS, flatten, write_csv_record
from tests.support.processes import ControlProcess, start_control

PRINTING = ("flows", "metrics", "replay", "retry", "sql")
"""The commands that print data and so take `--format`."""

FILE_FORMATS = {"export": ("parquet",)}
"""Commands whose `--format` names the format of the files they write, not what they print."""


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _format_action(parser: argparse.ArgumentParser) -> argparse.Action | None:
    return next((a for a in parser._actions if "--format" in a.option_strings), None)


def test_every_command_with_format_offers_the_same_choices() -> None:
    commands = _subcommands()
    with_format = {name for name, p in commands.items() if _format_action(p) is not None}
    assert with_format >= set(PRINTING) | {"erase"}
    for name, choices in FILE_FORMATS.items():
        action = _format_action(commands[name])
        assert action is not None and tuple(action.choices or ()) == choices, name
    for name in sorted(with_format - set(FILE_FORMATS)):
        action = _format_action(commands[name])
        assert action is not None
        assert tuple(action.choices or ()) == FORMATS == ("table", "json", "csv"), name
        assert action.default == "table", name
        assert "text" in (action.help or ""), f"{name}: help names the text alias"


@pytest.mark.parametrize("command", PRINTING)
def test_text_is_accepted_as_table_everywhere(command: str) -> None:
    parser = _subcommands()[command]
    extra = ["SELECT 1"] if command == "sql" else []
    for spelled in ("text", "TEXT", "table"):
        assert parser.parse_args([*extra, "--format", spelled]).format == "table"
    assert parser.parse_args([*extra, "--format", "csv"]).format == "csv"


@pytest.mark.parametrize("command", PRINTING)
def test_an_unknown_format_is_refused_naming_the_option_value_and_choices(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["SELECT 1"] if command == "sql" else []
    with pytest.raises(SystemExit) as stopped:
        main([command, *extra, "--format", "yaml"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "argument --format: invalid choice: 'yaml'" in err
    assert "'table', 'json', 'csv'" in err


def test_each_command_help_documents_the_formats(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--format table|json|csv" in capsys.readouterr().out
    for command in PRINTING:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "--format {table,json,csv}" in out, command


def test_a_record_flattens_to_dotted_field_names() -> None:
    body = {
        "changes_processed": 3,
        "actions_not_triggered": {"total": 2, "failed": {"by_category": {}}},
        "registration_activity": [{"changes": 1}, {"changes": 2}],
        "consumer_lag": None,
        "note": "a, b",
    }
    assert flatten(body) == [
        ("changes_processed", 3),
        ("actions_not_triggered.total", 2),
        ("actions_not_triggered.failed.by_category", "{}"),
        ("registration_activity.0.changes", 1),
        ("registration_activity.1.changes", 2),
        ("consumer_lag", None),
        ("note", "a, b"),
    ]
    out = io.StringIO()
    write_csv_record(body, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "field,value"
    assert 'note,"a, b"' in lines and "consumer_lag," in lines


# --- the real CLI against a real control --------------------------------------------------------


@pytest.fixture(scope="module")
def control(
    module_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlProcess]:
    root = tmp_path_factory.mktemp("cli-format")
    running = start_control(module_broker, root / "var", env={SECRET_ENV: "format-secret"})
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def env(
    control: ControlProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> ControlProcess:
    monkeypatch.setenv("SIGNAL_API", control.api)
    monkeypatch.setenv("SIGNAL_DATA_DIR", str(control.data_dir))
    monkeypatch.delenv("SIGNAL_API_TOKEN", raising=False)
    account = tmp_path / "account.yaml"
    account.write_text(demo_account_yaml("http://127.0.0.1:9", "format-client"), "utf-8")
    assert main(["config", "import", str(account)]) == 0
    capsys.readouterr()
    return control


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_metrics_as_csv_is_one_line_per_figure(
    env: ControlProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["metrics", "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert main(["metrics", "--format", "csv"]) == 0
    rows = _csv(capsys.readouterr().out)
    assert rows[0] == ["field", "value"]
    fields = dict((name, value) for name, value in rows[1:])
    assert fields["changes_processed"] == str(body["changes_processed"])
    assert fields["actions_not_triggered.not_activated.total"] == "0"
    assert fields["mode"] == "live"
    assert main(["metrics", "troubleshooting", "--format", "csv"]) == 0
    names = [name for name, _ in _csv(capsys.readouterr().out)[1:]]
    assert "retry_queue.open" in names


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_metrics_text_still_prints_the_table(
    env: ControlProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["metrics", "--format", "text"]) == 0
    as_text = capsys.readouterr().out
    assert main(["metrics"]) == 0
    as_table = capsys.readouterr().out

    def figures(text: str) -> list[str]:  # the period line names the moment it was asked
        return [line for line in text.splitlines() if not line.startswith("period:")]

    assert figures(as_table) == figures(as_text)
    assert as_text.startswith("summary — live, 24h\n") and "changes processed: 0" in as_text


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_retry_list_as_csv_has_a_header_even_when_empty(
    env: ControlProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["retry", "list", "--format", "csv"]) == 0
    rows = _csv(capsys.readouterr().out)
    assert rows == [
        [
            "change_id",
            "flow_id",
            "integration",
            "status",
            "category",
            "attempts",
            "next_attempt_at",
            "reason",
        ]
    ]


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_replay_dry_run_as_csv(env: ControlProcess, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["replay", "complete-form", "--event", "NOSUCH", "--dry-run"]
    assert main([*args, "--format", "csv"]) == 0
    rows = _csv(capsys.readouterr().out)
    assert rows[0] == ["field", "value"]
    fields = dict((name, value) for name, value in rows[1:])
    assert fields["in_scope"] == "0"
    assert main([*args, "--format", "text"]) == 0
    assert "nothing was sent" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_sql_csv_is_unchanged(env: ControlProcess, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT 1 AS one, true AS yes, NULL AS nothing", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "one,yes,nothing\n1,True,\n"
    assert main(["sql", "SELECT 1 AS one", "--format", "text"]) == 0
    assert "(1 row)" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_flows_as_csv_are_the_table_rows_uncut(
    env: ControlProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["flows", "--format", "json"]) == 0
    flows = json.loads(capsys.readouterr().out)
    assert main(["flows", "--format", "csv"]) == 0
    rows = _csv(capsys.readouterr().out)
    assert rows[0] == ["id", "name", "mode", "active", "sent", "failed", "complete", "reasons"]
    by_id = {row[0]: row for row in rows[1:]}
    assert set(by_id) == {f["id"] for f in flows}
    for flow in flows:
        row = by_id[flow["id"]]
        assert row[1] == flow["name"]  # exact, "→" and all
        assert row[3] == ("on" if flow["active"] else "off")
        assert row[6] == ("yes" if flow["complete"] else "no")
        assert row[4].isdigit() and row[5].isdigit()
    assert main(["flows", "--format", "text"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == [
        "id",
        "name",
        "mode",
        "active",
        "sent",
        "failed",
        "complete",
    ]
