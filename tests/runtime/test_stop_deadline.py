"""SIGTERM ends control and a pipeline worker within their stop deadline, even when their
graceful stop cannot finish (a frozen broker: the Kafka consumer's leave-group never answers)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker
from stream.stop_deadline import EXIT_STOP_DEADLINE
from tests.support.processes import ServiceProcess, start_control, start_pipeline, wait_exit

pytestmark = pytest.mark.integration

DEADLINE_S = 3.0


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker of this test alone: it is frozen with SIGSTOP, which no other test may see."""
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker
    finally:
        if broker.pid is not None:
            os.kill(broker.pid, signal.SIGCONT)
        broker.stop()


def stop_with_broker_frozen(broker: EmbeddedBroker, process: ServiceProcess) -> tuple[int, float]:
    assert broker.pid is not None and process.process is not None
    os.kill(broker.pid, signal.SIGSTOP)
    started = time.monotonic()
    process.process.send_signal(signal.SIGTERM)
    code = wait_exit(process.process, 120)
    return code, time.monotonic() - started


def test_control_exits_at_its_stop_deadline(own_broker: EmbeddedBroker, tmp_path: Path) -> None:
    control = start_control(
        own_broker, tmp_path / "data", env={"SIGNAL_STOP_DEADLINE_S": str(DEADLINE_S)}
    )
    try:
        code, took = stop_with_broker_frozen(own_broker, control)
    finally:
        control.kill()
    print(f"control stopped in {took:.1f} s with exit {code}")
    # What must hold is that SIGTERM cannot hang: control ends by its deadline (plus the
    # interpreter's exit), either having stopped cleanly (nothing was waiting on the broker at
    # the moment it froze, as happens under load) or at the deadline, saying so.
    assert took < DEADLINE_S + 30, control.tail()
    assert code in (0, EXIT_STOP_DEADLINE), control.tail()
    if code == EXIT_STOP_DEADLINE:
        assert "still stopping after 3 s; exiting now" in control.log()


def test_pipeline_stop_is_bounded_by_the_same_deadline(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A deadline shorter than any graceful stop shows the worker carries one: it ends at the
    deadline with the message, instead of finishing the stop it has begun."""
    worker = start_pipeline(own_broker, tmp_path, env={"SIGNAL_STOP_DEADLINE_S": "0.05"})
    try:
        worker.wait_for_log("Ready")
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
        code = wait_exit(worker.process, 120)
    finally:
        worker.kill()
    assert code == EXIT_STOP_DEADLINE, worker.tail()
    assert "csignal pipeline: still stopping after 0.05 s; exiting now" in worker.log()
