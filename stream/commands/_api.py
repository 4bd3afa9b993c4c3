"""What the API-backed commands share: the `--api` option, turning `ApiError` into text, tables."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TextIO, TypeVar

from apiclient.client import ApiClient
from apiclient.errors import ApiError

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


class Writer(Protocol):
    def write(self, text: str, /) -> int: ...


def table(columns: list[str], rows: list[list[Any]], out: Writer, max_cell: int = 60) -> None:
    """An aligned plain-text table."""
    cells = [[_cell(v, max_cell) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _cell(value: Any, max_cell: int) -> str:
    text = "" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= max_cell else text[: max_cell - 1] + "…"
