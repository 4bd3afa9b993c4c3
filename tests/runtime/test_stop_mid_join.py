"""A control stopped while its consumers are still joining their groups after a crash ends
cleanly and soon: it does not wait for the broker to expire the dead member first.

Before, aiokafka's stop waited for the join and the sync behind it: 8-12 s in each of control's
two consumers, which on a loaded host ran past the 20 s stop deadline (exit 75, the ledger left
unchecked) in a test that restarts control after a SIGKILL."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker
from tests.support.processes import start_control, wait_exit
from tests.support.waiting import until_sync

pytestmark = pytest.mark.integration

FAUST_JOINING = re.compile(r"\(Re-\)joining group signal-control\s*$", re.MULTILINE)


def test_a_stop_during_the_join_after_a_crash_leaves_the_join_and_ends_cleanly(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    first = start_control(broker, data_dir, name="first")
    try:
        until_sync(lambda: FAUST_JOINING.search(first.log()), "the first control joining")
    finally:
        first.kill()  # SIGKILL: its membership stays until the broker expires it

    second = start_control(broker, data_dir, name="second")
    try:
        until_sync(
            lambda: FAUST_JOINING.search(second.log()),
            "the second control joining, held for the dead member",
            alive=second.exited,
        )
        assert second.process is not None
        second.process.send_signal(signal.SIGTERM)
        code = wait_exit(second.process, 60)
    finally:
        second.kill()
    log = second.log()
    assert code == 0, second.tail()
    assert "consumer signal-control had not left its group after 2 s" in log, second.tail()
    assert "store closed (checkpointed)" in log, second.tail()
    assert "still stopping after" not in log
