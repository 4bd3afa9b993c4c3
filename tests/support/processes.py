"""Signal's own services as real child processes (`python -m stream <command>`), one wrapper for
every test that starts them: log to a file, wait for readiness by polling, stop or kill, read the
log tail in a failure message.

Children get the parent-death signal (`die_with_parent`) so a crashed test run leaves nothing
behind, and an environment without the developer's own `SIGNAL_*` settings.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from stream.broker import EmbeddedBroker, die_with_parent, free_port
from tests.support.waiting import DEADLINE_S, pause, until, until_sync

REPO = Path(__file__).resolve().parents[2]
START_WITHIN_S = 90.0

T = TypeVar("T")


def wait_exit(process: subprocess.Popen[Any], timeout: float) -> int:
    """`process.wait(timeout)`, also under libfaketime: Popen.wait with a timeout sleeps with
    `time.sleep`, which fails on a shifted date (see `tests.support.waiting.pause`)."""
    deadline = time.monotonic() + timeout
    while (code := process.poll()) is None:
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(process.args, timeout)
        pause(0.02)
    return code


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any SIGNAL_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL_")}
    env.update(extra)
    return env


@dataclass
class ServiceProcess:
    """`python -m stream ARGS` with its output in `log_path`."""

    args: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=clean_env)
    process: subprocess.Popen[bytes] | None = None
    module: str = "stream"
    """The module run with `python -m` (a test's own app, e.g. `tests.runtime.faust_echo_app`)."""

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                cwd=REPO,
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    def exited(self) -> str | None:
        """Why waiting for this process is pointless (it exited), or None: for `until`."""
        if self.process is not None and self.process.poll() is not None:
            return f"{self.args[0]} exited ({self.process.returncode}):\n{self.tail()}"
        return None

    def wait_for_log(self, text: str, within: float = START_WITHIN_S) -> None:
        until_sync(
            lambda: text in self.log(),
            f"{text!r} in the log",
            within=within,
            every=0.1,
            alive=self.exited,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Signal the process and wait; kill it (and fail) if it does not end in `timeout`."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                wait_exit(process, timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(
                    f"{self.args[0]} did not stop in {timeout:g} s:\n{self.tail()}"
                ) from None
        return process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class ControlProcess(ServiceProcess):
    """`csignal control` with its data dir and operator API on a free loopback port."""

    data_dir: Path = Path()
    api: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.api}"

    @property
    def token(self) -> str:
        return (self.data_dir / "api-token").read_text(encoding="utf-8").strip()

    def auth(self, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **headers}

    async def sql(self, session: aiohttp.ClientSession, sql: str) -> list[list[Any]]:
        async with session.post(
            f"{self.url}/api/v1/sql", json={"sql": sql}, headers=self.auth()
        ) as response:
            body = await response.json()
            assert response.status == 200, body
            return list(body["rows"])


def start_control(
    broker: EmbeddedBroker,
    data_dir: Path,
    *,
    name: str = "control",
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> ControlProcess:
    """Start `csignal control` on `broker` over `data_dir` and wait until its API listens."""
    data_dir.mkdir(parents=True, exist_ok=True)
    api = f"127.0.0.1:{free_port()}"
    control = ControlProcess(
        args=["control", *args],
        log_path=data_dir.parent / f"{name}.log",
        env=clean_env(
            SIGNAL_BROKER=broker.url,
            SIGNAL_DATA_DIR=str(data_dir),
            SIGNAL_API=api,
            **(env or {}),
        ),
        data_dir=data_dir,
        api=api,
    )
    control.start()
    try:
        control.wait_for_log("operator API listening on")
    except BaseException:
        control.kill()
        raise
    return control


def start_pipeline(
    broker: EmbeddedBroker,
    workdir: Path,
    *,
    name: str = "pipeline",
    config_key: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ServiceProcess:
    """Start a pipeline worker on `broker` with its data dir under `workdir`; `config_key` is
    the key file control seals connection secrets with (`<control's data dir>/config-key`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    extra = {"SIGNAL_CONFIG_KEY_FILE": str(config_key)} if config_key is not None else {}
    worker = ServiceProcess(
        args=["pipeline", "--broker", broker.url, "--data-dir", str(workdir / f"{name}-data")],
        log_path=workdir / f"{name}.log",
        env=clean_env(**extra, **(env or {})),
    )
    return worker.start()


async def until_running(
    check: Callable[[], Awaitable[T]],
    what: str,
    *processes: ServiceProcess,
    within: float = DEADLINE_S,
    every: float = 0.1,
) -> T:
    """`until` while `processes` serve the test: give up as soon as one of them exits, and name
    the end of every process's log when waiting fails."""

    def exited() -> str | None:
        return next((reason for p in processes if (reason := p.exited()) is not None), None)

    try:
        return await until(check, what, within=within, every=every, alive=exited)
    except AssertionError as failure:
        running = [p for p in processes if p.exited() is None]  # an exited one's tail is shown
        tails = "".join(f"\n--- {p.log_path.name}:\n{p.tail()}" for p in running)
        raise AssertionError(f"{failure}{tails}") from None


async def run_to_end(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    within: float = 120.0,
    what: str | None = None,
) -> tuple[int, str, str]:
    """Run `argv` (from the repository root) to its end: exit code, stdout, stderr. Fails if it
    takes longer than `within` seconds, naming it as `what` (default: the command line)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO,
        env=dict(clean_env() if env is None else env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        name = what or " ".join(argv)
        raise AssertionError(f"{name} did not finish in {within:g} s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def run_csignal(
    *args: str, env: Mapping[str, str] | None = None, within: float = 120.0
) -> tuple[int, str, str]:
    """Run `csignal ARGS` (`python -m stream`) to its end: exit code, stdout, stderr."""
    return await run_to_end(
        [sys.executable, "-m", "stream", *args],
        env=env,
        within=within,
        what=f"csignal {' '.join(args)}",
    )


def processes_for(data_dir: Path) -> list[int]:
    """Live processes (not zombies) whose environment sets SIGNAL_DATA_DIR to `data_dir`: what
    a `csignal run` over that data dir started and left behind."""
    marker = f"SIGNAL_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found
