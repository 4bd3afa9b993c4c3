"""`csignal run`: Signal on one machine — broker, control, one pipeline worker (and the demo).

The broker runs in this process's care (embedded, unless `SIGNAL_BROKER` points at a cluster);
control and the pipeline worker are child processes (`python -m stream control|pipeline`) so
they behave exactly as in a real deployment, and they die with this process even if it is
killed (`die_with_parent`). `--demo` adds the Marketo sandbox (in this process), imports the
demo account pointing at it (into an empty data dir only: an account already stored is the
operator's and is kept, its demo connection pointed at this run's sandbox), and feeds the
simulator's traffic in: by default into a Certain sandbox the demo account's Certain source polls
(`stream.demo_certain`), so the demo runs the chain a real install runs; with `demo_feed="push"`
straight into the ingest API, as another producer would.

Supervision (`stream.run_supervisor`): a child that exits unexpectedly is restarted after a
growing delay, a dead embedded broker is replaced and both children restarted under it (the status
lines count the heals, `broker restarts N`), and a crash loop stops the run with a clear message.
The demo's Marketo side (sandbox, demo account, pushed traffic) is `stream.run_demo`, its Certain
side `stream.demo_certain`.

Without `--headless` the console runs in the foreground as a client (`csignal console
--under-run`) and the runner's own messages go to `logs/run.log` meanwhile. Quitting it asks the
operator to detach or to stop Signal, and its exit code carries the answer (console.session): only
"Stop Signal" stops the run. Any other end — detach, a crash (traceback on the terminal and in
`logs/console.log`), a kill — leaves the services delivering: the runner says what happened and
how to reattach (`csignal console`), and goes on as headless. Headless, a status line (changes,
outcomes by status, sandbox leads) is printed every few seconds from the API's `/sql`.

SIGUSR1 rolls the embedded broker over at once (`Supervisor.ask_rollover`).

Stopping (Ctrl-C, SIGTERM): the simulator first, then the pipeline, then control (SIGTERM, then
SIGKILL after `STOP_TIMEOUT_S`), the sandbox, and the broker last, so services flush while
their transport is still there. A second Ctrl-C kills what is left at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from apiclient.client import ApiClient
from apiclient.errors import ApiError, RequestRefused
from config.settings import Settings
from console import session
from stream.broker import EmbeddedBroker, die_with_parent
from stream.private_files import secure_data_dir
from stream.run_child import STOP_TIMEOUT_S, Child
from stream.run_console import console_ended, file_size, restore_terminal, terminal_modes
from stream.run_supervisor import CRASH_LIMIT, RunError, Supervisor

__all__ = ["RunError", "RunOptions", "Runner", "run"]

READY_TIMEOUT_S = 90.0
STATUS_EVERY_S = 5.0
CONFIG_APPLY_S = 2.0
DEMO_RATE = 5.0


@dataclass
class RunOptions:
    demo: bool = False
    headless: bool = False
    config_file: Path | None = None
    data_dir: Path | None = None
    seed: int | None = None
    rate: float = DEMO_RATE
    demo_feed: str = "certain"
    """`certain`: traffic made in a Certain sandbox, polled by control; `push`: posted to the
    ingest API."""
    demo_account: str = "full"
    """`full`: the demo account as it is; `batching`: its form-post flows inactive (one Marketo
    call per lead), for runs at tens of changes per second. Only imported into an empty data dir."""
    status_every: float = STATUS_EVERY_S
    restart_backoff_s: float = 1.0
    """First restart delay; doubles per recent crash up to `run_supervisor.BACKOFF_MAX_S`."""
    crash_limit: int = CRASH_LIMIT
    out: TextIO = field(default_factory=lambda: sys.stdout)
    console_command: Sequence[str] = ()
    """The console's program (default: this Python's `-m stream console`); the runner adds
    `--api URL --under-run --crash-log FILE`. Tests put a console of their own here."""


# --- the run --------------------------------------------------------------------------------


class Runner:
    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.out = options.out
        if options.data_dir is not None:
            os.environ["SIGNAL_DATA_DIR"] = str(options.data_dir)
        self.settings = Settings()
        self.data_dir = self.settings.data_dir.resolve()
        self.logs = self.data_dir / "logs"
        self.sandbox: Any = None
        self.certain_demo: Any = None
        self.stop_event = asyncio.Event()
        self.failure: str | None = None
        self.supervisor = Supervisor(
            self.logs,
            {},
            self.stop_event,
            self.say,
            self._fail,
            crash_limit=options.crash_limit,
            restart_backoff_s=options.restart_backoff_s,
            broker_max_bytes=self.settings.embedded_broker_max_mb * 1024 * 1024,
        )
        self.tasks: list[asyncio.Task[Any]] = []
        self.started = time.monotonic()
        self.first_delivery_s: float | None = None
        self.timing_first_delivery = True
        """The first status lines time the first delivery (headless: they start with the run)."""
        self.console_running = False

    @property
    def broker(self) -> EmbeddedBroker | None:
        """The embedded broker of the moment (a heal replaces it); None on a cluster."""
        return self.supervisor.broker

    @property
    def children(self) -> list[Child]:
        return self.supervisor.children

    @property
    def broker_restarts(self) -> int:
        return self.supervisor.broker_restarts

    def say(self, text: str) -> None:
        """To the terminal; to `logs/run.log` while the console owns the terminal."""
        if self.console_running:
            with contextlib.suppress(OSError), open(self.logs / "run.log", "a") as log:
                log.write(f"{datetime.now().isoformat(timespec='seconds')} {text}\n")
            return
        print(text, file=self.out, flush=True)

    # -- start ----------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        interrupts = 0

        def on_signal() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts > 1:
                self.supervisor.kill_children()
            self.stop_event.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        loop.add_signal_handler(signal.SIGUSR1, self.supervisor.ask_rollover)
        try:
            await self._start()
            await self.stop_event.wait()
        except RunError as error:
            self.failure = str(error)
        finally:
            await self._shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
                loop.remove_signal_handler(sig)
        if self.failure:
            self.say(f"csignal run: {self.failure}")
            return 1
        self.say("Signal stopped.")
        return 0

    async def _start(self) -> None:
        tightened = secure_data_dir(self.data_dir, None)  # 0700, files 0600
        if tightened:
            self.say(
                f"data dir made owner-only (it was readable by others): {', '.join(tightened)}"
            )
        env = self.supervisor.env
        env.update(os.environ)
        env["SIGNAL_DATA_DIR"] = str(self.data_dir)
        env["PYTHONUNBUFFERED"] = "1"
        self._check_api_port()
        await self.supervisor.start_broker(self.settings.broker or "")

        if self.options.demo:
            from stream.run_demo import start_sandbox

            self.sandbox = await start_sandbox(env, os.environ, self.say)
            if self.options.demo_feed == "certain":
                from stream.demo_certain import CertainDemo

                self.certain_demo = CertainDemo(
                    self.say, rate=self.options.rate, seed=self.options.seed
                )
                await self.certain_demo.start()

        self.tasks += await self.supervisor.start_children()
        client = ApiClient(self.settings.api_url, settings=self.settings)
        self.tasks.append(asyncio.create_task(self._after_ready(client), name="ready"))

    def _check_api_port(self) -> None:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex((self.settings.api_host, self.settings.api_port)) == 0:
                raise RunError(
                    f"something already listens on {self.settings.api} (another `csignal run` or "
                    "`csignal control`?); stop it or set SIGNAL_API to another host:port"
                )

    async def _after_ready(self, client: ApiClient) -> None:
        try:
            await self._wait_ready(client)
            if self.options.config_file is not None:
                await self._import(
                    client,
                    self.options.config_file.read_text(encoding="utf-8"),
                    str(self.options.config_file),
                )
            if self.options.demo:
                from stream.run_demo import demo_account

                variant = self.options.demo_account
                demo = await demo_account(
                    client, self.sandbox.url, self.data_dir, self.say, variant
                )
                if demo is not None:
                    what = "the demo account"
                    if variant != "full":
                        what += f" ({variant}: form-post flows inactive)"
                    await self._import(client, demo, what)
            if self.certain_demo is not None:
                from stream.demo_certain import DemoError

                try:
                    await self.certain_demo.connect(client)
                except DemoError as error:
                    raise RunError(str(error)) from None
            if self.options.demo or self.options.config_file is not None:
                # Workers apply a new configuration within CONFIG_APPLY_S; changes sent before
                # that would be evaluated against the previous one.
                await asyncio.sleep(CONFIG_APPLY_S)
            ready_s = time.monotonic() - self.started
            self.say(
                f"Signal is running ({ready_s:.1f}s): operator API {client.base_url} "
                f"(token in {self.settings.api_token_path}); logs in {self.logs}"
            )
            if self.certain_demo is not None:
                drive = self.certain_demo.drive(self.stop_event)
                self.tasks.append(asyncio.create_task(drive, name="simulator"))
            elif self.options.demo:
                from stream.run_demo import push_traffic

                push = push_traffic(
                    client, self.options.rate, self.options.seed, self.stop_event, self.say
                )
                self.tasks.append(asyncio.create_task(push, name="simulator"))
            if self.options.headless:
                self.say("Ctrl-C stops everything.")
            elif await self._console(client.base_url):
                return
            await self._status_loop(client)
        except RunError as error:
            self.failure = str(error)
            self.stop_event.set()
        except OSError as error:
            self.failure = str(error)
            self.stop_event.set()
        finally:
            await client.close()

    async def _wait_ready(self, client: ApiClient) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline and not self.stop_event.is_set():
            try:
                health = await client.healthz()
                if health.get("ok", True) is not False:
                    return
                last = ApiError(f"not ready yet: {health}")
            except ApiError as error:
                last = error
            await asyncio.sleep(0.2)
        if self.stop_event.is_set():
            raise RunError(self.failure or "stopped before control was ready")
        raise RunError(
            f"control did not become ready within {READY_TIMEOUT_S:g}s ({last}); "
            f"its log:\n{self.children[0].log_tail()}"
        )

    async def _import(self, client: ApiClient, text: str, what: str) -> None:
        try:
            result = await client.put_config(text)
        except RequestRefused as error:
            listed = "".join(f"\n  {problem}" for problem in error.problems)
            raise RunError(f"{what} was not imported:{listed or ' ' + error.detail}") from None
        except ApiError as error:
            raise RunError(f"importing {what} failed: {error}") from None
        warnings = result.get("warnings") or []
        self.say(f"imported {what}" + (f" ({len(warnings)} warnings)" if warnings else ""))
        for warning in warnings:
            self.say(f"  warning: {warning}")

    async def _console(self, api_url: str) -> bool:
        """The console in the foreground of this terminal, as one client among others. True
        when the run is to stop: the operator chose "Stop Signal" there, or the run is stopping
        anyway (then the console is ended). Any other end of the console — detach, a crash, a
        kill — leaves the services running and returns False.

        It stays in our process group (it needs the terminal), and dies with us like the rest.
        """
        crash_log = self.logs / session.CRASH_LOG_NAME
        crash_size = file_size(crash_log)
        self.say(
            "opening the console: q on its flow list offers to detach (Signal keeps running) or "
            f"to stop Signal (messages meanwhile: {self.logs / 'run.log'})"
        )
        program = list(self.options.console_command) or [sys.executable, "-m", "stream", "console"]
        modes = terminal_modes()
        process = await asyncio.create_subprocess_exec(
            *program,
            "--api",
            api_url,
            "--under-run",
            "--crash-log",
            str(crash_log),
            env=dict(os.environ, SIGNAL_DATA_DIR=str(self.data_dir)),
            preexec_fn=die_with_parent(),
        )
        self.console_running = True
        waiter = asyncio.create_task(process.wait())
        stopper = asyncio.create_task(self.stop_event.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if process.returncode is None:
                process.terminate()
                try:
                    async with asyncio.timeout(STOP_TIMEOUT_S):
                        await waiter
                except TimeoutError:
                    process.kill()
                    await process.wait()
            self.console_running = False
        code = process.returncode
        if self.stop_event.is_set():
            return True
        if code == session.STOP_SIGNAL:
            self.say("Stop Signal was chosen in the console: stopping everything.")
            self.stop_event.set()
            return True
        if code is not None and code < 0:
            restore_terminal(modes, self.out)  # a killed console leaves it raw
        crashed = file_size(crash_log) > crash_size
        data_dir = self.data_dir if self.options.data_dir else None
        self.say(
            console_ended(
                code,
                crash_log if crashed else None,
                api_url,
                children=[(c.name, c.pid) for c in self.children],
                logs=self.logs,
                data_dir=data_dir,
            )
        )
        self.timing_first_delivery = False  # the status lines start long after it
        return False

    # -- status ---------------------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message
        self.stop_event.set()

    async def _status_loop(self, client: ApiClient) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.status_every):
                    await self.stop_event.wait()
            if self.stop_event.is_set():
                return
            self.say(await self.status_line(client))

    async def status_line(self, client: ApiClient) -> str:
        stamp = datetime.now().strftime("%H:%M:%S")
        try:
            changes = await client.scalar("SELECT count(*) FROM changes")
            result = await client.sql(
                "SELECT status, count(*) AS n FROM outcomes GROUP BY status ORDER BY status"
            )
        except ApiError as error:
            return f"[{stamp}] status unavailable: {error}"
        counts = {str(row[0]): int(row[1]) for row in result.rows}
        if counts.get("delivered") and self.first_delivery_s is None and self.timing_first_delivery:
            self.first_delivery_s = time.monotonic() - self.started
            self.say(f"first delivery recorded {self.first_delivery_s:.1f}s after start")
        parts = [f"changes {changes}"] + [f"{k} {v}" for k, v in counts.items()]
        if self.sandbox is not None:
            parts.append(f"sandbox leads {len(self.sandbox.state.leads)}")
        if self.certain_demo is not None:
            parts += self.certain_demo.status_parts()
        restarts = sum(c.restarts for c in self.children)
        if restarts:
            parts.append(f"restarts {restarts}")
        if self.broker_restarts:
            parts.append(f"broker restarts {self.broker_restarts}")
        if self.supervisor.broker_rollovers:
            parts.append(f"broker rollovers {self.supervisor.broker_rollovers}")
        return f"[{stamp}] " + " · ".join(parts)

    # -- stop -----------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self.stop_event.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        await self.supervisor.stop_children()
        if self.sandbox is not None:
            with contextlib.suppress(Exception):
                await self.sandbox.stop()
        if self.certain_demo is not None:
            await self.certain_demo.stop()
        await self.supervisor.stop_broker()


def run(options: RunOptions) -> int:
    try:
        return asyncio.run(Runner(options).run())
    except KeyboardInterrupt:
        return 130
