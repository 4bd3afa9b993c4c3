"""`csignal run --demo` with its console (issue 17): the console is a client, so neither a crash
nor quitting it stops the deliveries unless the operator chooses "Stop Signal".

1. In a real terminal (a pty at 80×24): `?` on the Retry queue shows its keys (it used to crash
   the console, and the run with it); `q` on the flow list asks, `d` detaches; the runner says
   so and prints status lines while deliveries go on; `csignal console` reattaches and quits on
   `q` by itself; Ctrl-C in the runner's terminal then stops everything, leaving no process.
2. A console that crashes inside its flow list (the real `csignal console` with a raising
   screen, tests/e2e/crashing_console.py): the runner reports the crash and where its traceback
   went, and deliveries continue until the run is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import pty
import re
import signal
import struct
import sys
import termios
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apiclient.client import ApiClient
from console import session
from simulators.certain.demo_account import SECRET_ENV
from stream.broker import free_port
from stream.runner import Runner, RunOptions
from tests.e2e import crashing_console
from tests.support.processes import REPO, clean_env, processes_for
from tests.support.waiting import until

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(900)]

START_S = 240.0
"""Each wait's deadline. Generous: under faketime at load 7-10, "a delivery after detaching"
missed 120 s (alone, the same run passed in 67 s). A deadline costs nothing while it is healthy."""
DELIVERED = "SELECT count(*) FROM outcomes WHERE status = 'delivered'"
STATUS_LINE = re.compile(r"\[\d\d:\d\d:\d\d\] (changes \d+ · |status unavailable: )")
"""A status line; on a loaded machine the runner may say the API did not answer in time, which
still shows it going on."""


class Terminal:
    """A program in a pseudo-terminal of `size`, its output collected as it comes (a program
    writing into a full pty would block)."""

    def __init__(self, argv: list[str], env: dict[str, str], size: tuple[int, int]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the terminal's size first, then the program
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
                os.chdir(REPO)
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.output = bytearray()
        self.code: int | None = None
        asyncio.get_running_loop().add_reader(fd, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.fd)
        self.output += data

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def mark(self) -> int:
        """A byte offset into the output, for `after`: not an index into `text`, which the
        console's box drawing and "·" (several bytes each) would put far past it."""
        return len(self.output)

    def after(self, mark: int) -> str:
        return self.output[mark:].decode("utf-8", "replace")

    def exited(self) -> str | None:
        if self.code is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.code = os.waitstatus_to_exitcode(status)
        if self.code is None:
            return None
        return f"it exited ({self.code}):\n{self.text[-3000:]}"

    async def wait_for(self, *markers: str, since: int = 0, within: float = 60.0) -> None:
        async def shown() -> bool:
            seen = self.after(since)
            return all(m in seen for m in markers)

        await until(shown, f"{markers} on the terminal", within=within, alive=self.exited)

    async def press(self, keys: str, *markers: str, within: float = 60.0) -> None:
        since = self.mark()
        os.write(self.fd, keys.encode())
        if markers:
            await self.wait_for(*markers, since=since, within=within)

    async def wait_exit(self, within: float = 60.0) -> int:
        async def ended() -> bool:
            return self.exited() is not None

        await until(ended, "the program to exit", within=within, every=0.1)
        assert self.code is not None
        return self.code

    def close(self) -> None:
        if self.exited() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.fd)


@contextlib.asynccontextmanager
async def terminal(
    argv: list[str], env: dict[str, str], size: tuple[int, int] = (80, 24)
) -> AsyncIterator[Terminal]:
    term = Terminal(argv, env, size)
    try:
        yield term
    finally:
        term.close()


async def delivered(client: ApiClient) -> int:
    return int(await client.scalar(DELIVERED) or 0)


async def deliveries_go_on(client: ApiClient, what: str) -> None:
    before = await delivered(client)

    async def more() -> bool:
        return await delivered(client) > before

    await until(more, f"a delivery {what}", within=START_S, every=0.5)


async def test_detach_leaves_signal_running_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    api = f"127.0.0.1:{free_port()}"
    env = clean_env(
        SIGNAL_API=api,
        SIGNAL_DATA_DIR=str(data_dir),
        SIGNAL_CONSOLE_KEYMAP=str(tmp_path / "no-keymap.yaml"),
        TERM="xterm-256color",
        PYTHONUNBUFFERED="1",
    )
    python = sys.executable
    argv = [python, "-m", "stream", "run", "--demo", "--rate", "20", "--status-every", "1"]
    try:
        async with terminal([*argv, "--data-dir", str(data_dir)], env) as run:
            await run.wait_for("Flows", "Registered", within=START_S)
            token = (data_dir / "api-token").read_text(encoding="utf-8").strip()
            async with ApiClient(f"http://{api}", token) as client:
                await deliveries_go_on(client, "with the console open")
                await run.press("4", "Retry queue")
                await run.press("?", "Previous page", "Next page")  # used to crash: issue 17
                await run.press("q")  # closes help (a lone escape waits for a sequence)
                await run.press("1")
                await run.press("q", "Leave the console", "Stop Signal")
                await run.press("d", "The console was closed (detached).", "Reattach with")
                assert run.exited() is None
                since = run.mark()
                await run.wait_for("delivered", since=since)

                async def two_status_lines() -> bool:
                    return len(STATUS_LINE.findall(run.after(since))) >= 2

                try:
                    await until(
                        two_status_lines,
                        "status lines after detaching",
                        within=START_S,
                        alive=run.exited,
                    )
                except AssertionError as error:
                    raise AssertionError(f"{error}\n{run.after(since)[-3000:]}") from None
                await deliveries_go_on(client, "after detaching")

                # Reattach: a standalone console quits on q and stops nothing but itself.
                console = [python, "-m", "stream", "console", "--api", f"http://{api}"]
                async with terminal(console, env) as again:
                    await again.wait_for("Flows", "Registered", within=START_S)
                    await again.press("q")
                    assert await again.wait_exit() == 0
                assert run.exited() is None
                await deliveries_go_on(client, "after the reattached console quit")

            await run.press("\x03")  # Ctrl-C in the runner's terminal stops everything
            assert await run.wait_exit(within=90) == 0, run.text[-3000:]
            assert "Signal stopped." in run.text

        async def all_gone() -> bool:
            return processes_for(data_dir) == []

        await until(all_gone, "every process of the run gone", within=30)
    finally:
        for pid in processes_for(data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def test_a_console_crash_leaves_deliveries_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("SIGNAL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SIGNAL_API", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv(SECRET_ENV, "")  # the run sets it; restored afterwards
    monkeypatch.delenv("SIGNAL_BROKER", raising=False)
    monkeypatch.chdir(REPO)  # the stand-in console is `python -m tests.e2e.crashing_console`
    out = io.StringIO()
    runner = Runner(
        RunOptions(
            demo=True,
            data_dir=data_dir,
            rate=20,
            status_every=1,
            out=out,
            console_command=[sys.executable, "-m", "tests.e2e.crashing_console"],
        )
    )
    task = asyncio.create_task(runner.run())

    def run_ended() -> str | None:
        return f"the run ended:\n{out.getvalue()}" if task.done() else None

    async def said(text: str) -> bool:
        return text in out.getvalue()

    try:
        await until(
            lambda: said("The console crashed (exit code 1)"),
            "the crash reported",
            within=START_S,
            alive=run_ended,
        )
        crash_log = data_dir / "logs" / session.CRASH_LOG_NAME
        assert str(crash_log) in out.getvalue()
        assert crashing_console.MESSAGE in crash_log.read_text(encoding="utf-8")
        assert "Signal keeps running" in out.getvalue()
        token = (data_dir / "api-token").read_text(encoding="utf-8").strip()
        async with ApiClient(runner.settings.api_url, token) as client:
            await deliveries_go_on(client, "after the console crashed")
        await until(lambda: said("· delivered "), "status lines", alive=run_ended)
        assert not runner.stop_event.is_set()
        assert all(child.running for child in runner.children)
    finally:
        runner.stop_event.set()
        code = await task
    assert code == 0, out.getvalue()
    assert "Signal stopped." in out.getvalue()
    assert processes_for(data_dir) == []
