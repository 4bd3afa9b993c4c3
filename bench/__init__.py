"""Benchmarks: each module prints its figures; `python -m bench` runs them all.

Smoke mode runs every module along the same code paths (real broker, sandbox, processes and
DuckDB files where the full run has them) with tiny sizes and durations, in seconds: it proves the
benchmark still works, and its figures mean nothing. `python -m bench --smoke [module ...]` turns
it on, and so does `SIGNAL_BENCH_SMOKE=1` for a module run directly (`python -m bench.<module>`);
`tests/test_bench_smoke.py` runs every module this way in `just test`. Modules read the mode only
through `sized` (or `smoke`), so the switch lives here alone.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TypeVar

SMOKE_ENV = "SIGNAL_BENCH_SMOKE"

T = TypeVar("T")


def smoke() -> bool:
    """Whether this run is a smoke run (`SIGNAL_BENCH_SMOKE` set to anything but "" or "0")."""
    return os.environ.get(SMOKE_ENV, "") not in ("", "0")


def sized(full: T, smoke_value: T) -> T:
    """`full` for a real run, `smoke_value` for a smoke run: every size and duration goes here."""
    return smoke_value if smoke() else full


def arguments(module_file: str, doc: str | None) -> argparse.ArgumentParser:
    """A bench module's parser: named as it is run (`python -m bench.<module>`), its whole
    docstring as the description, laid out as written (usage lines, lists)."""
    return argparse.ArgumentParser(
        prog=f"python -m bench.{Path(module_file).stem}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
