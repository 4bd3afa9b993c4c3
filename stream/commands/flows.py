"""`csignal flows`: list flows, switch one on or off, move it between live and test.

csignal flows [list] [--format table|json]
csignal flows active FLOW on|off
csignal flows mode FLOW live|test
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from stream.apiclient import ApiClient
from stream.commands._api import add_api_option, run_with_client, table

USAGE = 2


@dataclass(frozen=True)
class FlowsCommand:
    name: str = "flows"
    help: str = "list flows, toggle active and live/test"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name, help=self.help, description="List flows or change one's switches."
        )
        parser.add_argument("action", nargs="?", choices=("list", "active", "mode"), default="list")
        parser.add_argument("flow", nargs="?", metavar="FLOW")
        parser.add_argument("value", nargs="?", metavar="on|off|live|test")
        parser.add_argument("--format", choices=("table", "json"), default="table")
        add_api_option(parser)
        parser.set_defaults(handler=run)
        return parser


COMMAND = FlowsCommand()


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        if args.flow or args.value:
            print("csignal flows list: takes no arguments", file=sys.stderr)
            return USAGE
        return run_with_client("flows", args, lambda client: _list(client, args.format))
    allowed = ("on", "off") if args.action == "active" else ("live", "test")
    if not args.flow or args.value not in allowed:
        print(f"csignal flows {args.action}: expected FLOW {'|'.join(allowed)}", file=sys.stderr)
        return USAGE

    async def change(client: ApiClient) -> int:
        if args.action == "active":
            reply = await client.set_flow_active(args.flow, args.value == "on")
        else:
            reply = await client.set_flow_mode(args.flow, args.value)
        state = "active" if reply.get("active") else "inactive"
        complete = "" if reply.get("complete", True) else " (incomplete: it will not run)"
        print(f"{args.flow}: {state}, {reply.get('mode')}{complete}")
        return 0

    return run_with_client("flows", args, change)


async def _list(client: ApiClient, fmt: str) -> int:
    flows = await client.flows()
    if fmt == "json":
        json.dump([f.raw for f in flows], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    rows = [
        [
            f.id,
            f.name,
            f.mode,
            "on" if f.active else "off",
            "yes" if f.complete else "no: " + "; ".join(f.reasons),
        ]
        for f in flows
    ]
    table(["id", "name", "mode", "active", "complete"], rows, sys.stdout, max_cell=80)
    return 0
