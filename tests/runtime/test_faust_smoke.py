"""A real Faust worker on the embedded broker with Signal's settings.

Each test runs `tests.runtime.faust_echo_app` in subprocesses against the session broker, with
its own topics and consumer group. Join times are printed (run with `-s`), never asserted.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.broker import EmbeddedBroker
from stream.faust_settings import faust_settings
from stream.topics import PARTITIONS as TOPIC_PARTITIONS
from stream.topics import TopicSpec, declare_topics
from tests.support.processes import ServiceProcess, clean_env
from tests.support.topics import produce
from tests.support.waiting import until

PARTITIONS = 4
JOIN_TIMEOUT = 60.0


@dataclass
class EchoWorker(ServiceProcess):
    """One `faust worker` process of the echo app, with its assignment log."""

    name: str = ""
    events: Path = Path()
    started_at: float = 0.0

    def start(self) -> EchoWorker:
        self.events.unlink(missing_ok=True)
        self.started_at = time.monotonic()
        super().start()
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

        async def holds() -> bool:
            return predicate()

        await until(holds, f"{self.name}: {what}", within=within, alive=self.exited)
        return time.monotonic() - self.started_at

    async def wait_joined(self) -> float:
        return await self.wait_for(lambda: bool(self.current()), "partition assignment")


class EchoGroup:
    """Echo workers sharing one fresh consumer group and topic pair."""

    def __init__(self, broker: EmbeddedBroker, workdir: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.source = f"echo-in-{suffix}"
        self.sink = f"echo-out-{suffix}"
        self.group_id = f"echo-{suffix}"  # Faust's consumer group is its app id
        self._workdir = workdir
        self._env = {
            "ECHO_BROKER": broker.url,
            "ECHO_APP_ID": self.group_id,
            "ECHO_IN": self.source,
            "ECHO_OUT": self.sink,
            "ECHO_PARTITIONS": str(PARTITIONS),
            "ECHO_DATA_DIR": str(workdir / "data"),
        }
        self.workers: list[EchoWorker] = []

    def worker(self, name: str) -> EchoWorker:
        events = self._workdir / f"{name}-events.jsonl"
        worker = EchoWorker(
            args=["worker", "-l", "info"],
            log_path=self._workdir / f"{name}.log",
            env=clean_env(**self._env, ECHO_WORKER=name, ECHO_EVENTS=str(events)),
            module="tests.runtime.faust_echo_app",
            name=name,
            events=events,
        )
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
    records = [(topic, str(n).encode(), json.dumps({"n": n}).encode()) for n in numbers]
    await produce(broker.bootstrap_servers, records)


async def _committed(broker: EmbeddedBroker, group_id: str, topic: str) -> int:
    """Messages of `topic` the consumer group has committed, over all partitions."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        offsets = [await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
    finally:
        await consumer.stop()
    return sum(offset or 0 for offset in offsets)


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

    async def read_until(self, count: int, within: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while len(self.records) < count and time.monotonic() < deadline:
            batches = await self._consumer.getmany(timeout_ms=300)
            for messages in batches.values():
                self.records.extend(json.loads(m.value) for m in messages)
        return self.records

    async def settle(self, quiet: float = 2.0) -> list[dict[str, Any]]:
        """Keep reading until nothing new arrives for `quiet` seconds (to catch duplicates).

        A deliberate lower bound: a duplicate that would arrive later than `quiet` after the
        last record goes unseen, so this waits on purpose instead of polling for a condition.
        """
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
@pytest.mark.e2e
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
@pytest.mark.e2e
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

        # Offsets are committed while running, not only at shutdown: once the group has
        # committed all 100, a worker killed outright must not get its work redelivered.
        async def all_committed() -> bool:
            return await _committed(broker, echo.group_id, source) == 100

        await until(all_committed, "offsets of all 100 committed", alive=first.exited)
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
@pytest.mark.e2e
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
