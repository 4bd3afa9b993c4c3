"""A stop that cannot hang: SIGTERM/SIGINT end the process within a deadline.

Faust's graceful stop waits on its Kafka consumer, and a consumer stopped while its group is
(re)joining can wait for the join indefinitely: a supervisor, a test or an operator's `kill`
then sees a process that never ends. Once the deadline passes the process exits at once, as a
power cut would; nothing is lost, because the DuckDB ledger commits every accepted change and
delivery before it is acknowledged and recovery re-drives what was in flight.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from typing import Any

import faust

#: Exit status of a stop that had to be cut short (EX_TEMPFAIL: the work resumes on restart).
EXIT_STOP_DEADLINE = 75

#: The last wait of a stop before the event loop closes (`DeadlineWorker._sentinel_task`).
SENTINEL_S = 0.05


def arm(deadline_s: float, name: str) -> threading.Timer:
    """Exit the process `deadline_s` seconds from now unless it has ended by then."""

    def expire() -> None:
        sys.stderr.write(
            f"{name}: still stopping after {deadline_s:g} s; exiting now "
            "(committed changes and deliveries are in the ledger; recovery resumes the rest)\n"
        )
        sys.stderr.flush()
        os._exit(EXIT_STOP_DEADLINE)

    timer = threading.Timer(deadline_s, expire)
    timer.daemon = True
    timer.start()
    return timer


class DeadlineWorker(faust.Worker):
    """A Faust worker whose stop on a signal is bounded by `stop_deadline_s`."""

    def __init__(self, *services: Any, stop_deadline_s: float, name: str, **options: Any) -> None:
        super().__init__(*services, **options)
        self.stop_deadline_s = stop_deadline_s
        self.process_name = name
        self.stop_timer: threading.Timer | None = None

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """No terminal spinner: at `--log-level warning` or above, Faust adds a spinner handler
        that turns every log message into a spin and lowers the root logger to DEBUG for it, so
        every debug call (aiokafka logs one per record sent) built a LogRecord: about half of
        the producer's CPU in a route batch. The root logger stays at the level asked for."""
        self.spinner = None

    async def on_startup_finished(self) -> None:
        """Once running, the objects of the start (modules, Faust's services, the app) are
        moved out of the collector's sight (`gc.freeze`): every full collection walked them all,
        about a tenth of a pipeline worker's CPU while routing (bench.pipeline_throughput with
        gc callbacks: 0.41 s of 4.4 s in 8 full collections)."""
        await super().on_startup_finished()
        gc.collect()
        gc.freeze()

    async def _sentinel_task(self) -> None:
        """mode's worker sleeps a whole second here before it closes the event loop, on every
        stop, with the services already stopped: a few turns of the loop are enough for the
        callbacks of the transports the stop closed."""
        await asyncio.sleep(SENTINEL_S)

    def _schedule_shutdown(self, signum: signal.Signals) -> None:
        if self.stop_timer is None:
            self.stop_timer = arm(self.stop_deadline_s, self.process_name)
        super()._schedule_shutdown(signum)
