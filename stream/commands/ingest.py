"""`csignal ingest FILE.jsonl`: post change events from a file to control's ingest API.

The file is streamed in chunks, so a file of any size is sent in bounded memory. Good items are
accepted even when others in the same chunk are bad; every bad item is listed with its line
number, the field at fault and the reason. Exit 0 when every item was accepted, 1 when any was
rejected or the API could not be reached.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from apiclient.client import ApiClient
from apiclient.errors import ApiError
from apiclient.ingest import DEFAULT_CHUNK_LINES
from apiclient.rows import IngestResult
from stream.commands._api import add_api_option, run_with_client

MAX_LISTED = 200


@dataclass(frozen=True)
class IngestCommand:
    name: str = "ingest"
    help: str = "post change events from a JSONL file"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description="Post change events (one JSON object per line) to control.",
        )
        parser.add_argument("file", type=Path, metavar="FILE.jsonl")
        parser.add_argument(
            "--chunk",
            type=int,
            default=DEFAULT_CHUNK_LINES,
            metavar="N",
            help=f"lines per request (default {DEFAULT_CHUNK_LINES})",
        )
        parser.add_argument("--quiet", "-q", action="store_true", help="no progress line")
        add_api_option(parser)
        parser.set_defaults(handler=run)
        return parser


COMMAND = IngestCommand()


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        why = "a directory, not a file" if path.is_dir() else "no such file"
        print(f"csignal ingest: {path}: {why}", file=sys.stderr)
        return 1
    if args.chunk < 1:
        print("csignal ingest: --chunk must be at least 1", file=sys.stderr)
        return 1
    show_progress = not args.quiet and sys.stderr.isatty()
    started = time.monotonic()

    done = {"lines": 0}

    def progress(lines: int, result: IngestResult) -> None:
        done["lines"] = lines
        if show_progress:
            print(
                f"\r{lines} lines sent · {result.accepted} accepted · "
                f"{len(result.rejected)} rejected",
                end="",
                file=sys.stderr,
                flush=True,
            )

    async def work(client: ApiClient) -> int:
        try:
            result = await client.ingest_file(path, chunk_lines=args.chunk, on_progress=progress)
        except ApiError:
            if done["lines"]:
                print(
                    f"csignal ingest: stopped after line {done['lines']} of {path} (everything "
                    "up to there was answered); sending the file again is safe, changeId "
                    "makes repeats harmless",
                    file=sys.stderr,
                )
            raise
        if show_progress:
            print(file=sys.stderr)
        report(result, path, time.monotonic() - started, sys.stdout)
        return 1 if result.rejected else 0

    return run_with_client("ingest", args, work)


def report(result: IngestResult, path: Path, seconds: float, out: TextIO) -> None:
    rejected = sorted(result.rejected, key=lambda r: (r.line is None, r.line or 0))
    for rejection in rejected[:MAX_LISTED]:
        where = f"line {rejection.line}" if rejection.line is not None else "input"
        out.write(f"{path}:{where}: {rejection.field}: {rejection.reason}\n")
        for problem_path, reason in rejection.problems[1:]:
            out.write(f"    also {problem_path or '(item)'}: {reason}\n")
    if len(rejected) > MAX_LISTED:
        out.write(f"… and {len(rejected) - MAX_LISTED} more rejected items\n")
    summary = f"{result.accepted} accepted, {len(result.rejected)} rejected"
    if result.duplicates:
        summary += f" ({result.duplicates} already received)"
    out.write(f"{summary} from {path} in {seconds:.1f}s\n")
