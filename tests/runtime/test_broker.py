"""The embedded broker starts on a free port, answers Kafka, and never outlives its owner."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from stream.broker import (
    BrokerStartError,
    EmbeddedBroker,
    bootstrap_servers,
    normalize_broker_url,
    probe_cluster_id,
    resolve_broker,
)
from stream.topics import ALL_TOPICS, TopicMismatch, TopicSpec, declare_topics
from tests.support.processes import pid_alive
from tests.support.topics import produce, read_topic
from tests.support.waiting import until_sync

REPO = Path(__file__).resolve().parents[2]


def _wait_gone(pid: int, what: str = "") -> None:
    until_sync(lambda: not pid_alive(pid), what or f"process {pid} gone")


class _Settings:
    def __init__(self, broker: str | None) -> None:
        self.broker = broker


@pytest.mark.integration
def test_starts_answers_and_stops_without_orphan() -> None:
    broker = EmbeddedBroker()
    broker.start()
    pid = broker.pid
    assert pid is not None
    try:
        assert broker.url == f"kafka://127.0.0.1:{broker.port}"
        assert probe_cluster_id("127.0.0.1", broker.port) == broker.cluster_id
    finally:
        broker.stop()
    assert not broker.running
    _wait_gone(pid)
    assert probe_cluster_id("127.0.0.1", broker.port, timeout=0.2) is None
    broker.stop()  # a second stop is harmless


@pytest.mark.integration
async def test_two_brokers_side_by_side_are_independent() -> None:
    async with EmbeddedBroker() as one, EmbeddedBroker() as two:
        assert one.port != two.port
        assert one.cluster_id != two.cluster_id
        await declare_topics(one.url, [TopicSpec("only-on-one", 2, "k", "test")])
        producer = AIOKafkaProducer(bootstrap_servers=two.bootstrap_servers)
        await producer.start()
        try:
            metadata = await producer.client.fetch_all_metadata()
        finally:
            await producer.stop()
        assert "only-on-one" not in metadata.topics()
    _wait_gone(one.pid or 0)
    _wait_gone(two.pid or 0)


@pytest.mark.integration
async def test_produce_and_consume_roundtrip(broker: EmbeddedBroker) -> None:
    topic = TopicSpec(f"roundtrip-{uuid.uuid4().hex[:8]}", 2, "k", "test")
    await declare_topics(broker.url, [topic])
    await produce(
        broker.bootstrap_servers,
        [(topic.name, str(n).encode(), json.dumps({"n": n}).encode()) for n in range(10)],
    )
    records = await read_topic(
        broker.bootstrap_servers, topic.name, until=lambda read: len(read) >= 10
    )
    seen = {json.loads(r.value)["n"] for r in records}
    assert seen == set(range(10))


@pytest.mark.integration
def test_dies_with_its_parent_process(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from stream.broker import EmbeddedBroker\n"
        "b = EmbeddedBroker(); b.start(); print(b.pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert pid_alive(pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    _wait_gone(pid, "broker gone after its parent was SIGKILLed")


def test_missing_binary_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")
    broker = EmbeddedBroker()
    with pytest.raises(BrokerStartError, match="CALF_TANSU_BIN"):
        broker.start()
    assert broker.pid is None


@pytest.mark.integration
def test_binary_that_exits_reports_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'cannot open storage' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BrokerStartError, match=r"exited with code 3[\s\S]*cannot open storage"):
        EmbeddedBroker(binary=str(fake)).start()


@pytest.mark.integration
def test_binary_that_never_answers_times_out(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    broker = EmbeddedBroker(binary=str(fake), start_timeout=0.5)
    with pytest.raises(BrokerStartError, match="did not answer"):
        broker.start()
    assert not broker.running


@pytest.mark.integration
def test_port_held_by_another_broker_is_not_mistaken_for_ours(broker: EmbeddedBroker) -> None:
    clash = EmbeddedBroker(port=broker.port, start_timeout=5)
    with pytest.raises(BrokerStartError):
        clash.start()
    assert not clash.running
    assert probe_cluster_id("127.0.0.1", broker.port) == broker.cluster_id


@pytest.mark.integration
async def test_start_async_refuses_a_port_held_by_another_broker(broker: EmbeddedBroker) -> None:
    """The async start goes through the same attempts as `start`: the clash is refused and its
    process stopped, the broker holding the port is left alone."""
    clash = EmbeddedBroker(port=broker.port, start_timeout=5)
    with pytest.raises(BrokerStartError):
        await clash.start_async()
    assert not clash.running
    assert probe_cluster_id("127.0.0.1", broker.port) == broker.cluster_id


@pytest.mark.integration
async def test_start_async_reports_a_binary_that_exits(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'cannot open storage' >&2\nexit 3\n")
    fake.chmod(0o755)
    broker = EmbeddedBroker(binary=str(fake))
    with pytest.raises(BrokerStartError, match=r"exited with code 3[\s\S]*cannot open storage"):
        await broker.start_async()
    assert not broker.running


def test_signal_broker_set_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")  # starting would fail loudly
    url, started = resolve_broker(_Settings("kafka.internal:9092"))
    assert (url, started) == ("kafka://kafka.internal:9092", None)
    monkeypatch.setenv("SIGNAL_BROKER", "kafka://a:9092;b:9093")
    assert resolve_broker() == ("kafka://a:9092;b:9093", None)


@pytest.mark.integration
def test_signal_broker_unset_starts_one() -> None:
    url, started = resolve_broker(_Settings(None))
    assert started is not None
    try:
        assert url == started.url
        assert started.running
    finally:
        started.stop()


def test_broker_url_forms() -> None:
    assert normalize_broker_url("host:9092") == "kafka://host:9092"
    assert normalize_broker_url("kafka://a:1,b:2") == "kafka://a:1;b:2"
    assert bootstrap_servers("kafka://a:1;b") == ["a:1", "b:9092"]
    with pytest.raises(ValueError, match="scheme"):
        normalize_broker_url("http://host:9092")
    with pytest.raises(ValueError):
        normalize_broker_url("  ")


@pytest.mark.integration
async def test_declare_topics_creates_contract_and_is_idempotent(broker: EmbeddedBroker) -> None:
    first = await declare_topics(broker.url)
    again = await declare_topics(broker.url)
    assert first == again == {spec.name: spec.partitions for spec in ALL_TOPICS}


@pytest.mark.integration
async def test_concurrent_declarations_agree(broker: EmbeddedBroker) -> None:
    spec = TopicSpec(f"declared-concurrently-{uuid.uuid4().hex[:8]}", 3, "k", "test")
    results = await asyncio.gather(*(declare_topics(broker.url, [spec]) for _ in range(3)))
    assert all(r == {spec.name: 3} for r in results)


@pytest.mark.integration
async def test_auto_created_topic_with_too_few_partitions_is_refused(
    broker: EmbeddedBroker,
) -> None:
    name = f"auto-created-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(name, b"x")
        auto_partitions = len(await producer.partitions_for(name))
    finally:
        await producer.stop()
    spec = TopicSpec(name, auto_partitions + 4, "k", "test")
    with pytest.raises(TopicMismatch, match=name):
        await declare_topics(broker.url, [spec])


@pytest.mark.integration
def test_started_and_stopped_brokers_leave_no_process_behind() -> None:
    """Other test modules keep session brokers of their own, so only new children count."""
    before = _child_brokers()
    for _ in range(2):
        with EmbeddedBroker() as started:
            assert started.pid in _child_brokers()
    leftovers = _child_brokers() - before
    assert not leftovers, f"leftover brokers: {sorted(leftovers)}"


def _child_brokers() -> set[int]:
    return {
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and _is_child_broker(int(pid), os.getpid())
    }


def _is_child_broker(pid: int, parent: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    fields = stat.rsplit(") ", 1)[1].split()
    return fields[0] != "Z" and int(fields[1]) == parent and b"tansu" in cmdline
