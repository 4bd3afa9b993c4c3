"""`csignal sql "SELECT …"`: read-only SQL over control's database, through the operator API.

DuckDB allows one writing process, and control is it; the query runs there, guarded to reads
only. Output as an aligned table (default), CSV or JSON (a list of objects, one per row).

The table is for a terminal: control characters in the data (an attendee named
`\x1b]0;…\x07` would otherwise retitle or rewrite the operator's terminal), bidi overrides and
line separators are shown escaped (`\x1b`, `\u202e`), in column names too
(`config.terminal_text`, the rule the console shows data by). CSV written to a terminal is
escaped the same way (line feeds and tabs kept); written to a file or a pipe it keeps the data
exact. JSON keeps the data exact everywhere: such characters are written as JSON escapes
(`\u001b`), which parse back to the same strings.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TextIO

from apiclient.client import ApiClient
from apiclient.rows import SqlResult
from config.terminal_text import escape_controls, escape_controls_json
from stream.commands._api import add_api_option, run_with_client
from stream.commands.base import add_format_option

MAX_CELL = 60


@dataclass(frozen=True)
class SqlCommand:
    name: str = "sql"
    help: str = "read-only SQL over the database"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description="Run one read-only statement against control's database "
            "(views: changes, outcomes, outcome_attempts, retry_queue, api_calls, config_audit, "
            "and the metric_* views the dashboards read).",
        )
        parser.add_argument("query", metavar="SQL", help='e.g. "SELECT status, count(*) …"')
        add_format_option(parser)
        parser.add_argument(
            "--max-rows", type=int, default=1000, metavar="N", help="rows to return (default 1000)"
        )
        add_api_option(parser)
        parser.set_defaults(handler=run)
        return parser


COMMAND = SqlCommand()


def run(args: argparse.Namespace) -> int:
    async def work(client: ApiClient) -> int:
        result = await client.sql(args.query, max_rows=args.max_rows)
        render(result, args.format, sys.stdout)
        if result.truncated_by == "bytes":
            print(
                f"(truncated at {len(result.rows)} rows by the answer size cap; "
                "select fewer or narrower columns, or page with LIMIT and OFFSET)",
                file=sys.stderr,
            )
        elif result.truncated:
            print(
                f"(truncated at {len(result.rows)} rows; use --max-rows to see more)",
                file=sys.stderr,
            )
        return 0

    return run_with_client("sql", args, work)


def render(result: SqlResult, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        rows = [dict(zip(result.columns, row, strict=False)) for row in result.rows]
        out.write(escape_controls_json(json.dumps(rows, ensure_ascii=False, indent=2, default=str)))
        out.write("\n")
    elif fmt == "csv":
        shown = _for_terminal if _is_terminal(out) else str
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([shown(c) for c in result.columns])
        for row in result.rows:
            writer.writerow(["" if v is None else shown(_plain(v)) for v in row])
    else:
        out.write(table(result.columns, result.rows))


def _plain(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _is_terminal(out: TextIO) -> bool:
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def _for_terminal(text: str) -> str:
    return escape_controls(text, keep="\n\t")


def _cell(value: Any) -> str:
    text = "NULL" if value is None else _plain(value)
    text = escape_controls(text.replace("\n", "⏎"))
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def table(columns: list[str], rows: list[list[Any]]) -> str:
    columns = [_cell(c) for c in columns]
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        for i, text in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], len(text))
    numeric = [
        all(isinstance(r[i], int | float) or r[i] is None for r in rows) if rows else False
        for i in range(len(columns))
    ]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]) for i, v in enumerate(values)
        ]
        return " | ".join(parts).rstrip() + "\n"

    out = line(columns)
    out += "-+-".join("-" * w for w in widths) + "\n"
    for row in cells:
        out += line(row)
    out += f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n"
    return out
