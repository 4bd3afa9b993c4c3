"""Driving `csignal run` as an operator would: a subprocess, its output, its API, its children."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stream.broker import free_port
from tests.support.processes import (
    ServiceProcess,
    clean_env,
    pid_alive,
    processes_for,
    until_running,
)
from tests.support.waiting import until_sync

# How long `csignal run` may take to stop on its own: control, pipeline and broker in turn.
STOP_WITHIN_S = 40.0


@dataclass
class RunProcess(ServiceProcess):
    """`csignal run …` in its own data dir and API port, its output in `log_path`."""

    data_dir: Path = Path()
    api: str = ""
    started: float = 0.0

    @property
    def output(self) -> str:
        return self.log()

    @property
    def api_url(self) -> str:
        return f"http://{self.api}"

    async def wait_for(self, pattern: str, within: float = 90.0) -> re.Match[str]:
        """The first output line matching `pattern`, once it is there."""
        regex = re.compile(pattern)

        async def found() -> re.Match[str] | None:
            matches = (regex.search(line) for line in self.output.splitlines())
            return next((match for match in matches if match), None)

        match = await until_running(found, f"a line matching {pattern!r}", self, within=within)
        assert match is not None  # until_running returns only what it found
        return match

    def pids(self) -> list[int]:
        return [int(match.group(1)) for match in re.finditer(r"\bpid (\d+)", self.output)]

    def stop(self, sig: int = signal.SIGINT, timeout: float = STOP_WITHIN_S) -> int | None:
        """Ctrl-C (by default) and wait; a run that does not stop is killed with everything
        it started, and the test fails."""
        try:
            return super().stop(sig, timeout)
        except AssertionError:
            self.kill()
            raise

    def kill(self) -> None:
        """Last resort for a failed test: the run and every process started for this data dir."""
        for pid in processes_for(self.data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        super().kill()

    def assert_all_gone(self, pids: Sequence[int]) -> None:
        """Every process in `pids`, and every process started for this data dir, has ended."""

        def gone() -> bool:
            return not any(pid_alive(p) for p in pids) and not processes_for(self.data_dir)

        with contextlib.suppress(AssertionError):
            until_sync(gone, "every process of the run gone", within=30)
        assert [p for p in pids if pid_alive(p)] == [], self.output
        assert processes_for(self.data_dir) == [], self.output


def start_run(
    data_dir: Path, args: Sequence[str], env: Mapping[str, str] | None = None
) -> RunProcess:
    """Start `csignal run --data-dir DATA_DIR ARGS` with the operator API on a free port."""
    api = f"127.0.0.1:{free_port()}"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    run = RunProcess(
        args=["run", "--data-dir", str(data_dir), *args],
        log_path=data_dir.parent / "run.log",
        env=clean_env(
            **(env or {}),
            SIGNAL_API=api,
            SIGNAL_DATA_DIR=str(data_dir),
            PYTHONUNBUFFERED="1",
        ),
        data_dir=data_dir,
        api=api,
        started=time.monotonic(),
    )
    run.start()
    return run
