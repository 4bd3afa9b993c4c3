"""The one rule for showing data at a terminal (`config.terminal_text`)."""

from __future__ import annotations

import json

import pytest

from config.terminal_text import escape_controls, escape_controls_json


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Reg\x1b]0;PWNED\x07", "Reg\\x1b]0;PWNED\\x07"),
        ("a\x9b2Jb\x7f", "a\\x9b2Jb\\x7f"),
        ("cr\rback\x08", "cr\\x0dback\\x08"),
        ("right\u202eleft \u2066iso\u2069 \u200f", "right\\u202eleft \\u2066iso\\u2069 \\u200f"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("lone \udc80", "lone \\udc80"),
        ("Zoë Ångström 東京 שלום", "Zoë Ångström 東京 שלום"),
    ],
)
def test_escape_controls(text: str, shown: str) -> None:
    assert escape_controls(text) == shown


def test_escape_controls_keeps_what_the_caller_asks() -> None:
    assert escape_controls("a\nb\tc\x1b", keep="\n\t") == "a\nb\tc\\x1b"
    assert escape_controls("a\nb") == "a\\x0ab"


def test_json_escapes_parse_back_to_the_same_data() -> None:
    data = [{"label": "Reg\x1b]0;x\x07 \u202e\u2028\x9b é", "n": 1}]
    text = escape_controls_json(json.dumps(data, ensure_ascii=False, indent=2))
    assert json.loads(text) == data
    assert "\n" in text  # the indented layout stays
    assert not any(c in text for c in "\x1b\x07\u202e\u2028\x9b")
    assert "é" in text
