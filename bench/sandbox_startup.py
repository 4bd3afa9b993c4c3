"""Time from `csignal sandbox` start to its "listening on" log line (the issue's bound: 2 s).

Runs the command several times and prints each figure with the median, next to the time a bare
`python -c pass` takes on the same machine in the same run, since interpreter start-up is most of
it and these machines are shared. Smoke mode (`bench/__init__.py`): one run of each.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time

from bench import arguments, sized


def _bare_python() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.monotonic() - started


def _sandbox_start() -> float:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "sandbox", "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "listening on" in line:
                return time.monotonic() - started
        raise RuntimeError("the sandbox exited without logging where it listens")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def main() -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--runs", type=int, default=sized(5, 1), help="starts of each kind")
    runs = parser.parse_args().runs
    bare = [_bare_python() for _ in range(runs)]
    starts = [_sandbox_start() for _ in range(runs)]
    print(f"sandbox start-up: {', '.join(f'{s:.2f}' for s in starts)} s")
    print(
        f"sandbox start-up median {statistics.median(starts):.2f} s (bound 2 s); "
        f"bare python median {statistics.median(bare):.3f} s; "
        f"ratio {statistics.median(starts) / statistics.median(bare):.1f}x"
    )


if __name__ == "__main__":
    main()
