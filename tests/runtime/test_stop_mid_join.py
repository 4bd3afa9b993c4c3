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
from tests.support.processes import ServiceProcess, start_control, wait_exit
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


SYNCED = (
    "Successfully synced group signal-control with",
    "Successfully synced group signal-control-delivery-marks",
)


def synced_control(broker: EmbeddedBroker, data_dir: Path, name: str) -> ServiceProcess:
    """A control started on `broker` once both its consumers have synced their groups (killed
    if they do not)."""
    control = start_control(broker, data_dir, name=name)
    try:
        for synced in SYNCED:
            control.wait_for_log(synced)
    except BaseException:
        control.kill()
        raise
    return control


def test_a_clean_stop_leaves_the_groups_so_the_next_start_need_not_wait(tmp_path: Path) -> None:
    """The embedded broker counts generations from 0 and aiokafka left a group only past 0:
    a control stopped cleanly after its first join stayed a member until the broker expired it,
    and the next start's join waited for that (its Faust group synced after 13.7 s instead of
    5.6 s). Both of control's consumers now leave. A broker of this test alone, so that each
    group's first join is this control's (generation 0) and no other test's member is in it."""
    data_dir = tmp_path / "var"
    with EmbeddedBroker() as broker:
        first = synced_control(broker, data_dir, name="first")
        assert first.stop() == 0, first.tail()
        log = first.log().replace(" \n", "\n")
        assert "left group signal-control\n" in log, first.tail()
        assert "left group signal-control-delivery-marks\n" in log, first.tail()

        second = start_control(broker, data_dir, name="second")
        try:
            second.wait_for_log(SYNCED[0])
        finally:
            assert second.stop() == 0, second.tail()


def test_a_control_whose_broker_has_gone_stops_cleanly_and_soon(tmp_path: Path) -> None:
    """aiokafka's fetcher, closed with the broker gone, raised a CancelledError of its own out
    of the consumer's stop: it ended Faust's consumer thread, control's stop then waited for
    that thread until its stop deadline (exit 75 after 20 s) and the ledger was never closed.
    `stop_within` now closes what that stop left open. A broker of this test alone, which it
    stops under a running control."""
    data_dir = tmp_path / "var"
    with EmbeddedBroker() as broker:
        control = synced_control(broker, data_dir, name="gone")
        try:
            broker.stop()
            # Its fetches fail and wait out their retry backoff, as at any stop without a broker.
            control.wait_for_log("Unable connect to node")
        finally:
            code = control.stop(timeout=60)
    log = control.log()
    assert code == 0, control.tail()
    assert "store closed (checkpointed)" in log, control.tail()
    assert "still stopping after" not in log
