"""The CLI against hostile input (issue 11): `csignal config check` refuses a YAML alias bomb at
once, and `csignal sql`'s table escapes control characters from the data."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from apiclient.rows import SqlResult
from stream.cli import main
from stream.commands.sql import render
from tests.support.hostile import alias_bomb


def test_config_check_refuses_an_alias_bomb_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(), encoding="utf-8")
    started = time.perf_counter()
    code = main(["config", "check", str(bomb)])
    elapsed = time.perf_counter() - started
    captured = capsys.readouterr()
    print(f"alias bomb refused by config check in {elapsed * 1000:.1f} ms")
    assert code == 1
    assert f"{bomb}:1:4: YAML syntax error: anchor &a is not allowed" in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err
    assert elapsed < 10.0  # 41 s and 3.1 GB before anchors were refused


def test_config_check_refuses_a_deep_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("account: " + "[" * 3000 + "]" * 3000 + "\n", encoding="utf-8")
    assert main(["config", "check", str(deep)]) == 1
    captured = capsys.readouterr()
    assert "nested deeper than 50 levels" in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("a\x9b2Jb", "a\\x9b2Jb"),
        ("tab\there\rback", "tab\\x09here\\x0dback"),
        ("line\u2028sep", "line\\u2028sep"),
        ("two\nlines", "two⏎lines"),
    ],
)
def test_table_cells_show_control_characters_escaped(value: str, shown: str) -> None:
    result = SqlResult(columns=["name\x1b[2J"], rows=[[value]])
    out = io.StringIO()
    render(result, "table", out)
    table = out.getvalue()
    assert shown in table
    assert "name\\x1b[2J" in table
    assert not any(ch in table for ch in "\x1b\x07\x9b\r\t\u2028")
