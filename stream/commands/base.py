"""What every `csignal` command module provides: the `Command` protocol and the one set of
output formats (`--format table|json|csv`) with the writers behind them."""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Protocol, TextIO


class Command(Protocol):
    """A command registers its sub-parser and sets `handler` (args -> exit code) on it."""

    def register(self, sub: Any) -> argparse.ArgumentParser: ...


# --- output formats ------------------------------------------------------------------------------

FORMATS: tuple[str, ...] = ("table", "json", "csv")
"""The one set of `--format` choices every command that prints data accepts."""

FORMAT_ALIASES: dict[str, str] = {"text": "table"}
"""Older spellings still accepted: `metrics` and `replay` called their table `text`."""

FORMAT_HELP = (
    "output: table (default; 'text' is the same), json, or csv (rows with a header; a single "
    "record as field,value lines with dotted field names)"
)


def output_format(text: str) -> str:
    """`--format`'s value: one of `FORMATS`, an alias mapped to its name (argparse then checks
    the result against the choices and names the accepted ones on a bad value)."""
    value = text.strip().lower()
    return FORMAT_ALIASES.get(value, value)


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """`--format table|json|csv`, the same on every command."""
    parser.add_argument(
        "--format",
        type=output_format,
        choices=FORMATS,
        default="table",
        metavar="{" + ",".join(FORMATS) + "}",
        help=FORMAT_HELP,
    )


def write_json(body: Any, out: TextIO) -> None:
    json.dump(body, out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")


def write_csv_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO) -> None:
    """A header and one line per row; nested values as JSON, None as an empty field."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_value(v) for v in row])


def write_csv_record(body: Any, out: TextIO) -> None:
    """One record (a metrics tab, a replay's progress, a submit's counts) as `field,value`
    lines: nested objects and lists flattened to dotted names (`outcomes.delivered`,
    `registration_activity.0.changes`), so a spreadsheet or `grep` finds each figure by name."""
    write_csv_rows(("field", "value"), flatten(body), out)


def flatten(body: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted name, scalar) pairs of a JSON value; an empty object or list keeps its name."""
    if isinstance(body, dict) and body:
        pairs: list[tuple[str, Any]] = []
        for key, value in body.items():
            pairs += flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return pairs
    if isinstance(body, list) and body:
        pairs = []
        for index, value in enumerate(body):
            pairs += flatten(value, f"{prefix}.{index}" if prefix else str(index))
        return pairs
    if isinstance(body, dict | list):
        return [(prefix, json.dumps(body))]
    return [(prefix, body)]


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
