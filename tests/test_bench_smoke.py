"""Every benchmark still runs: `python -m bench --smoke <module>` for each module that
`python -m bench` would run, found the same way, so a new bench module is covered without
touching this file.

Smoke mode (`bench/__init__.py`) takes the same code paths as the full benchmark with tiny sizes
(real broker, sandbox, worker processes and DuckDB files included); a module that no longer
imports, or whose run raises, fails here instead of at the next `just bench`. Each module runs in
a subprocess of its own, so event loops, brokers and child processes cannot leak between them.
Marked `bench`: `pytest -m "not bench"` leaves them out of a fast inner loop.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.__main__ import modules

REPO = Path(__file__).resolve().parents[1]
# Each module takes ~1-20 s in smoke mode on a loaded 2-core machine; this only stops a hang.
TIMEOUT_S = 150

pytestmark = pytest.mark.bench

EXPECTED: dict[str, tuple[str, ...]] = {
    # Every change sent is timed: one it lost would be waited for until its deadline.
    "delivery_latency": (r"\b(\d+) of \1 delivered",),
    # The soak's figures mean something only beside the flows it ran and the Marketo calls it
    # needed against the 5 per second allowed; a p95 that creeps is traced by its stages.
    "soak": (
        r"p95 by stage: route \d+ ms · deliver \d+ ms · record \d+ ms",
        r"account: the demo account, batching variant; 6 active flows",
        r"inactive: complete-form \(form_post, live\), test-form \(form_post, test\)",
        r"Marketo calls: \d+ in [\d.]+ min, [\d.]+/s .* against 5/s allowed",
        r"embedded broker rolled over \d+ times, healed \d+ times",
        # Control's growth apart from its DuckDB buffer pool filling up to its limit.
        r"control's DuckDB in memory after warm-up \d+ → \d+ MiB .*; control's growth beside "
        r"it [+-]\d+ MiB",
    ),
}
"""Lines a module's smoke run must print, beyond running at all."""


@pytest.mark.parametrize("module", list(modules()))
def test_bench_module_smoke_run(module: str) -> None:
    started = time.monotonic()
    # A session of its own, so a hung run is stopped with everything it started.
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "--smoke", module],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # something left the group and holds the pipe
            output = ""
        pytest.fail(f"bench.{module} smoke run still going after {TIMEOUT_S} s:\n{output[-4000:]}")
    elapsed = time.monotonic() - started
    assert process.returncode == 0, (
        f"bench.{module} smoke run failed (exit {process.returncode}, {elapsed:.1f} s):\n"
        f"{output[-6000:]}"
    )
    assert f"== {module}" in output, f"bench.{module} did not run:\n{output[-2000:]}"
    for expected in EXPECTED.get(module, ()):
        assert re.search(expected, output), f"bench.{module}: no {expected!r}:\n{output[-4000:]}"
