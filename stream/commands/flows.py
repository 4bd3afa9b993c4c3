"""`csignal flows`: list flows with their sent and failed counts, switch one on or off, move it
between live and test.

csignal flows [list] [--period today|24h|7d…] [--format table|json|csv]
csignal flows active FLOW on|off
csignal flows mode FLOW live|test [--yes]

Going LIVE sends real registrations to Marketo, so it is confirmed as in the console: `--yes`,
or at a terminal by typing the flow id or its name (any case, `->` for `→`). Without a terminal
to ask in and without `--yes` it is refused with exit code 2 and nothing changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apiclient.client import ApiClient
from apiclient.rows import FlowRow
from config.flow_confirm import confirms_flow, expected_text, refusal
from stream.commands._api import add_api_option, run_with_client, table
from stream.commands.base import add_format_option, write_csv_rows

USAGE = 2
DEFAULT_PERIOD = "today"


@dataclass(frozen=True)
class FlowsCommand:
    name: str = "flows"
    help: str = "list flows, toggle active and live/test"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description=(
                "List flows with their sent and failed counts, or change one's switches. "
                "Going LIVE (mode FLOW live) sends real registrations to Marketo: it needs "
                "--yes, or at a terminal the flow id or name typed to confirm; without either "
                "it is refused (exit 2)."
            ),
        )
        parser.add_argument("action", nargs="?", choices=("list", "active", "mode"), default="list")
        parser.add_argument("flow", nargs="?", metavar="FLOW")
        parser.add_argument("value", nargs="?", metavar="on|off|live|test")
        parser.add_argument(
            "-y",
            "--yes",
            action="store_true",
            help="confirm going LIVE without being asked (scripts; no terminal needed)",
        )
        parser.add_argument(
            "--period",
            default=DEFAULT_PERIOD,
            metavar="PERIOD",
            help="the period of the sent/failed counts: today (UTC, the default), 24h, 7d …",
        )
        add_format_option(parser)
        add_api_option(parser)
        parser.set_defaults(handler=run)
        return parser


COMMAND = FlowsCommand()


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        if args.flow or args.value:
            print("csignal flows list: takes no arguments", file=sys.stderr)
            return USAGE
        return run_with_client(
            "flows", args, lambda client: _list(client, args.format, args.period)
        )
    allowed = ("on", "off") if args.action == "active" else ("live", "test")
    if not args.flow or args.value not in allowed:
        print(f"csignal flows {args.action}: expected FLOW {'|'.join(allowed)}", file=sys.stderr)
        return USAGE
    going_live = args.action == "mode" and args.value == "live" and not args.yes
    if going_live and not sys.stdin.isatty():
        print(
            f"csignal flows mode: going LIVE sends real registrations of {args.flow} to "
            "Marketo; add --yes to confirm (there is no terminal to ask in). Nothing changed.",
            file=sys.stderr,
        )
        return USAGE

    async def change(client: ApiClient) -> int:
        if going_live and not await _confirm_live(client, args.flow, _ask):
            return USAGE
        if args.action == "active":
            flow = await client.set_active(args.flow, args.value == "on")
        else:
            flow = await client.set_mode(args.flow, args.value)
        state = "active" if flow.active else "inactive"
        complete = "" if flow.complete else " (incomplete: it will not run)"
        print(f"{args.flow}: {state}, {flow.mode}{complete}")
        return 0

    return run_with_client("flows", args, change)


def _ask(prompt: str) -> str:
    """One line typed at the terminal (the prompt on stderr, so stdout stays the command's)."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline()


async def _confirm_live(client: ApiClient, flow_id: str, ask: Callable[[str], str]) -> bool:
    """Ask at the terminal before a flow goes LIVE; an unknown flow is left to control to
    refuse, a flow already LIVE needs no confirmation."""
    flow = next((f for f in await client.flows() if f.id == flow_id), None)
    if flow is None or flow.mode == "live":
        return True
    typed = ask(
        f"Switch '{flow.name}' ({flow.id}) to LIVE? Real registrations of live events will be "
        f"sent to Marketo.\nType {expected_text(flow.id, flow.name)} to confirm: "
    )
    if confirms_flow(typed, flow.id, flow.name):
        return True
    print(
        f"csignal flows mode: not confirmed: {refusal(typed, flow.id, flow.name)}. "
        "Nothing changed.",
        file=sys.stderr,
    )
    return False


async def _figures(client: ApiClient, period: str) -> dict[str, dict[str, int]]:
    """Per-flow counts over `period` from control; a bad period is the caller's error."""
    flows = await client.flow_figures(period)
    return {
        flow_id: {k: int(v.get(k) or 0) for k in ("delivered", "failed", "not_activated")}
        for flow_id, v in flows.items()
    }


async def _list(client: ApiClient, fmt: str, period: str = DEFAULT_PERIOD) -> int:
    flows = await client.flows()
    figures = await _figures(client, period)
    if fmt == "json":
        items = [{**f.raw, "figures": {"period": period, **_counts(f, figures)}} for f in flows]
        json.dump(items, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    rows = [
        [
            f.id,
            f.name,
            f.mode,
            "on" if f.active else "off",
            _counts(f, figures)["delivered"],
            _counts(f, figures)["failed"],
            "yes" if f.complete else "no: " + "; ".join(f.reasons),
        ]
        for f in flows
    ]
    columns = ["id", "name", "mode", "active", "sent", "failed", "complete"]
    if fmt == "csv":
        # The table's rows, uncut, with why a flow is incomplete in a column of its own.
        lines = (
            [*row[:-1], "yes" if f.complete else "no", "; ".join(f.reasons)]
            for row, f in zip(rows, flows, strict=True)
        )
        write_csv_rows([*columns, "reasons"], lines, sys.stdout)
    else:
        table(columns, rows, sys.stdout, max_cell=80)
    print(f"sent/failed: {_period_words(period)}", file=sys.stderr)
    return 0


def _counts(flow: FlowRow, figures: dict[str, dict[str, int]]) -> dict[str, int]:
    return figures.get(flow.id) or {"delivered": 0, "failed": 0, "not_activated": 0}


def _period_words(period: str) -> str:
    return "today (UTC)" if period.strip().lower() == "today" else f"the last {period.strip()}"
