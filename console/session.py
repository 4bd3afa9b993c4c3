"""The console under `csignal run`: how the runner says so, and how the console answers.

`csignal run` starts the console with `--under-run`. There the console is one client among
others: `q` on the flow list (also `:q`, `ctrl+q`, `ctrl+c`) asks whether to *detach* (the console
ends, Signal keeps delivering) or to *stop Signal*. The console's exit code carries the answer:
`STOP_SIGNAL` asks the runner to stop everything; any other end (detach, a crash — Textual exits
with 1 on an unhandled exception —, a kill) leaves the services running.

No Textual import here: the runner reads these constants without loading the console.
"""

from __future__ import annotations

DETACH = 0
"""The operator closed the console; Signal keeps running."""

STOP_SIGNAL = 3
"""The operator confirmed "Stop Signal": the runner stops every service."""

CRASH_LOG_NAME = "console.log"
"""Under `csignal run`, where in the run's log directory a crashed console's traceback goes."""
