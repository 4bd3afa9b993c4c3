"""Driving `csignal run` as an operator would: a subprocess, its output, its API, its children."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from stream.broker import free_port

ROOT = Path(__file__).resolve().parents[2]


class RunProcess:
    """`python -m stream run …` in its own data dir and API port, output collected by a thread."""

    def __init__(self, data_dir: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.api = f"127.0.0.1:{free_port()}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL_")}
        environment.update(env or {})
        environment["SIGNAL_API"] = self.api
        environment["SIGNAL_DATA_DIR"] = str(data_dir)
        environment["PYTHONUNBUFFERED"] = "1"
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stream", "run", "--data-dir", str(data_dir), *args],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def api_url(self) -> str:
        return f"http://{self.api}"

    async def wait_for(self, pattern: str, within: float = 90.0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = regex.search(line)
                if found:
                    return found
            if self.process.poll() is not None:
                await asyncio.sleep(0.2)
                raise AssertionError(
                    f"csignal run exited ({self.process.returncode}) before {pattern!r}:\n"
                    + self.output
                )
            await asyncio.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} within {within}s:\n{self.output}")

    def pids(self) -> list[int]:
        found: list[int] = []
        for line in self.lines:
            for match in re.finditer(r"\bpid (\d+)", line):
                found.append(int(match.group(1)))
        return found

    def stop(self, timeout: float = 40.0, signum: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        self._reader.join(5)
        return self.process.returncode

    def kill(self) -> None:
        """Last resort for a failed test: the run and every process started for this data dir."""
        for pid in processes_for(self.data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def alive(pid: int) -> bool:
    """True for a process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def processes_for(data_dir: Path) -> list[int]:
    """Live processes whose environment names this data dir: everything a run started."""
    marker = f"SIGNAL_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and alive(int(entry.name)):
            found.append(int(entry.name))
    return found
