"""The CLI lists the whole DESIGN 4.1 contract."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stream.cli import build_parser, main

CONTRACT = [
    "run",
    "control",
    "pipeline",
    "console",
    "sandbox",
    "simulate",
    "ingest",
    "config",
    "sql",
    "flows",
    "retry",
    "replay",
    "metrics",
]


def test_help_lists_every_command() -> None:
    text = build_parser().format_help()
    for name in CONTRACT:
        assert name in text, name


def test_python_dash_m_stream_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "stream", "--help"], capture_output=True, text=True, check=True
    )
    assert "csignal" in out.stdout


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
