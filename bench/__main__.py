"""Run every benchmark module in this package and write their figures to bench/report.txt.

    python -m bench [module ...]

A benchmark module is any `bench/<name>.py` with a `main()` (plain or async) that prints its
figures. Each runs with its own defaults; run one module directly to pass it options.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import io
import pkgutil
import sys
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, cast

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


def run(name: str, out: TextIO) -> bool:
    module = importlib.import_module(f"bench.{name}")
    entry = getattr(module, "main", None)
    if not callable(entry):
        return True
    print(f"== {name}", file=out)
    started = time.monotonic()
    saved_argv = sys.argv
    sys.argv = [f"bench.{name}"]
    try:
        with contextlib.redirect_stdout(out):
            result = entry()
            if inspect.isawaitable(result):
                asyncio.run(_await(result))
        ok = True
    except Exception:
        traceback.print_exc(file=out)
        ok = False
    finally:
        sys.argv = saved_argv
    print(f"   ({time.monotonic() - started:.1f} s)\n", file=out)
    return ok


async def _await(awaitable: object) -> None:
    await awaitable  # type: ignore[misc]


def main() -> int:
    wanted = sys.argv[1:] or list(modules())
    unknown = sorted(set(wanted) - set(modules()))
    if unknown:
        print(f"no bench module named {', '.join(unknown)}", file=sys.stderr)
        return 2
    failed = []
    with REPORT.open("w", encoding="utf-8") as report:
        out = cast(TextIO, _Tee(sys.stdout, report))
        print(f"Signal benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n", file=out)
        for name in wanted:
            if not run(name, out):
                failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
