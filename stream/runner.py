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

Supervision: a child that exits unexpectedly is reported with the end of its log and restarted
after a growing delay (1 s, 2 s, 4 s … 30 s). Both services are built to restart — offsets in
Kafka, state in DuckDB — so a restart loses nothing and keeps a demo or a small install running
through a transient fault (a broker hiccup, a crashed agent). A child that keeps crashing
(`CRASH_LIMIT` exits within `CRASH_WINDOW_S`) stops the run with a clear message instead:
restarting a deterministic failure only hides it.

The run heals when the embedded broker dies: the broker keeps topics, offsets and anything in
flight in memory only, so a new one starts empty under services whose consumer groups and
producers believe otherwise. The runner stops control and the pipeline (SIGTERM, then SIGKILL
after `HEAL_STOP_TIMEOUT_S`), starts a new broker on the same port (so every configured bootstrap
address stays valid; on another free port, handed to the children, if that one cannot be bound),
declares the topics, and starts control and the pipeline again. The ledger is the source of truth
(DESIGN 2, crash contract): control's recovery re-drives what had no final outcome. The status
lines count the heals (`broker restarts N`). A broker that keeps dying (`CRASH_LIMIT` exits within
`CRASH_WINDOW_S`) stops the run like any other crash loop. Control or the pipeline dying alone is
restarted alone, as above.

Without `--headless` the console runs in the foreground as a client (`csignal console
--under-run`) and the runner's own messages go to `logs/run.log` meanwhile. Quitting it asks the
operator to detach or to stop Signal, and its exit code carries the answer (console.session): only
"Stop Signal" stops the run. Any other end — detach, a crash (traceback on the terminal and in
`logs/console.log`), a kill — leaves the services delivering: the runner says what happened and
how to reattach (`csignal console`), and goes on as headless. Headless, a status line (changes,
outcomes by status, sandbox leads) is printed every few seconds from the API's `/sql`.

Stopping (Ctrl-C, SIGTERM): the simulator first, then the pipeline, then control (SIGTERM, then
SIGKILL after `STOP_TIMEOUT_S`), the sandbox, and the broker last, so services flush while
their transport is still there. A second Ctrl-C kills what is left at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from apiclient.client import ApiClient
from apiclient.errors import ApiError, RequestRefused
from config.settings import Settings
from console import session
from stream.broker import (
    BrokerStartError,
    EmbeddedBroker,
    die_with_parent,
    normalize_broker_url,
)
from stream.private_files import secure_data_dir
from stream.run_child import STOP_TIMEOUT_S, Child
from stream.run_console import console_ended, file_size, restore_terminal, terminal_modes
from stream.topics import TopicMismatch, declare_topics

HEAL_STOP_TIMEOUT_S = 5.0
"""Grace for control and the pipeline when the broker died under them: a clean stop lets control
checkpoint DuckDB, but a Faust worker flushing to a dead broker may wait for nothing."""
BROKER_WATCH_S = 0.5
READY_TIMEOUT_S = 90.0
STATUS_EVERY_S = 5.0
CRASH_LIMIT = 5
CRASH_WINDOW_S = 120.0
BACKOFF_MAX_S = 30.0

CONFIG_APPLY_S = 2.0
DEMO_RATE = 5.0
DEMO_CHUNK_S = 600.0
DEMO_CLIENT_ID = "signal-demo"


class RunError(Exception):
    """The run cannot go on; the message says why and what to look at."""


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
    status_every: float = STATUS_EVERY_S
    restart_backoff_s: float = 1.0
    """First restart delay; doubles per recent crash up to BACKOFF_MAX_S."""
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
        self.broker: EmbeddedBroker | None = None
        self.broker_url = ""
        self.sandbox: Any = None
        self.certain_demo: Any = None
        self.children: list[Child] = []
        self.child_env: dict[str, str] = {}
        """The children's environment; a healed broker on another port updates it in place."""
        self.supervisors: dict[str, asyncio.Task[None]] = {}
        self.broker_exits: deque[float] = deque()
        self.broker_restarts = 0
        self.stop_event = asyncio.Event()
        self.failure: str | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.started = time.monotonic()
        self.first_delivery_s: float | None = None
        self.timing_first_delivery = True
        """The first status lines time the first delivery (headless: they start with the run)."""
        self.sent = 0
        self.rejected = 0
        self.console_running = False

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
                for child in self.children:
                    child.kill_now()
            self.stop_event.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            await self._start()
            await self.stop_event.wait()
        except RunError as error:
            self.failure = str(error)
        finally:
            await self._shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM):
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
        env = self.child_env
        env.update(os.environ)
        env["SIGNAL_DATA_DIR"] = str(self.data_dir)
        env["PYTHONUNBUFFERED"] = "1"
        self._check_api_port()
        await self._start_broker()
        env["SIGNAL_BROKER"] = self.broker_url

        if self.options.demo:
            from simulators.certain.demo_account import SECRET_ENV
            from simulators.marketo.sandbox import Sandbox, SandboxConfig

            secret = secrets.token_urlsafe(24)
            env[SECRET_ENV] = secret
            os.environ[SECRET_ENV] = secret
            self.sandbox = Sandbox(SandboxConfig(client_id=DEMO_CLIENT_ID, client_secret=secret))
            await self.sandbox.start("127.0.0.1", 0)
            self.say(
                f"Marketo sandbox: {self.sandbox.url} (leads at {self.sandbox.url}/_sandbox/leads)"
            )
            if self.options.demo_feed == "certain":
                from stream.demo_certain import CertainDemo

                self.certain_demo = CertainDemo(
                    self.say, rate=self.options.rate, seed=self.options.seed
                )
                await self.certain_demo.start()

        control = Child("control", env, self.logs / "control.log")
        pipeline = Child("pipeline", env, self.logs / "pipeline.log")
        self.children = [control, pipeline]
        await control.start()
        await pipeline.start()
        broker_pid = f", broker pid {self.broker.pid}" if self.broker is not None else ""
        self.say(f"control pid {control.pid}, pipeline pid {pipeline.pid}{broker_pid}")
        for child in self.children:
            self._start_supervising(child)

        if self.broker is not None:
            self.tasks.append(asyncio.create_task(self._watch_broker(), name="broker"))
        client = ApiClient(self.settings.api_url, settings=self.settings)
        self.tasks.append(asyncio.create_task(self._after_ready(client), name="ready"))

    async def _start_broker(self) -> None:
        if self.settings.broker:
            try:
                self.broker_url = normalize_broker_url(self.settings.broker)
            except ValueError as error:
                raise RunError(f"SIGNAL_BROKER: {error}") from None
            self.say(f"broker: {self.broker_url} (SIGNAL_BROKER)")
        else:
            self.broker = EmbeddedBroker(log_path=self.logs / "broker.log")
            try:
                await self.broker.start_async()
            except BrokerStartError as error:
                raise RunError(str(error)) from None
            self.broker_url = self.broker.url
            self.say(f"broker: embedded at {self.broker.bootstrap_servers}")
        try:
            await declare_topics(self.broker_url)
        except TopicMismatch as error:
            raise RunError(str(error)) from None
        except Exception as error:
            raise RunError(
                f"the broker at {self.broker_url} cannot be used ({type(error).__name__}: "
                f"{error}); check SIGNAL_BROKER and that the cluster is up"
            ) from None

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
                await self._demo_account(client)
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
                self.tasks.append(asyncio.create_task(self._simulate(client), name="simulator"))
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

    async def _demo_account(self, client: ApiClient) -> None:
        """Import the demo account into an empty data dir only. An account already stored is
        the operator's (edited flows, filters, transforms) and is kept as it is; only the demo
        connection is pointed at this run's sandbox, whose port is new at every start."""
        from simulators.certain.demo_account import demo_account_yaml

        try:
            stored = json.loads(await client.get_config("json"))
        except ApiError as error:
            raise RunError(f"reading the stored account failed: {error}") from None
        except ValueError as error:
            raise RunError(f"control's account export is not JSON: {error}") from None
        counts = {kind: len(stored.get(kind) or []) for kind in ("flows", "connections")}
        if not any(value for key, value in stored.items() if key != "account"):
            await self._import(
                client, demo_account_yaml(self.sandbox.url, DEMO_CLIENT_ID), "the demo account"
            )
            return
        held = ", ".join(
            f"{n} {kind if n != 1 else kind.removesuffix('s')}" for kind, n in counts.items()
        )
        self.say(
            f"keeping the account in {self.data_dir}: {held} (the demo account is imported only "
            "into an empty data dir); start with an empty --data-dir for a fresh demo"
        )
        await self._repoint_demo_connection(client)

    async def _repoint_demo_connection(self, client: ApiClient) -> None:
        """The kept demo connection reaches the previous run's sandbox, gone with it: give it
        this run's URL, and its `${VAR}` secret again (a new URL without one would clear it).
        A connection the operator pointed elsewhere (not this sandbox's client id, or not a
        loopback URL) is left alone."""
        from simulators.certain.demo_account import CONNECTION_ID, SECRET_ENV

        try:
            connection = await client.call("GET", f"/connections/{CONNECTION_ID}")
        except RequestRefused as error:
            if error.status == 404:
                return
            raise RunError(f"reading connection {CONNECTION_ID!r} failed: {error}") from None
        except ApiError as error:
            raise RunError(f"reading connection {CONNECTION_ID!r} failed: {error}") from None
        old = str(connection.get("service_url") or "").rstrip("/")
        new = self.sandbox.url.rstrip("/")
        loopback = old.startswith(("http://127.0.0.1:", "http://localhost:"))
        if old == new or not loopback or connection.get("client_id") != DEMO_CLIENT_ID:
            return
        body = {
            key: value
            for key, value in connection.items()
            if not key.startswith("secret_") and key not in ("client_secret_ref", "version")
        }
        body["service_url"] = new
        token_url = str(connection.get("access_token_url") or "")
        if token_url.startswith(old):
            body["access_token_url"] = new + token_url[len(old) :]
        if connection.get("client_secret_ref") == SECRET_ENV:
            body["client_secret"] = f"${{{SECRET_ENV}}}"
        try:
            await client.call("PUT", f"/connections/{CONNECTION_ID}", body=body)
        except ApiError as error:
            raise RunError(f"pointing {CONNECTION_ID!r} at the sandbox failed: {error}") from None
        self.say(f"connection {CONNECTION_ID} now points at this run's sandbox ({new})")

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
                    await asyncio.wait_for(waiter, STOP_TIMEOUT_S)
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

    # -- supervision ------------------------------------------------------------------------------

    async def _supervise(self, child: Child) -> None:
        while True:
            assert child.process is not None
            code = await child.process.wait()
            if child.stopping or self.stop_event.is_set():
                return
            _note_exit(child.exits)
            self.say(f"{child.name} (pid {child.pid}) exited with code {code}; its log:")
            self.say(child.log_tail())
            if len(child.exits) >= self.options.crash_limit:
                self._fail(
                    f"{child.name} exited {len(child.exits)} times within {CRASH_WINDOW_S:g}s; "
                    f"stopping (see {child.log_path})"
                )
                return
            delay = min(BACKOFF_MAX_S, self.options.restart_backoff_s * 2 ** (len(child.exits) - 1))
            self.say(f"restarting {child.name} in {delay:g}s")
            try:
                await asyncio.wait_for(self.stop_event.wait(), delay)
                return
            except TimeoutError:
                pass
            child.restarts += 1
            await child.start()
            self.say(f"{child.name} restarted (pid {child.pid})")

    def _start_supervising(self, child: Child) -> None:
        task = asyncio.create_task(self._supervise(child), name=child.name)
        self.supervisors[child.name] = task
        self.tasks.append(task)

    async def _watch_broker(self) -> None:
        while not self.stop_event.is_set():
            broker = self.broker
            assert broker is not None
            if not broker.running and not await self._heal(broker):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), BROKER_WATCH_S)

    async def _heal(self, dead: EmbeddedBroker) -> bool:
        """The embedded broker died: a new one, the topics, then control and the pipeline again.
        False when the run is to stop instead (crash limit, no broker could be started)."""
        _note_exit(self.broker_exits)
        port = dead.port
        tail = "\n".join("    " + line for line in dead.log_tail(2000).splitlines()[-15:])
        self.say(f"the embedded broker (pid {dead.pid}) exited; its log:\n{tail}")
        await dead.stop_async()
        exits = len(self.broker_exits)
        if exits >= self.options.crash_limit:
            self._fail(
                f"the embedded broker exited {exits} times within {CRASH_WINDOW_S:g}s; "
                f"stopping (see {self.logs / 'broker.log'})"
            )
            return False
        self.say(
            "the broker kept topics, offsets and messages in flight in memory only: stopping "
            "control and the pipeline, starting a new broker, then both again (control's "
            "recovery re-drives from the ledger what has no outcome yet)"
        )
        for name in list(self.supervisors):
            task = self.supervisors.pop(name)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for child in reversed(self.children):  # pipeline, then control
            await child.stop(HEAL_STOP_TIMEOUT_S)
        delay = min(BACKOFF_MAX_S, self.options.restart_backoff_s * 2 ** (exits - 1))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), delay)
        if self.stop_event.is_set():
            return False
        try:
            broker = await self._new_broker(port)
        except RunError as error:
            self._fail(str(error))
            return False
        self.broker = broker
        self.broker_url = broker.url
        self.child_env["SIGNAL_BROKER"] = broker.url
        try:
            await declare_topics(broker.url)
        except Exception as error:
            self._fail(
                f"the new embedded broker at {broker.bootstrap_servers} refused the topics "
                f"({type(error).__name__}: {error})"
            )
            return False
        for child in self.children:
            child.stopping = False
            child.exits.clear()  # exits while the broker was gone are not the child's own crashes
            await child.start()
            self._start_supervising(child)
        self.broker_restarts += 1
        where = "same port" if broker.port == port else f"port {port} was taken, children moved"
        pids = ", ".join(f"{c.name} pid {c.pid}" for c in self.children)
        self.say(
            f"healed: new embedded broker at {broker.bootstrap_servers} ({where}), "
            f"broker pid {broker.pid}, {pids}"
        )
        return True

    async def _new_broker(self, port: int) -> EmbeddedBroker:
        """A fresh embedded broker on `port`, or on a free port when that one cannot be bound."""
        log_path = self.logs / "broker.log"
        broker = EmbeddedBroker(port=port, log_path=log_path)
        try:
            await broker.start_async()
            return broker
        except BrokerStartError as error:
            self.say(f"no new broker on port {port} ({error}); trying a free port")
        broker = EmbeddedBroker(log_path=log_path)
        try:
            await broker.start_async()
        except BrokerStartError as error:
            raise RunError(f"the embedded broker could not be started again: {error}") from None
        return broker

    def _fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message
        self.stop_event.set()

    # -- demo traffic and status ----------------------------------------------------------------

    async def _simulate(self, client: ApiClient) -> None:
        from simulators.certain.send import send_paced
        from simulators.certain.traffic import generate

        seed = self.options.seed
        if seed is None:
            seed = random.SystemRandom().randrange(1, 10**9)
        self.say(f"simulator: {self.options.rate:g} changes/s, seed {seed}")
        rounds = 0
        while not self.stop_event.is_set():
            items = await asyncio.to_thread(
                generate, seed + rounds, self.options.rate, DEMO_CHUNK_S, datetime.now(UTC)
            )
            try:
                total = await send_paced(items, client, stop=self.stop_event, on_batch=self._count)
            except ApiError as error:
                self.say(f"simulator: {error}; retrying in 2s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), 2.0)
                continue
            self.sent += total.sent
            rounds += 1

    def _count(self, total: Any) -> None:
        self.rejected = len(total.rejected)

    async def _status_loop(self, client: ApiClient) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), self.options.status_every)
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
        return f"[{stamp}] " + " · ".join(parts)

    # -- stop -----------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self.stop_event.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        for child in reversed(self.children):  # pipeline, then control
            await child.stop()
        if self.sandbox is not None:
            with contextlib.suppress(Exception):
                await self.sandbox.stop()
        if self.certain_demo is not None:
            await self.certain_demo.stop()
        if self.broker is not None:
            await self.broker.stop_async()


def _note_exit(exits: deque[float]) -> None:
    """Count an exit now in `exits`, keeping only those within `CRASH_WINDOW_S` (a crash loop
    of a child or of the broker is `crash_limit` of them)."""
    now = time.monotonic()
    exits.append(now)
    while exits and now - exits[0] > CRASH_WINDOW_S:
        exits.popleft()


def run(options: RunOptions) -> int:
    try:
        return asyncio.run(Runner(options).run())
    except KeyboardInterrupt:
        return 130
