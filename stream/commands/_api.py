"""What the API-backed commands share: the `--api` option and turning `ApiError` into text."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

from stream.apiclient import ApiClient, ApiError

T = TypeVar("T")

FAILED = 1
UNREACHABLE = 2


def add_api_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        metavar="URL",
        default=None,
        help="control's API (default: $SIGNAL_API, http://127.0.0.1:6066)",
    )


def run_with_client(
    command: str,
    args: argparse.Namespace,
    work: Callable[[ApiClient], Awaitable[int]],
    err: TextIO | None = None,
) -> int:
    """Run `work` with a client; an `ApiError` becomes one line on stderr and exit code 1."""
    stream = err or sys.stderr

    async def main() -> int:
        async with ApiClient(getattr(args, "api", None)) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except ApiError as error:
        print(f"csignal {command}: {error}", file=stream)
        return FAILED
