"""`csignal`: the single command-line entry point.

Each command lives in its own module under `stream.commands`; this file only wires them into one
argparse tree so `csignal --help` always lists the whole contract of DESIGN 4.1, including
commands whose implementation has not landed yet (those say so and exit non-zero rather than
pretending to work).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from stream.commands import COMMANDS
from stream.private_files import restrict_umask

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="csignal",
        description="Signal: real-time delivery of Certain registration changes to Marketo.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    restrict_umask()  # what Signal writes (data dir, logs, exports) is its owner's only
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
