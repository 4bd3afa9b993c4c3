"""`csignal simulate`: Certain-like traffic into the ingest API, or into a JSONL file.

The same `--seed` gives the same changes (same change ids, same registrations, same bad items);
only `occurredAt` follows `--start` (default: now), so pass `--start` too for a byte-identical
file. Without `--seed` a random one is picked and printed, so a run can be repeated.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from apiclient.client import ApiClient
from apiclient.rows import IngestResult
from simulators.certain.sandbox_driver import DriveResult, drive_paced
from simulators.certain.send import send_paced, write_file, write_jsonl
from simulators.certain.traffic import ACCOUNT_CODE, SimChange, generate
from stream.commands._api import add_api_option, run_with_client


@dataclass(frozen=True)
class SimulateCommand:
    name: str = "simulate"
    help: str = "Certain-like traffic into the ingest API"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description="Generate realistic Certain changes (events, registrations, sessions, "
            "test data and bad data) and post them to control, or write them to a file.",
        )
        parser.add_argument("--rate", type=float, default=10.0, help="changes per second")
        parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
        parser.add_argument("--seed", type=int, default=None, help="repeatable run")
        parser.add_argument(
            "--start", default=None, metavar="ISO", help="occurredAt of the first change"
        )
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--dry-run", action="store_true", help="only summarise the changes")
        target.add_argument(
            "--output", "-o", type=Path, metavar="FILE.jsonl", help="write JSONL ('-' = stdout)"
        )
        target.add_argument(
            "--certain-sandbox",
            metavar="URL",
            help="perform the traffic in a Certain sandbox (csignal certain-sandbox) for a "
            "Certain source to poll, instead of posting change events",
        )
        add_api_option(parser)
        parser.set_defaults(handler=run)
        return parser


COMMAND = SimulateCommand()


def run(args: argparse.Namespace) -> int:
    if args.rate <= 0 or args.duration < 0:
        print("csignal simulate: --rate must be > 0 and --duration >= 0", file=sys.stderr)
        return 2
    try:
        start = _start(args.start)
    except ValueError as error:
        print(f"csignal simulate: --start: {error}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**9)
    items = generate(seed, args.rate, args.duration, start)
    info = sys.stderr
    print(f"seed {seed}: {describe(items)}", file=info)
    if args.dry_run:
        return 0
    if args.output is not None:
        if str(args.output) == "-":
            write_jsonl(items, sys.stdout)
        else:
            try:
                write_file(items, args.output)
            except BrokenPipeError:
                raise  # `--output /dev/stdout | head`: the reader left; the CLI exits 141
            except OSError as error:
                print(f"csignal simulate: cannot write {args.output}: {error}", file=sys.stderr)
                return 1
            print(f"wrote {len(items)} changes to {args.output}", file=info)
        return 0

    if args.certain_sandbox is not None:
        return _drive_sandbox(items, args.certain_sandbox, info)

    started = time.monotonic()

    def on_batch(total: IngestResult) -> None:
        if info.isatty():
            print(
                f"\r{total.sent}/{len(items)} sent · {total.accepted} accepted · "
                f"{len(total.rejected)} rejected",
                end="",
                file=info,
                flush=True,
            )

    async def work(client: ApiClient) -> int:
        await client.healthz()
        total = await send_paced(items, client, on_batch=on_batch)
        if info.isatty():
            print(file=info)
        summary(total, time.monotonic() - started, sys.stdout)
        return 0

    try:
        return run_with_client("simulate", args, work)
    except KeyboardInterrupt:
        return 130


def _drive_sandbox(items: list[SimChange], url: str, info: TextIO) -> int:
    """The traffic as actions in the Certain sandbox: registrations created and moved there, for
    Signal's Certain source to find by polling."""
    if not url.startswith(("http://", "https://")):
        print(
            f"csignal simulate: --certain-sandbox is {url!r}: expected an http(s) URL",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()

    def on_batch(total: DriveResult) -> None:
        if info.isatty():
            print(
                f"\r{total.items}/{len(items)} performed · {len(total.refused)} refused",
                end="",
                file=info,
                flush=True,
            )

    async def work() -> DriveResult:
        return await drive_paced(items, url, account=ACCOUNT_CODE, on_batch=on_batch)

    try:
        total = asyncio.run(work())
    except KeyboardInterrupt:
        return 130
    except (aiohttp.ClientError, OSError) as error:
        print(f"csignal simulate: Certain sandbox at {url}: {error}", file=sys.stderr)
        return 1
    if info.isatty():
        print(file=info)
    sandbox_summary(total, time.monotonic() - started, sys.stdout)
    return 1 if total.refused else 0


def sandbox_summary(total: DriveResult, seconds: float, out: TextIO) -> None:
    out.write(
        f"{total.items} steps in {seconds:.1f} s: {total.applied} performed in "
        f"{total.calls} sandbox calls, {total.duplicates} repeats needing no action, "
        f"{total.malformed} malformed records queued, {len(total.refused)} refused\n"
    )
    for where, status, message in total.refused[:10]:
        out.write(f"  refused {status} {where}: {message}\n")
    if len(total.refused) > 10:
        out.write(f"  … and {len(total.refused) - 10} more refused\n")


def _start(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def describe(items: list[SimChange]) -> str:
    kinds = Counter(k for item in items for k in item.kinds)
    types = Counter(
        item.body.get("type") for item in items if item.valid and isinstance(item.body, dict)
    )
    by_type = ", ".join(f"{n} {t}" for t, n in sorted(types.items(), key=lambda kv: str(kv[0])))
    extras = ", ".join(
        f"{kinds[k]} {k.replace('_', ' ')}"
        for k in (
            "test",
            "duplicate",
            "missing_email",
            "invalid_email",
            "untagged_status",
            "invalid",
        )
        if kinds[k]
    )
    return f"{len(items)} changes ({by_type}); {extras}"


def summary(total: IngestResult, seconds: float, out: TextIO) -> None:
    out.write(
        f"sent {total.sent} changes in {seconds:.1f}s: {total.accepted} accepted, "
        f"{len(total.rejected)} rejected (deliberately bad items are rejected)\n"
    )
