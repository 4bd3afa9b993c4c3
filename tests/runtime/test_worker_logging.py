"""What `DeadlineWorker` does for a worker's CPU: no terminal spinner, startup objects frozen.

Faust's worker, at warning and above, adds a terminal spinner handler and lowers the root logger
to DEBUG for it; every debug call then built a log record (aiokafka logs one per record sent,
about half the producer's CPU in a route batch). `DeadlineWorker` keeps no spinner. Once
started, it freezes what exists (`gc.freeze`) so full collections stop walking it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from pathlib import Path

import faust
import pytest

from stream.stop_deadline import DeadlineWorker


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The worker configures the root logger; put it back as pytest had it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize("level", ["warning", "error"])
def test_quiet_worker_leaves_debug_logging_off(level: str, tmp_path: Path) -> None:
    app = faust.App("signal-logging-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    loop = asyncio.new_event_loop()
    try:
        worker = DeadlineWorker(
            app, loglevel=level, loop=loop, stop_deadline_s=5.0, name="test", quiet=False
        )
        worker._setup_logging()
        assert worker.spinner is None
        assert logging.getLogger().getEffectiveLevel() == logging.getLevelName(level.upper())
        assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
    finally:
        loop.close()


def test_a_started_worker_freezes_its_startup_objects(tmp_path: Path) -> None:
    app = faust.App("signal-freeze-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    loop = asyncio.new_event_loop()
    worker = DeadlineWorker(app, loop=loop, stop_deadline_s=5.0, name="test")
    try:
        gc.unfreeze()
        loop.run_until_complete(worker.on_startup_finished())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        loop.close()
