"""A real Faust worker on the embedded broker with Signal's settings.

Each test runs `tests.runtime.faust_echo_app` in subprocesses against the session broker, with
its own topics and consumer group. Join times are printed (run with `-s`), never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.broker import EmbeddedBroker, die_with_parent
from stream.faust_settings import faust_settings
from stream.topics import PARTITIONS as TOPIC_PARTITIONS
from stream.topics import TopicSpec, declare_topics

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 4
JOIN_TIMEOUT = 60.0


class EchoWorker:
    """One `faust worker` process of the echo app, with its assignment log."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.events = workdir / f"{name}-events.jsonl"
        self.log_path = workdir / f"{name}.log"
        self._env = {**env, "ECHO_WORKER": name, "ECHO_EVENTS": str(self.events)}
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> EchoWorker:
        self.events.unlink(missing_ok=True)
        self.started_at = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.runtime.faust_echo_app", "worker", "-l", "info"],
                cwd=REPO,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        return self

    def assignments(self) -> list[dict[str, Any]]:
        if not self.events.exists():
            return []
        lines = self.events.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def current(self) -> set[int]:
        """Partitions of the input topic this worker holds now (empty before its first join)."""
        events = self.assignments()
        return set(events[-1]["partitions"]) if events else set()

    async def wait_for(
        self, predicate: Callable[[], bool], what: str, within: float = JOIN_TIMEOUT
    ) -> float:
        """Seconds from process start until `predicate` held."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited early:\n{self.log_tail()}")
            if predicate():
                return time.monotonic() - self.started_at
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name}: {what} not seen in {within:g}s\n{self.log_tail()}")

    async def wait_joined(self) -> float:
        return await self.wait_for(lambda: bool(self.current()), "partition assignment")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.process = None
        return process.returncode

    def log_tail(self, limit: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[-limit:].decode("utf-8", "replace")


class EchoGroup:
    """Echo workers sharing one fresh consumer group and topic pair."""

    def __init__(self, broker: EmbeddedBroker, workdir: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.source = f"echo-in-{suffix}"
        self.sink = f"echo-out-{suffix}"
        self._workdir = workdir
        self._env = {
            **os.environ,
            "ECHO_BROKER": broker.url,
            "ECHO_APP_ID": f"echo-{suffix}",
            "ECHO_IN": self.source,
            "ECHO_OUT": self.sink,
            "ECHO_PARTITIONS": str(PARTITIONS),
            "ECHO_DATA_DIR": str(workdir / "data"),
        }
        self.workers: list[EchoWorker] = []

    def worker(self, name: str) -> EchoWorker:
        worker = EchoWorker(name, self._env, self._workdir)
        self.workers.append(worker)
        return worker


@pytest.fixture
def echo(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[EchoGroup]:
    group = EchoGroup(broker, tmp_path)
    yield group
    for worker in group.workers:
        worker.stop(signal.SIGKILL)


async def _declare(broker: EmbeddedBroker, *names: str) -> None:
    await declare_topics(broker.url, [TopicSpec(n, PARTITIONS, "n", "test") for n in names])


async def _produce(broker: EmbeddedBroker, topic: str, numbers: range) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for n in numbers:
            await producer.send(topic, json.dumps({"n": n}).encode(), key=str(n).encode())
        await producer.flush()
    finally:
        await producer.stop()


class OutputReader:
    """Reads the output topic from the beginning, without a consumer group."""

    def __init__(self, broker: EmbeddedBroker, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest"
        )
        self.records: list[dict[str, Any]] = []

    async def __aenter__(self) -> OutputReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def read_until(self, count: int, within: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while len(self.records) < count and time.monotonic() < deadline:
            batches = await self._consumer.getmany(timeout_ms=300)
            for messages in batches.values():
                self.records.extend(json.loads(m.value) for m in messages)
        return self.records

    async def settle(self, quiet: float = 2.0) -> list[dict[str, Any]]:
        """Keep reading until nothing new arrives for `quiet` seconds (to catch duplicates)."""
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            batches = await self._consumer.getmany(timeout_ms=300)
            for messages in batches.values():
                if messages:
                    last = time.monotonic()
                self.records.extend(json.loads(m.value) for m in messages)
        return self.records


def test_settings_keep_faust_on_loopback_and_under_the_data_dir(tmp_path: Path) -> None:
    settings = faust_settings(data_dir=tmp_path)
    app = faust.App("signal-settings-check", broker="kafka://127.0.0.1:1", **settings)
    conf = app.conf
    assert conf.web_enabled is False
    assert conf.web_bind == conf.web_host == "127.0.0.1"
    assert conf.web_port != 6066  # control's default API port
    assert conf.datadir == tmp_path / "faust" / "signal-settings-check"
    assert (tmp_path / "faust").is_dir()  # Faust creates only the last component
    assert conf.producer_acks == -1
    assert str(conf.processing_guarantee.value) == "at_least_once"
    assert conf.stream_wait_empty is True
    assert conf.broker_heartbeat_interval * 3 <= conf.broker_session_timeout
    assert conf.topic_partitions == TOPIC_PARTITIONS


def test_settings_web_port_and_overrides(tmp_path: Path) -> None:
    chosen = faust_settings(data_dir=tmp_path, web_port=0)
    assert chosen["web_enabled"] is True and chosen["web_port"] > 0
    assert faust_settings(data_dir=tmp_path, web_port=6100)["web_port"] == 6100
    assert faust_settings(data_dir=tmp_path, topic_partitions=2)["topic_partitions"] == 2


@pytest.mark.integration
async def test_worker_transforms_every_message(broker: EmbeddedBroker, echo: EchoGroup) -> None:
    source, sink = echo.source, echo.sink
    await _declare(broker, source, sink)
    worker = echo.worker("w1").start()
    joined = await worker.wait_joined()
    print(f"\nfaust worker joined its group {joined:.1f}s after process start")
    assert worker.current() == set(range(PARTITIONS))

    n = 300
    await _produce(broker, source, range(n))
    async with OutputReader(broker, sink) as reader:
        records = await reader.read_until(n)
    assert sorted(r["n"] for r in records) == list(range(n))
    assert all(r["doubled"] == 2 * r["n"] and r["worker"] == "w1" for r in records)
    assert worker.stop() == 0


@pytest.mark.integration
async def test_restart_resumes_from_committed_offsets(
    broker: EmbeddedBroker, echo: EchoGroup
) -> None:
    source, sink = echo.source, echo.sink
    await _declare(broker, source, sink)
    first = echo.worker("first").start()
    await first.wait_joined()
    await _produce(broker, source, range(100))
    async with OutputReader(broker, sink) as reader:
        assert len(await reader.read_until(100)) == 100
        # Offsets are committed every second while running, not only at shutdown: a worker
        # killed outright after going idle must not get its work redelivered.
        await asyncio.sleep(2.5)
        first.stop(signal.SIGKILL)

        second = echo.worker("second").start()
        rejoined = await second.wait_joined()
        print(f"\nrestarted worker joined {rejoined:.1f}s after process start (after SIGKILL)")
        await _produce(broker, source, range(100, 150))
        await reader.read_until(150)
        records = await reader.settle()

        third = echo.worker("third")
        assert second.stop() == 0
        await third.start().wait_joined()
        await _produce(broker, source, range(150, 160))
        await reader.read_until(160)
        records = await reader.settle()
    counts = Counter(r["n"] for r in records)
    assert set(counts) == set(range(160))
    assert [n for n, c in counts.items() if c > 1] == []
    assert {r["worker"] for r in records if r["n"] >= 150} == {"third"}


@pytest.mark.integration
async def test_two_workers_split_the_partitions(broker: EmbeddedBroker, echo: EchoGroup) -> None:
    source, sink = echo.source, echo.sink
    await _declare(broker, source, sink)
    one = echo.worker("one").start()
    await one.wait_joined()
    two = echo.worker("two").start()

    def split() -> bool:
        a, b = one.current(), two.current()
        return bool(a) and bool(b) and not (a & b) and (a | b) == set(range(PARTITIONS))

    rebalanced = await two.wait_for(split, "partitions split between both workers")
    print(f"\nsecond worker shared the partitions {rebalanced:.1f}s after process start")

    n = 200
    await _produce(broker, source, range(n))
    async with OutputReader(broker, sink) as reader:
        records = await reader.read_until(n)
    assert {r["n"] for r in records} == set(range(n))
    assert {r["worker"] for r in records} == {"one", "two"}
