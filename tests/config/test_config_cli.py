"""`csignal config check / import / export` end to end, in process."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.models import Account
from config.yamlio import read_account
from stream.cli import main
from tests.config.config_helpers import BROKEN, LOCAL_EXAMPLE, SECRET, SECRET_VAR, SHARED_EXAMPLE

# Each mistake planted in data/broken.yaml: (path, fragment of the message).
BROKEN_EXPECTED = [
    ("flows[0].mode", "expected 'live' or 'test', got 'production'"),
    ("tags[7].name", "duplicate tag 'vip' (already used by tags[3])"),
    ("flows[3].id", "duplicate flow 'vip-attended' (already used by flows[1])"),
    ("assignments.registration_statuses['Pre-Registered'][0]", "unknown tag 'registred'"),
    ("connections[1].primary", "a second primary connection"),
    ("connections[1].service_url", "expected a URL without a query string"),
    ("mappings[0].fields[4].target", "duplicate target 'email'"),
    ("mappings[0].fields[3].sources[0]", "unknown source path 'registration.profile.company'"),
    (
        "mappings[0].fields[5].sources[0]",
        "tag 'vip' in 'answers.vip' does not apply to registration",
    ),
    ("flows[0].activate_for.registration_statuses[0]", "tag 'vip' does not apply to registration"),
    ("flows[0].filters[1].value", "operator in expects a list of values, got 'US'"),
    ("flows[0].destination.mapping", "unknown mapping 'lead-x' (known: lead-basic)"),
    ("flows[0].destination.campaign", "empty campaign rule"),
    ("flows[1].filters[1].value", "operator is_empty takes no value"),
    ("flows[1].destination.connection", "unknown connection 'mkto-prd'"),
    ("flows[1].destination.tokens['my.session']", "is not of the form '{{my.name}}'"),
    ("flows[2].filters[0].field", "'session.sessionName' is not available for source"),
    ("flows[2].destination.campaign", "a campaign rule does not apply to action form_post"),
]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["config", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_the_shared_example(capsys: pytest.CaptureFixture[str]) -> None:
    if not SHARED_EXAMPLE.exists():
        pytest.skip(f"shared example not found at {SHARED_EXAMPLE} (covered by the local copy)")
    code, out, _err = _run(capsys, "check", str(SHARED_EXAMPLE))
    assert code == 0, out
    assert "valid" in out


def test_local_copy_matches_the_shared_example() -> None:
    if not SHARED_EXAMPLE.exists():
        pytest.skip(f"shared example not found at {SHARED_EXAMPLE}")
    assert LOCAL_EXAMPLE.read_text(encoding="utf-8") == SHARED_EXAMPLE.read_text(encoding="utf-8")


def test_check_the_local_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = _run(capsys, "check", str(LOCAL_EXAMPLE))
    assert code == 0
    assert out.strip().endswith(
        "valid (7 tags, 1 connection, 1 mapping, 3 flows (3 complete, 0 incomplete))"
    )
    assert SECRET not in out


def test_check_reports_every_planted_mistake(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = _run(capsys, "check", str(BROKEN))
    assert code == 1
    lines = out.splitlines()
    missing = [
        (path, fragment)
        for path, fragment in BROKEN_EXPECTED
        if not any(line.startswith(f"{path}: ") and fragment in line for line in lines)
    ]
    assert not missing, out
    assert lines[-1].endswith(f"{len(BROKEN_EXPECTED)} problems")
    assert "Traceback" not in out


def test_check_yaml_syntax_error_gives_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("account: ACME\nflows:\n  - id: [oops\n    name: x\n", encoding="utf-8")
    code, out, err = _run(capsys, "check", str(bad))
    assert code == 1
    assert f"{bad}:4:9: YAML syntax error: expected ',' or ']', but got ':'" in out + err
    assert "(while parsing a flow sequence started at line 3, column 9)" in out + err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("content", [None, b"\xff\xfe not utf-8"])
def test_check_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None
) -> None:
    path = tmp_path / "x.yaml"
    if content is not None:
        path.write_bytes(content)
    code, out, _err = _run(capsys, "check", str(path))
    assert code == 1
    assert str(path) in out


@pytest.mark.parametrize("content", ["", "# only a comment\n"])
def test_check_an_empty_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(content, encoding="utf-8")
    code, out, _err = _run(capsys, "check", str(path))
    assert code == 1
    assert "the file is empty; expected a mapping with 'account', 'flows'" in out
    assert "None" not in out


def test_check_unset_secret_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(SECRET_VAR)
    code, out, _err = _run(capsys, "check", str(LOCAL_EXAMPLE))
    assert code == 0, "an unset variable is a warning, as control's import says it"
    assert (
        "warning: connections[0]: no client secret (environment variable MARKETO_CLIENT_SECRET "
        "is not set)" in out
    )


def test_check_warns_about_an_unset_certain_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Certain source's password follows a client secret's rules: an allowed variable that
    is not set is a warning, and the source polls nothing until it is set."""
    raw = yaml.safe_load(LOCAL_EXAMPLE.read_text(encoding="utf-8"))
    raw["certain_sources"] = [
        {
            "id": "acme-certain",
            "name": "ACME on Certain",
            "host": "https://app.certain.com",
            "account_code": "ACME",
            "username": "signal-api",
            "password": "${SIGNAL_SECRET_CERTAIN}",
        }
    ]
    path = tmp_path / "polled.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.delenv("SIGNAL_SECRET_CERTAIN", raising=False)
    code, out, _err = _run(capsys, "check", str(path))
    assert code == 0, out
    assert (
        "warning: certain_sources[0]: no password (environment variable SIGNAL_SECRET_CERTAIN "
        "is not set); it polls nothing until the variable is set" in out
    )
    monkeypatch.setenv("SIGNAL_SECRET_CERTAIN", "pw")
    code, out, _err = _run(capsys, "check", str(path))
    assert code == 0 and "certain_sources[0]" not in out, out


def test_check_warns_about_incomplete_flows_but_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = yaml.safe_load(LOCAL_EXAMPLE.read_text(encoding="utf-8"))
    raw["flows"].append({"id": "draft", "name": "Draft"})
    path = tmp_path / "draft.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    code, out, _err = _run(capsys, "check", str(path))
    assert code == 0
    assert "warning: flows[3] 'draft' is incomplete and will not run: no source;" in out
    assert "(3 complete, 1 incomplete)" in out


def test_import_stores_export_form_and_export_round_trips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = _run(capsys, "import", str(LOCAL_EXAMPLE))
    assert code == 0
    stored = tmp_path / "var" / "account.yaml"
    assert "imported account ACME" in out and str(stored) in out
    text = stored.read_text(encoding="utf-8")
    assert SECRET not in text
    assert "${MARKETO_CLIENT_SECRET}" in text

    code, exported, _err = _run(capsys, "export")
    assert code == 0
    assert exported == text
    assert SECRET not in exported

    again = tmp_path / "again.yaml"
    again.write_text(exported, encoding="utf-8")
    assert read_account(again) == read_account(LOCAL_EXAMPLE)
    assert _run(capsys, "import", str(again))[0] == 0
    assert stored.read_text(encoding="utf-8") == text


def test_export_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "import", str(LOCAL_EXAMPLE))[0] == 0
    target = tmp_path / "out.yaml"
    code, out, _err = _run(capsys, "export", "--output", str(target))
    assert code == 0 and out == ""
    assert isinstance(read_account(target), Account)


def test_export_works_without_the_secret_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "import", str(LOCAL_EXAMPLE))[0] == 0
    monkeypatch.delenv(SECRET_VAR)
    code, out, _err = _run(capsys, "export")
    assert code == 0
    assert "client_secret: ${MARKETO_CLIENT_SECRET}" in out


def test_export_with_nothing_stored(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "export")
    assert code == 1 and out == ""
    assert "no account configuration stored" in err


def test_import_refuses_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _run(capsys, "import", str(BROKEN))
    assert code == 1
    assert "flows[0].destination.mapping: unknown mapping 'lead-x'" in err
    assert "not imported" in err
    assert not (tmp_path / "var" / "account.yaml").exists()


def test_import_warns_about_a_literal_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "literal.yaml"
    path.write_text(
        LOCAL_EXAMPLE.read_text(encoding="utf-8").replace("${MARKETO_CLIENT_SECRET}", "plain-pw"),
        encoding="utf-8",
    )
    code, out, _err = _run(capsys, "import", str(path))
    assert code == 0
    assert "warning: connections[0].client_secret: literal secret" in out
    assert "plain-pw" not in out
    assert "plain-pw" not in (tmp_path / "var" / "account.yaml").read_text(encoding="utf-8")


def test_config_without_subcommand_shows_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _run(capsys)
    assert code == 2
    assert "check" in err and "import" in err


def test_export_of_a_damaged_store_reports_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = tmp_path / "var" / "account.yaml"
    stored.parent.mkdir(parents=True)
    stored.write_text("account: [A\n", encoding="utf-8")
    code, out, err = _run(capsys, "export")
    assert code == 1 and out == ""
    assert f"{stored}:2:1: YAML syntax error" in err
