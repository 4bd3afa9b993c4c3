"""`csignal retry`: the retry queue from the command line (the console's Retry Queue, scriptable).

    csignal retry list [--integration ID] [--status S] [--category C] [--flow F] [--search TEXT]
                       [--page N] [--page-size M] [--format table|json|csv]
    csignal retry submit CHANGE_ID/FLOW_ID ...
    csignal retry submit --all-matching [--integration ID] [--status S] [--category C] ...

A submit re-evaluates each item's archived change with the current configuration; items already
resolved or already in flight are skipped and counted, never sent twice.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from apiclient.client import ApiClient
from stream.commands._api import add_api_option, run_with_client, table
from stream.commands.base import add_format_option, write_csv_record, write_csv_rows, write_json

STATUSES = ("pending", "retrying", "abandoned", "resolved")
CATEGORIES = ("data", "technical")
USAGE = 2


@dataclass(frozen=True)
class RetryCommand:
    name: str = "retry"
    help: str = "the retry queue: list and submit"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description="List the retry queue or resubmit items (by key or by filter).",
        )
        parser.add_argument("action", nargs="?", choices=("list", "submit"), default="list")
        parser.add_argument(
            "items", nargs="*", metavar="ITEM", help="CHANGE_ID/FLOW_ID to resubmit"
        )
        parser.add_argument("--integration", metavar="ID", help="connection id")
        parser.add_argument("--status", choices=STATUSES)
        parser.add_argument("--category", choices=CATEGORIES)
        parser.add_argument("--flow", metavar="FLOW_ID")
        parser.add_argument("--search", metavar="TEXT", help="text in id, flow, reason or error")
        parser.add_argument(
            "--all-matching",
            action="store_true",
            help="submit every item matching the filters (resolved and in-flight are skipped)",
        )
        parser.add_argument("--page", type=int, default=1, metavar="N", help="page (from 1)")
        parser.add_argument("--page-size", type=int, default=50, metavar="M", help="rows a page")
        add_format_option(parser)
        add_api_option(parser)
        parser.set_defaults(handler=run)
        return parser


COMMAND = RetryCommand()


def filters_of(args: argparse.Namespace) -> dict[str, str]:
    values = {
        "integration": args.integration,
        "status": args.status,
        "category": args.category,
        "flow_id": args.flow,
    }
    return {k: v for k, v in values.items() if v}


def parse_item(text: str) -> tuple[str, str] | None:
    change_id, sep, flow_id = text.rpartition("/")
    if not sep or not change_id or not flow_id:
        return None
    return change_id, flow_id


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        if args.items or args.all_matching:
            print("csignal retry list: takes filters only (did you mean submit?)", file=sys.stderr)
            return USAGE
        if args.page < 1 or not 1 <= args.page_size <= 500:
            print("csignal retry list: --page from 1, --page-size 1..500", file=sys.stderr)
            return USAGE
        return run_with_client("retry", args, lambda client: _list(client, args))
    return _submit(args)


async def _list(client: ApiClient, args: argparse.Namespace) -> int:
    query = {**filters_of(args), "q": args.search}
    offset = (args.page - 1) * args.page_size
    body = await client.retry_list(query, offset, args.page_size)
    items = body.get("items", [])
    if args.format == "json":
        write_json(body, sys.stdout)
        return 0
    columns = ["change_id", "flow_id", "integration", "status", "category", "attempts"]
    columns += ["next_attempt_at", "reason"]
    if args.format == "csv":
        # Every field the items carry, the table's first: a script should not lose the error.
        columns = list(dict.fromkeys([*columns, *(k for i in items for k in i)]))
        write_csv_rows(columns, ([i.get(c) for c in columns] for i in items), sys.stdout)
    else:
        table(columns, [[i.get(c) for c in columns] for i in items], sys.stdout)
    total = int(body.get("total", len(items)))
    pages = max(1, -(-total // args.page_size))
    print(f"{total} item(s); page {args.page} of {pages}", file=sys.stderr)
    return 0


def _submit(args: argparse.Namespace) -> int:
    if args.all_matching == bool(args.items):
        print(
            "csignal retry submit: give CHANGE_ID/FLOW_ID items, or --all-matching with filters",
            file=sys.stderr,
        )
        return USAGE
    body: dict[str, Any]
    if args.all_matching:
        body = {"filter": {**filters_of(args), **({"q": args.search} if args.search else {})}}
    else:
        keys = []
        for text in args.items:
            key = parse_item(text)
            if key is None:
                print(f"csignal retry submit: {text!r} is not CHANGE_ID/FLOW_ID", file=sys.stderr)
                return USAGE
            keys.append({"change_id": key[0], "flow_id": key[1]})
        body = {"items": keys}

    async def work(client: ApiClient) -> int:
        reply = await client.retry_submit_body(body)
        if args.format == "json":
            write_json(reply, sys.stdout)
        elif args.format == "csv":
            write_csv_record(reply, sys.stdout)
        else:
            print(
                f"submitted {reply.get('submitted', 0)}; "
                f"skipped: {reply.get('skipped_already_resolved', 0)} already resolved, "
                f"{reply.get('skipped_in_flight', 0)} in flight, "
                f"{reply.get('not_found', 0)} not found, "
                f"{reply.get('missing_change', 0)} without archived change"
            )
        return 0

    return run_with_client("retry", args, work)
