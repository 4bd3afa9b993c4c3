"""Fetch waits that grow while a consumer finds nothing and drop back as soon as it finds records.

aiokafka keeps one fetch in flight per broker for as long as a consumer has partitions, asking
the broker to hold it at most `fetch_max_wait_ms` when there is nothing to read. Real Kafka
answers a held fetch as soon as records arrive, but the embedded broker holds it for the whole
wait regardless, so the services ask for short waits (20-100 ms) to keep a change's hops quick
(`stream.faust_settings.FETCH_MAX_WAIT_MS`). Idle, those short waits were the whole cost of an
idle Signal: 96 empty fetches a second, at some 2 ms of the broker's CPU each, made an idle
`csignal run` use about a third of a core (broker 23 %, pipeline 9 %, control 5 %).

So each empty answer doubles the consumer's next wait, up to `IDLE_WAIT_MS`, and any answer
with records (or an error to report) sets it back to the short wait. Under load every fetch
finds records and nothing changes; the price is paid once per quiet spell, by the first record
after it, which waits at most `IDLE_WAIT_MS` longer at each hop that was idle.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

__all__ = ["IDLE_WAIT_MS", "FetchWait", "adapt_fetch_wait", "adapt_when_started"]

IDLE_WAIT_MS = 250
"""The longest a consumer that keeps finding nothing asks the broker to hold a fetch."""


class FetchWait:
    """The wait one consumer's fetcher asks for, and what its fetches found (for tests and
    figures)."""

    def __init__(self, fetcher: Any, short_ms: int, idle_ms: int) -> None:
        self._fetcher = fetcher
        self.short_ms = short_ms
        self.idle_ms = max(short_ms, idle_ms)
        self.fetches = 0
        self.empty = 0
        fetcher._fetch_max_wait_ms = short_ms

    @property
    def wait_ms(self) -> int:
        """The wait the next fetch asks for."""
        return int(self._fetcher._fetch_max_wait_ms)

    def answered(self, found: bool) -> None:
        self.fetches += 1
        if found:
            self._fetcher._fetch_max_wait_ms = self.short_ms
        else:
            self.empty += 1
            self._fetcher._fetch_max_wait_ms = min(self.idle_ms, self.wait_ms * 2)


def adapt_fetch_wait(
    consumer: AIOKafkaConsumer, short_ms: int, idle_ms: int = IDLE_WAIT_MS
) -> FetchWait:
    """Make a started `consumer`'s fetches wait `short_ms` while they find records, doubling to
    `idle_ms` while they find none."""
    fetcher: Any = consumer._fetcher
    if fetcher is None:
        raise RuntimeError("adapt_fetch_wait needs a started consumer (it has no fetcher yet)")
    wait = FetchWait(fetcher, short_ms, idle_ms)
    process: Callable[..., Awaitable[bool]] = fetcher._proc_fetch_request

    async def process_then_adapt(assignment: Any, node_id: int, request: Any) -> bool:
        # aiokafka's answer: True when the fetch buffered records or an error for a partition.
        found = await process(assignment, node_id, request)
        wait.answered(bool(found))
        return found

    # The fetch loop calls `self._proc_fetch_request`, so an attribute of this fetcher replaces
    # the method for it alone.
    fetcher._proc_fetch_request = process_then_adapt
    consumer.signal_fetch_wait = wait
    return wait


def adapt_when_started(
    consumer: AIOKafkaConsumer, short_ms: int, idle_ms: int = IDLE_WAIT_MS
) -> None:
    """`adapt_fetch_wait` once `consumer` has started, for consumers started by others (Faust's
    consumer thread starts the one it creates)."""
    # Through a weak reference and the class's method: a closure holding the consumer, stored on
    # the consumer, would make a cycle, and a consumer never started would then be freed (and
    # warn that it was never closed) only at a later collection, outside its test or owner.
    ref = weakref.ref(consumer)
    start = type(consumer).start

    async def start_then_adapt() -> None:
        started = ref()
        if started is None:
            return
        await start(started)
        del started.start  # the class's method again
        adapt_fetch_wait(started, short_ms, idle_ms)

    consumer.start = start_then_adapt
