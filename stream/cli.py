"""`csignal`: the single command-line entry point.

Each command lives in its own module under `stream.commands`; this file only wires them into one
argparse tree so `csignal --help` always lists the whole contract of DESIGN 4.1, including
commands whose implementation has not landed yet (those say so and exit non-zero rather than
pretending to work).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from config.settings import Settings, settings_problems
from stream.commands import COMMANDS
from stream.commands.base import FORMATS
from stream.private_files import restrict_umask

Handler = Callable[[argparse.Namespace], int]

READER_GONE = 141
"""Exit code when the reader of our output went away (`csignal sql … | head -1`): 128 + SIGPIPE,
what a shell reports for any program a closed pipe ends, so `set -o pipefail` scripts see the
same status from csignal as from `yes | head -1`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="csignal",
        description="Signal: real-time delivery of Certain registration changes to Marketo.",
        epilog=f"Commands that print data take --format {'|'.join(FORMATS)} "
        "(table is the default; text is the same as table).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; when the reader of its output goes away (`csignal sql … | head -1`),
    end quietly with `READER_GONE` instead of a BrokenPipeError traceback."""
    try:
        try:
            return _dispatch(argv)
        finally:
            # Output still buffered for a reader gone by now would otherwise fail at interpreter
            # exit ("Exception ignored … BrokenPipeError", exit 120); this covers --help too.
            sys.stdout.flush()
    except BrokenPipeError:
        _discard_output()
        return READER_GONE


def _dispatch(argv: Sequence[str] | None) -> int:
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
    except ValidationError as error:
        if error.title != Settings.__name__:
            raise
        # Any command reads `SIGNAL_*` (config.settings): a refused one is named, not a traceback.
        print(f"csignal {args.command}: {settings_problems(error)}", file=sys.stderr)
        return 2


def _discard_output() -> None:
    """Point stdout and stderr at /dev/null: what is still buffered for a closed pipe, and the
    flush at exit, then go nowhere instead of raising again. A stream without a real file
    descriptor (a test's capture) is left alone."""
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
