"""Ctrl-C on `python -m bench.soak` stops its `csignal run` and everything that run started.

The soak runs for half an hour; an operator who cuts it short must not be left with a broker,
control and a pipeline worker delivering in the background. The bench runs in smoke mode and is
interrupted as a terminal's Ctrl-C does (SIGINT to its process group) once the run is up: it must
stop the run cleanly (as `csignal run` stops on Ctrl-C), exit 130, and leave no process of the
run behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.processes import REPO, clean_env, pid_alive, processes_for, wait_exit
from tests.support.waiting import until_sync

pytestmark = pytest.mark.bench

UP = re.compile(r"csignal run is up \(pid (\d+)\): (.*)")


def test_ctrl_c_stops_the_soak_run_and_its_services(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.soak", "--minutes", "10"],
        cwd=REPO,
        # The run's data dir is a temporary directory: under tmp_path, so this test can find
        # the processes that were started for it.
        env=clean_env(SIGNAL_BENCH_SMOKE="1", PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    pids: list[int] = []
    data_dirs: list[Path] = []
    try:

        def up() -> re.Match[str] | None:
            if process.poll() is not None:
                raise AssertionError(f"the bench exited ({process.returncode}):\n{''.join(lines)}")
            return UP.search("".join(lines))

        found = until_sync(up, "the soak's csignal run up", within=150)
        assert found is not None
        pids = [int(found.group(1))] + [int(p) for p in re.findall(r"pid (\d+)", found.group(2))]
        assert len(pids) == 4, found.group(0)  # the run, control, pipeline, broker
        data_dirs = list(tmp_path.glob("signal-soak-*/data"))
        assert len(data_dirs) == 1, data_dirs
        assert processes_for(data_dirs[0]), "no process found for the run's data dir"

        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        code = wait_exit(process, 120)
        reader.join(10)
        output = "".join(lines)
        assert code == 130, output
        assert "csignal run ended (exit 0, stopped cleanly)" in output, output
        left = until_sync(
            lambda: not [p for p in pids if pid_alive(p)] and not processes_for(data_dirs[0]),
            "no process of the run left",
            within=20,
        )
        assert left
    finally:
        # Only what is surely this test's: the bench while unreaped, and live processes whose
        # environment names the run's data dir (a recorded pid may belong to another by now).
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in [p for d in data_dirs for p in processes_for(d)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(30)
