"""Run every benchmark module in this package and write their figures to bench/report.txt.

    python -m bench [--smoke] [module ...]
    python -m bench module [module options, --help among them]

A benchmark module is any `bench/<name>.py` with a `main()` (plain or async) that prints its
figures. Each runs with its own defaults; options after one module's name are that module's
(`python -m bench certain_poll --moves 0`), and such a run writes no report, since its figures
are not the defaults' (nor is its help). `--smoke`
runs them with tiny sizes (see `bench/__init__.py`) and writes no report. A module that fails,
even at import, is reported and the others still run; the exit status says whether any failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import io
import os
import pkgutil
import sys
import time
import traceback
from collections.abc import Awaitable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, cast

from bench import SMOKE_ENV

HERE = Path(__file__).resolve().parent
REPORT = HERE / "report.txt"


class _Tee(io.TextIOBase):
    def __init__(self, *streams: TextIO) -> None:
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
            stream.flush()
        return len(text)


def modules() -> Iterator[str]:
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield info.name


def run(name: str, out: TextIO, options: Sequence[str] = ()) -> bool:
    """Run one module's `main()` with `options` as its command line; False when it failed (a
    module's `--help` exits 0 and counts as run)."""
    print(f"== {name}", file=out)
    started = time.monotonic()
    saved_argv = sys.argv
    sys.argv = [f"bench.{name}", *options]
    try:
        with contextlib.redirect_stdout(out):
            module = importlib.import_module(f"bench.{name}")
            entry = getattr(module, "main", None)
            if not callable(entry):
                print("   (no main(): nothing to run)", file=out)
                return True
            result = entry()
            if inspect.isawaitable(result):
                asyncio.run(_await(result))
        ok = True
    except SystemExit as stop:
        ok = stop.code in (0, None)
        if not ok:
            traceback.print_exc(file=out)
    except Exception:
        traceback.print_exc(file=out)
        ok = False
    finally:
        sys.argv = saved_argv
    print(f"   ({time.monotonic() - started:.1f} s)\n", file=out)
    return ok


async def _await(awaitable: Awaitable[object]) -> None:
    await awaitable


def main(argv: Sequence[str] | None = None) -> int:
    # No help option of its own: `-h` after a module's name is that module's help.
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
        allow_abbrev=False,
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check, not measure")
    parser.add_argument("module", nargs="*", help="bench modules to run (default: all)")
    args, options = parser.parse_known_args(argv)
    wanted = args.module or list(modules())
    if options and not args.module and set(options) & {"-h", "--help"}:
        parser.print_help()
        return 0
    if options and len(args.module) != 1:
        parser.error(f"options {' '.join(options)} are a module's: name exactly one module")
    unknown = sorted(set(wanted) - set(modules()))
    if unknown:
        print(f"no bench module named {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.smoke:
        # Child processes the modules start (servers, workers) see the same mode.
        os.environ[SMOKE_ENV] = "1"
    failed = []
    with contextlib.ExitStack() as stack:
        streams: list[TextIO] = [sys.stdout]
        if not args.smoke and not options:
            streams.append(stack.enter_context(REPORT.open("w", encoding="utf-8")))
        out = cast(TextIO, _Tee(*streams))
        kind = "smoke run (figures meaningless)" if args.smoke else "benchmarks"
        print(f"Signal {kind}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n", file=out)
        for name in wanted:
            if not run(name, out, options):
                failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
