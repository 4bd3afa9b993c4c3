"""`csignal metrics`: the Metrics dashboard's Summary and Troubleshooting tabs as a table, JSON
or CSV.

csignal metrics [summary|troubleshooting] [--mode live|test] [--period 24h]
                [--format table|json|csv]

`table` (or `text`) is for reading; `csv` is one `field,value` line per figure, nested figures
under dotted names (`actions_not_triggered.not_activated.total`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from apiclient.client import ApiClient
from stream.commands._api import add_api_option, run_with_client, table
from stream.commands.base import add_format_option, write_csv_record, write_json


@dataclass(frozen=True)
class MetricsCommand:
    name: str = "metrics"
    help: str = "metrics: summary and troubleshooting"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name, help=self.help, description="Account insights for one mode and period."
        )
        parser.add_argument(
            "tab", nargs="?", choices=("summary", "troubleshooting"), default="summary"
        )
        parser.add_argument("--mode", choices=("live", "test"), default="live")
        parser.add_argument("--period", default="24h", help="e.g. 15m, 1h, 24h, 7d, 30d")
        add_format_option(parser)
        add_api_option(parser)
        parser.set_defaults(handler=run)
        return parser


COMMAND = MetricsCommand()


def run(args: argparse.Namespace) -> int:
    async def work(client: ApiClient) -> int:
        body = await client.metrics(args.tab, args.mode, args.period)
        if args.format == "json":
            write_json(body, sys.stdout)
        elif args.format == "csv":
            write_csv_record(body, sys.stdout)
        else:
            print(f"{args.tab} — {args.mode}, {args.period}")
            render(body, sys.stdout)
        return 0

    return run_with_client("metrics", args, work)


def render(body: Any, out: TextIO, indent: str = "") -> None:
    """Scalars as `name: value`, flat objects on one line, lists of objects as tables."""
    if not isinstance(body, dict):
        out.write(f"{indent}{body}\n")
        return
    for key, value in body.items():
        label = key.replace("_", " ")
        if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
            flat = ", ".join(f"{k.replace('_', ' ')} {_plain(v)}" for k, v in value.items())
            out.write(f"{indent}{label}: {flat or '-'}\n")
        elif isinstance(value, dict):
            out.write(f"{indent}{label}:\n")
            render(value, out, indent + "  ")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.write(f"{indent}{label}:\n")
            columns = list(dict.fromkeys(k for row in value[:50] for k in row))
            rows = [[_plain(row.get(c)) for c in columns] for row in value[:50]]
            table(columns, rows, _Indented(out, indent + "  "))
            if len(value) > 50:
                out.write(f"{indent}  … {len(value) - 50} more\n")
        elif isinstance(value, list):
            out.write(f"{indent}{label}: {', '.join(_plain(v) for v in value) or '-'}\n")
        else:
            out.write(f"{indent}{label}: {_plain(value)}\n")


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


class _Indented:
    def __init__(self, out: TextIO, indent: str) -> None:
        self._out, self._indent = out, indent

    def write(self, text: str) -> int:
        return self._out.write(self._indent + text)
