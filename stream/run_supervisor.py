"""What `csignal run` keeps alive: the broker, control and the pipeline worker.

Apart from the runner because keeping processes alive is a policy of its own (restart delays,
crash loops, healing a dead broker) while the runner decides what the run is made of (demo,
console, status lines) and when it ends.

A child that exits unexpectedly is reported with the end of its log and restarted after a growing
delay (1 s, 2 s, 4 s … 30 s). Both services are built to restart — offsets in Kafka, state in
DuckDB — so a restart loses nothing and keeps a demo or a small install running through a
transient fault (a broker hiccup, a crashed agent). A child that keeps crashing (`CRASH_LIMIT`
exits within `CRASH_WINDOW_S`) stops the run with a clear message instead: restarting a
deterministic failure only hides it.

The run heals when the embedded broker dies: the broker keeps topics, offsets and anything in
flight in memory only, so a new one starts empty under services whose consumer groups and
producers believe otherwise. The supervisor stops control and the pipeline (SIGTERM, then SIGKILL
after `HEAL_STOP_TIMEOUT_S`), starts a new broker on the same port (so every configured bootstrap
address stays valid; on another free port, handed to the children, if that one cannot be bound),
declares the topics, and starts control and the pipeline again. The ledger is the source of truth
(DESIGN 2, crash contract): control's recovery re-drives what had no final outcome. A broker that
keeps dying (`CRASH_LIMIT` exits within `CRASH_WINDOW_S`) stops the run like any other crash loop.
Control or the pipeline dying alone is restarted alone.

The embedded broker is also rolled over on purpose when it holds more than
`SIGNAL_EMBEDDED_BROKER_MAX_MB` of memory: it keeps every message it was ever sent and its
fetches slow down as it fills (a 30-minute soak at 50 changes/s took it to 1 GiB and the
route stage's p95 from 44 ms to 5 s). A rollover is a heal without the crash: control and the
pipeline stop cleanly first (the pipeline finishes its calls, control records what reached it),
then the broker, and everything starts again on a new, empty one.

Whenever control starts against an embedded broker this run has just started (the run's start,
a heal, a rollover) it is told so (`SIGNAL_FRESH_BROKER`, that start only): nothing from before
its start can be in flight, so its recovery re-drives at once what the ledger holds without an
outcome instead of a grace period later. A child restarted alone, under a broker that lived on,
does not get it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from stream.broker import BrokerStartError, EmbeddedBroker, normalize_broker_url
from stream.run_child import STOP_TIMEOUT_S, Child
from stream.topics import TopicMismatch, declare_topics

__all__ = [
    "BACKOFF_MAX_S",
    "CRASH_LIMIT",
    "CRASH_WINDOW_S",
    "FRESH_BROKER_ENV",
    "HEAL_STOP_TIMEOUT_S",
    "RunError",
    "Supervisor",
]

FRESH_BROKER_ENV = "SIGNAL_FRESH_BROKER"
"""Set for the start of a child that follows a broker start (see the module docstring)."""
ROLLOVER_CHECK_S = 5.0
"""How often the embedded broker's memory is read."""
ROLLOVER_MIN_INTERVAL_S = 60.0
"""The least time between two rollovers, whatever the broker holds."""
HEAL_STOP_TIMEOUT_S = 5.0
"""Grace for control and the pipeline when the broker died under them: a clean stop lets control
checkpoint DuckDB, but a Faust worker flushing to a dead broker may wait for nothing."""
BROKER_WATCH_S = 0.5
CRASH_LIMIT = 5
CRASH_WINDOW_S = 120.0
BACKOFF_MAX_S = 30.0


class RunError(Exception):
    """The run cannot go on; the message says why and what to look at."""


class Supervisor:
    """The broker (embedded, or the cluster `SIGNAL_BROKER` names) and the two children, kept
    running until `stop_event` is set; a crash loop is handed to `fail`."""

    def __init__(
        self,
        logs: Path,
        env: dict[str, str],
        stop_event: asyncio.Event,
        say: Callable[[str], None],
        fail: Callable[[str], None],
        *,
        crash_limit: int = CRASH_LIMIT,
        restart_backoff_s: float = 1.0,
        broker_max_bytes: int = 0,
    ) -> None:
        """`broker_max_bytes`: roll the embedded broker over past this much resident memory
        (0: never)."""
        self.logs = logs
        self.env = env
        """The children's environment; a healed broker on another port updates it in place."""
        self.stop_event = stop_event
        self.say = say
        self.fail = fail
        self.crash_limit = crash_limit
        self.restart_backoff_s = restart_backoff_s
        self.broker: EmbeddedBroker | None = None
        self.broker_url = ""
        self.children: list[Child] = []
        self.supervisors: dict[str, asyncio.Task[None]] = {}
        self.broker_exits: deque[float] = deque()
        self.broker_restarts = 0
        self.broker_max_bytes = broker_max_bytes
        self.broker_rollovers = 0
        self.rollover_check_s = ROLLOVER_CHECK_S
        self.rollover_min_interval_s = ROLLOVER_MIN_INTERVAL_S
        self._rolled_at = time.monotonic()
        self._rollover_asked = False

    # -- start ----------------------------------------------------------------------------------

    async def start_broker(self, configured: str) -> None:
        """The cluster `configured` names, or an embedded broker when it is empty; the topics
        declared on it either way."""
        if configured:
            try:
                self.broker_url = normalize_broker_url(configured)
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
        self.env["SIGNAL_BROKER"] = self.broker_url
        try:
            await declare_topics(self.broker_url)
        except TopicMismatch as error:
            raise RunError(str(error)) from None
        except Exception as error:
            raise RunError(
                f"the broker at {self.broker_url} cannot be used ({type(error).__name__}: "
                f"{error}); check SIGNAL_BROKER and that the cluster is up"
            ) from None

    async def start_children(self) -> list[asyncio.Task[None]]:
        """Control, then the pipeline, each supervised; the broker watched when it is ours.
        Returns the watcher's task (none for a cluster) for the runner to end with the run."""
        self.env.pop(FRESH_BROKER_ENV, None)  # for a start after a broker start only
        control = Child("control", self.env, self.logs / "control.log")
        pipeline = Child("pipeline", self.env, self.logs / "pipeline.log")
        self.children = [control, pipeline]
        for child in self.children:
            await child.start(self._fresh())
        broker_pid = f", broker pid {self.broker.pid}" if self.broker is not None else ""
        self.say(f"control pid {control.pid}, pipeline pid {pipeline.pid}{broker_pid}")
        for child in self.children:
            self._start_supervising(child)
        if self.broker is None:
            return []
        return [asyncio.create_task(self._watch_broker(), name="broker")]

    # -- supervision ----------------------------------------------------------------------------

    async def _supervise(self, child: Child) -> None:
        while True:
            assert child.process is not None
            code = await child.process.wait()
            if child.stopping or self.stop_event.is_set():
                return
            note_exit(child.exits)
            self.say(f"{child.name} (pid {child.pid}) exited with code {code}; its log:")
            self.say(child.log_tail())
            if len(child.exits) >= self.crash_limit:
                self.fail(
                    f"{child.name} exited {len(child.exits)} times within {CRASH_WINDOW_S:g}s; "
                    f"stopping (see {child.log_path})"
                )
                return
            delay = self._backoff(len(child.exits))
            self.say(f"restarting {child.name} in {delay:g}s")
            try:
                async with asyncio.timeout(delay):
                    await self.stop_event.wait()
                return
            except TimeoutError:
                pass
            child.restarts += 1
            await child.start()
            self.say(f"{child.name} restarted (pid {child.pid})")

    def _backoff(self, exits: int) -> float:
        return min(BACKOFF_MAX_S, self.restart_backoff_s * 2.0 ** (exits - 1))

    def _start_supervising(self, child: Child) -> None:
        self.supervisors[child.name] = asyncio.create_task(self._supervise(child), name=child.name)

    async def _stop_supervising(self) -> None:
        for name in list(self.supervisors):
            task = self.supervisors.pop(name)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def ask_rollover(self) -> None:
        """Roll the embedded broker over at the watcher's next look, whatever it holds
        (`kill -USR1` to `csignal run`: before a known burst, or to reclaim its memory now)."""
        if self.broker is None:
            self.say("SIGUSR1: no embedded broker to roll over (SIGNAL_BROKER names a cluster)")
            return
        self.say("SIGUSR1: the embedded broker is rolled over at once")
        self._rollover_asked = True

    def _fresh(self) -> dict[str, str]:
        """The environment a child's start after a broker start adds: the embedded broker is
        ours and new; a cluster is neither."""
        return {FRESH_BROKER_ENV: "1"} if self.broker is not None else {}

    async def _watch_broker(self) -> None:
        checked = time.monotonic()
        while not self.stop_event.is_set():
            broker = self.broker
            assert broker is not None
            if not broker.running:
                if not await self._heal(broker):
                    return
            elif self._rollover_asked:
                self._rollover_asked = False
                if not await self._roll_over(broker, broker.resident_bytes(), asked=True):
                    return
                checked = time.monotonic()
            elif self.broker_max_bytes and time.monotonic() - checked >= self.rollover_check_s:
                checked = time.monotonic()
                held = broker.resident_bytes()
                if (
                    held is not None
                    and held > self.broker_max_bytes
                    and checked - self._rolled_at >= self.rollover_min_interval_s
                ):
                    if not await self._roll_over(broker, held):
                        return
                    checked = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BROKER_WATCH_S):
                    await self.stop_event.wait()

    async def _roll_over(
        self, full: EmbeddedBroker, held: int | None, *, asked: bool = False
    ) -> bool:
        """The embedded broker holds more than it may (or the operator asked): stop control
        and the pipeline cleanly, then the broker, and start all three again on a new, empty
        broker. False when the run is to stop instead (no new broker could be started, or the
        run is stopping)."""
        mib = 1024 * 1024
        holds = f"holds {held / mib:,.0f} MiB" if held is not None else "holds an unknown amount"
        why = (
            "as asked (SIGUSR1)"
            if asked
            else f"more than SIGNAL_EMBEDDED_BROKER_MAX_MB={self.broker_max_bytes // mib}"
        )
        self.say(
            f"the embedded broker {holds}, {why}: rolling it over to a new, empty one. Control "
            "and the pipeline stop cleanly first; what the old broker held is in the ledger, and "
            "control's recovery re-drives what has no outcome yet"
        )
        await self.stop_children()
        port = full.port
        await full.stop_async()
        if self.stop_event.is_set():
            return False
        if not await self._replace_broker(port):
            return False
        self.broker_rollovers += 1
        self._rolled_at = time.monotonic()
        self.say(
            f"rolled over: new embedded broker at {self.broker_url} "
            f"(rollover {self.broker_rollovers}), {self._pids()}"
        )
        return True

    async def _heal(self, dead: EmbeddedBroker) -> bool:
        """The embedded broker died: a new one, the topics, then control and the pipeline again.
        False when the run is to stop instead (crash limit, no broker could be started)."""
        note_exit(self.broker_exits)
        port = dead.port
        tail = "\n".join("    " + line for line in dead.log_tail(2000).splitlines()[-15:])
        self.say(f"the embedded broker (pid {dead.pid}) exited; its log:\n{tail}")
        await dead.stop_async()
        exits = len(self.broker_exits)
        if exits >= self.crash_limit:
            self.fail(
                f"the embedded broker exited {exits} times within {CRASH_WINDOW_S:g}s; "
                f"stopping (see {self.logs / 'broker.log'})"
            )
            return False
        self.say(
            "the broker kept topics, offsets and messages in flight in memory only: stopping "
            "control and the pipeline, starting a new broker, then both again (control's "
            "recovery re-drives from the ledger what has no outcome yet)"
        )
        await self.stop_children(HEAL_STOP_TIMEOUT_S)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._backoff(exits)):
                await self.stop_event.wait()
        if self.stop_event.is_set():
            return False
        if not await self._replace_broker(port):
            return False
        self.broker_restarts += 1
        assert self.broker is not None
        broker = self.broker
        where = "same port" if broker.port == port else f"port {port} was taken, children moved"
        self.say(
            f"healed: new embedded broker at {broker.bootstrap_servers} ({where}), {self._pids()}"
        )
        return True

    async def _replace_broker(self, port: int) -> bool:
        """A new embedded broker (on `port` if it can be bound), its topics, then control and
        the pipeline started again on it; False (and the run failed) when that cannot be."""
        try:
            broker = await self._new_broker(port)
        except RunError as error:
            self.fail(str(error))
            return False
        self.broker = broker
        self.broker_url = broker.url
        self.env["SIGNAL_BROKER"] = broker.url
        try:
            await declare_topics(broker.url)
        except Exception as error:
            self.fail(
                f"the new embedded broker at {broker.bootstrap_servers} refused the topics "
                f"({type(error).__name__}: {error})"
            )
            return False
        for child in self.children:
            child.stopping = False
            child.exits.clear()  # exits while the broker was gone are not the child's own crashes
            await child.start(self._fresh())
            self._start_supervising(child)
        return True

    def _pids(self) -> str:
        broker = f"broker pid {self.broker.pid}, " if self.broker is not None else ""
        return broker + ", ".join(f"{c.name} pid {c.pid}" for c in self.children)

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

    # -- stop -----------------------------------------------------------------------------------

    def kill_children(self) -> None:
        """A second Ctrl-C: no grace for anyone."""
        for child in self.children:
            child.kill_now()

    async def stop_children(self, grace: float = STOP_TIMEOUT_S) -> None:
        """The pipeline, then control, so that control records what the pipeline flushed;
        each gets `grace` after SIGTERM before SIGKILL."""
        await self._stop_supervising()
        for child in reversed(self.children):
            await child.stop(grace)

    async def stop_broker(self) -> None:
        """Last, so that services flush while their transport is still there."""
        if self.broker is not None:
            await self.broker.stop_async()


def note_exit(exits: deque[float]) -> None:
    """Count an exit now in `exits`, keeping only those within `CRASH_WINDOW_S` (a crash loop
    of a child or of the broker is `crash_limit` of them)."""
    now = time.monotonic()
    exits.append(now)
    while exits and now - exits[0] > CRASH_WINDOW_S:
        exits.popleft()
