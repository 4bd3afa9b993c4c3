"""`csignal replay`: send a flow's archived changes through it again, for a date range or one
event, after the flow changed.

    csignal replay FLOW --from 2026-11-01T00:00:00Z --to 2026-11-28T00:00:00Z [--dry-run]
    csignal replay FLOW --event SUMMIT26 [--only-undelivered] [--dry-run]
    csignal replay --status REPLAY_ID | --cancel REPLAY_ID

A dry run prints what would be sent (counts and a sample of payloads) and sends nothing. A real
replay prints its progress — published, then delivered / failed / not sent / awaiting outcome —
until every published change has its final outcome; Ctrl-C while it publishes cancels the rest
(what was published stays published). `--cancel` exits 0 only when it stopped a replay: an
unknown id, or a replay with nothing left to publish, is an error (exit 1) that says why.
`--format json|csv` prints the final state (or the dry run) as JSON or as `field,value` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from apiclient.client import ApiClient
from stream.commands._api import add_api_option, run_with_client
from stream.commands.base import add_format_option, write_csv_record, write_json

USAGE = 2
POLL_S = 0.5


@dataclass(frozen=True)
class ReplayCommand:
    name: str = "replay"
    help: str = "replay a flow for a date range or an event"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description="Re-evaluate a flow's archived changes with the current configuration.",
        )
        parser.add_argument("flow", nargs="?", metavar="FLOW", help="flow id")
        parser.add_argument("--from", dest="start", metavar="TIME", help="ISO 8601, with zone")
        parser.add_argument("--to", dest="end", metavar="TIME", help="ISO 8601, with zone")
        parser.add_argument("--event", metavar="CODE", help="one event's changes")
        parser.add_argument("--dry-run", action="store_true", help="show what would be sent")
        parser.add_argument(
            "--only-undelivered",
            action="store_true",
            help="only changes this flow has not delivered yet",
        )
        parser.add_argument("--no-wait", action="store_true", help="start and return at once")
        parser.add_argument("--status", metavar="REPLAY_ID", help="show a replay's progress")
        parser.add_argument("--cancel", metavar="REPLAY_ID", help="cancel a running replay")
        add_format_option(parser)
        add_api_option(parser)
        parser.set_defaults(handler=run)
        return parser


COMMAND = ReplayCommand()


def request_body(args: argparse.Namespace) -> dict[str, Any] | str:
    """The POST body, or what is wrong with the options."""
    if not args.flow:
        return "name the FLOW to replay"
    ranged = args.start is not None or args.end is not None
    if ranged == (args.event is not None):
        return "give either --from and --to, or --event"
    if ranged and (args.start is None or args.end is None):
        return "a date range needs both --from and --to"
    body: dict[str, Any] = {"flow_id": args.flow, "dry_run": bool(args.dry_run)}
    if args.only_undelivered:
        body["only_undelivered"] = True
    if ranged:
        body.update({"from": args.start, "to": args.end})
    else:
        body["event_code"] = args.event
    return body


def run(args: argparse.Namespace) -> int:
    if args.status and args.cancel:
        print("csignal replay: give --status or --cancel, not both", file=sys.stderr)
        return USAGE
    if args.status or args.cancel:
        replay_id = args.status or args.cancel

        async def one(client: ApiClient) -> int:
            if args.cancel:
                reply = await client.replay_cancel(replay_id)
                print(f"replay {replay_id} cancelled", file=sys.stderr)
            else:
                reply = await client.replay(replay_id)
            _print_progress(reply, args.format, final=True)
            return 0

        return run_with_client("replay", args, one)
    body = request_body(args)
    if isinstance(body, str):
        print(f"csignal replay: {body}", file=sys.stderr)
        return USAGE
    return run_with_client("replay", args, lambda client: _replay(client, args, body))


async def _replay(client: ApiClient, args: argparse.Namespace, body: dict[str, Any]) -> int:
    reply = await client.replay_start(body)
    if args.dry_run:
        _print_dry_run(reply, args.format)
        return 0
    replay_id = str(reply["id"])
    print(f"replay {replay_id} started", file=sys.stderr)
    if args.no_wait:
        _print_progress(reply, args.format, final=True)
        return 0
    try:
        while not reply.get("finished"):
            _print_progress(reply, "text", final=False)
            await asyncio.sleep(POLL_S)
            reply = await client.replay(replay_id)
    except (KeyboardInterrupt, asyncio.CancelledError):
        reply = await client.replay(replay_id)
        if reply.get("state") != "publishing":
            print(
                f"stopped following replay {replay_id}; it goes on "
                f"(csignal replay --status {replay_id})",
                file=sys.stderr,
            )
            _print_progress(reply, args.format, final=True)
            return 1
        reply = await client.replay_cancel(replay_id)
    _print_progress(reply, args.format, final=True)
    return 0 if reply.get("state") in ("done", "cancelled") else 1


def _print_progress(reply: dict[str, Any], fmt: str, *, final: bool) -> None:
    if fmt in ("json", "csv") and final:
        (write_json if fmt == "json" else write_csv_record)(reply, sys.stdout)
        return
    line = f"{reply.get('id')}: {reply.get('summary') or reply.get('state')}"
    print(line, file=sys.stdout if final else sys.stderr)


def _print_dry_run(reply: dict[str, Any], fmt: str) -> None:
    if fmt in ("json", "csv"):
        (write_json if fmt == "json" else write_csv_record)(reply, sys.stdout)
        return
    counts = reply.get("counts", {})
    print(
        f"dry run: {reply.get('in_scope', 0)} change(s) in scope of {reply.get('scanned', 0)} "
        "scanned; nothing was sent"
    )
    if reply.get("only_undelivered"):
        print(f"  already delivered, left out: {reply.get('skipped_delivered', 0)}")
    for key in ("would_send", "not_activated", "filtered_out", "data_failure", "unreadable"):
        print(f"  {key.replace('_', ' ')}: {counts.get(key, 0)}")
    for warning in reply.get("warnings", []):
        print(f"warning: {warning}")
    for reason in reply.get("reasons", [])[:10]:
        print(f"  {reason['count']:>6}  {reason['reason']}")
    for sample in reply.get("sample", []):
        target = sample.get("campaign_id") or sample.get("form_id") or ""
        payload = json.dumps(sample.get("payload"), ensure_ascii=False)
        print(
            f"- {sample.get('change_id')} ({sample.get('registration_code')}) "
            f"{sample.get('action')} {target}: {payload}"
        )
