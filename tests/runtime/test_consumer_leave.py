"""A consumer stopped after its broker has gone: `stop_within` ends within its bound, closes what
aiokafka's stop left open and raises nothing, and the leave at generation 0 that cannot be sent
is logged and forgotten (`leave_at_generation_zero`).

Before, aiokafka's fetcher, closed with the broker gone, raised the CancelledError of a fetch
task of its own, and `stop_within` let it through to its caller as if that caller had been
cancelled."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.broker import EmbeddedBroker
from stream.consumer_leave import _unless_cancelled, leave_at_generation_zero, stop_within

pytestmark = pytest.mark.integration

TOPIC = "leave-test"


async def joined_consumer(broker: EmbeddedBroker, **options: object) -> AIOKafkaConsumer:
    """A consumer of a group of its own that has read a record: it joined at generation 0 (the
    embedded broker's first) and is fetching."""
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, b"x")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=broker.bootstrap_servers,
        group_id="leave-group",
        auto_offset_reset="earliest",
        **options,
    )
    await consumer.start()
    await asyncio.wait_for(consumer.getone(), 60)
    assert consumer._coordinator.generation == 0
    return consumer


def closed(consumer: AIOKafkaConsumer) -> bool:
    fetch_tasks = consumer._fetcher._pending_tasks
    return all(task.done() for task in fetch_tasks) and not consumer._client._conns


async def stopped_with_the_broker_gone(
    caplog: pytest.LogCaptureFixture, within_s: float, **options: object
) -> tuple[AIOKafkaConsumer, list[str]]:
    """A joined consumer, its broker stopped, then `stop_within(consumer, within_s)`: that
    stop ended without raising, reported itself cut short, and took no longer than its bound
    (and 30 s at most). Returns the consumer and what `signal.consumer` logged."""
    leave_at_generation_zero()
    caplog.set_level(logging.INFO, logger="signal.consumer")
    async with EmbeddedBroker() as broker:
        consumer = await joined_consumer(broker, **options)
        await broker.stop_async()
        started = time.monotonic()
        left = await stop_within(consumer, within_s=within_s)
    assert left is False
    assert time.monotonic() - started < min(within_s + 5, 30)
    return consumer, [r.getMessage() for r in caplog.records if r.name == "signal.consumer"]


async def test_a_leave_the_gone_broker_cannot_take_is_logged_and_the_stop_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without auto-commit, aiokafka's stop reaches the leave at once: it fails, is logged, and
    the stop ends with aiokafka's own cancellation, which no longer reaches the caller."""
    consumer, messages = await stopped_with_the_broker_gone(
        caplog, within_s=25, enable_auto_commit=False
    )
    assert any(m.startswith("leaving group leave-group failed: ") for m in messages), messages
    assert any("had its stop cut short by aiokafka" in m for m in messages), messages
    assert consumer._coordinator.generation == -1  # reset: nothing is left to leave
    assert closed(consumer)


async def test_a_stop_held_by_the_gone_broker_is_cut_short_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With auto-commit, aiokafka's stop retries the last commit against the gone broker: it is
    cut short at the bound, and closing its fetcher raises nothing to the caller."""
    consumer, messages = await stopped_with_the_broker_gone(caplog, within_s=2)
    assert any("had not left its group after 2 s" in m for m in messages), messages
    assert closed(consumer)


async def test_a_cancellation_of_the_stop_itself_still_goes_through() -> None:
    """`_unless_cancelled` swallows a step's own CancelledError (aiokafka cancelling a task of
    its own) and any other error of it, but not the cancellation of the task that stops: that
    caller is being stopped in turn and must see it. No broker: the steps are plain awaitables."""
    foreign = asyncio.get_running_loop().create_future()
    foreign.cancel()  # cancelled by someone else, as aiokafka cancels its fetch tasks
    await _unless_cancelled(foreign)

    async def failing() -> None:
        raise OSError("connection reset")

    await _unless_cancelled(failing())

    entered = asyncio.Event()

    async def slow_close() -> None:
        entered.set()
        await asyncio.sleep(60)

    stopping = asyncio.ensure_future(_unless_cancelled(slow_close()))
    await entered.wait()
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
