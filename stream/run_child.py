"""One child process of `csignal run`: `python -m stream control|pipeline` with its log file.

Apart from the runner because a child's life is its own (start in a session of its own that dies
with the runner, the end of its log for error messages, SIGTERM then SIGKILL on stop) while the
runner decides when to start, restart or stop the children.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from stream.broker import close_quietly, die_with_parent, signal_group

__all__ = ["STOP_TIMEOUT_S", "Child"]

STOP_TIMEOUT_S = 10.0
"""Grace between SIGTERM and SIGKILL when a child is stopped."""


class Child:
    """`python -m stream <command>` with its log file, restarted on unexpected exit."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.stopping = False
        self.exits: deque[float] = deque()
        self.restarts = 0
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, extra_env: Mapping[str, str] | None = None) -> None:
        """Start the process with the shared environment, plus `extra_env` for this start
        only (a restart without it does not repeat it)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230 - tiny, lives with the child
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stream",
            self.name,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
            env={**self.env, **(extra_env or {})},
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )

    def log_tail(self, lines: int = 15) -> str:
        try:
            data = self.log_path.read_bytes()[-8000:]
        except OSError:
            return ""
        text = data.decode("utf-8", "replace").splitlines()
        return "\n".join("    " + line for line in text[-lines:])

    async def stop(self, grace: float = STOP_TIMEOUT_S) -> None:
        self.stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            signal_group(process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await process.wait()
            except TimeoutError:
                signal_group(process.pid, signal.SIGKILL)
                await process.wait()
        close_quietly(self._log)
        self._log = None

    def kill_now(self) -> None:
        if self.process is not None and self.process.returncode is None:
            signal_group(self.process.pid, signal.SIGKILL)
