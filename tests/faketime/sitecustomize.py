"""Python's `time.sleep` for runs on a shifted date (Debian's `faketime`, see the README).

`time.sleep` waits with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME); libfaketime 0.9.10
shifts that absolute deadline by the fake offset even with FAKETIME_DONT_FAKE_MONOTONIC=1, so
every call fails with EINVAL — in pytest-xdist's workers, in Faust, in Signal's own processes.
`just test` puts this folder on PYTHONPATH when it runs under faketime, so every Python process
of the run (children inherit the variable) sleeps with select(), which takes a relative timeout.
Nothing changes outside faketime.
"""

from __future__ import annotations

import operator
import os
import select
import time
from typing import SupportsIndex

if os.environ.get("FAKETIME") and "faketime" in os.environ.get("LD_PRELOAD", ""):

    def _sleep(seconds: float | SupportsIndex) -> None:
        delay = seconds if isinstance(seconds, float) else float(operator.index(seconds))
        if delay < 0:
            raise ValueError("sleep length must be non-negative")
        select.select([], [], [], delay)

    time.sleep = _sleep
