"""Deliveries before changes in what the worker's consumer hands its agents.

Both stages of a worker read through one Faust consumer, which takes everything its fetches
buffered (about 1 MB per partition) and hands it to the agents one record at a time, waiting on
the route stage's queue when that is full. In a burst a poll held some 8,000 changes, and the
delivery requests routed from the first of them waited, unfetched, until the route stage had
taken the last: 3-15 s, while the connection's first rolling window went unused (a burst's end
is set by how soon its first calls go, since call n + 100 waits for call n's window).

Capping the records per poll alone made it worse: aiokafka drains its buffers in the order the
fetches came in, so a delivery request fetched later stayed behind the changes already buffered.
So each poll takes, first, whatever is buffered for the priority topics (`signal-deliveries`: a
connection's requests, bounded by Marketo's pace), then at most `others_per_poll` records of the
rest; what is left stays in aiokafka's buffer (its position not advanced, nothing skipped) for
the next poll, and aiokafka fetches the priority partitions again meanwhile. Acks and commits are
untouched: this only orders what the consumer has already fetched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

__all__ = ["FetchPriority", "split_poll", "use_fetch_priority"]

_ATTR = "signal_fetch_priority"


@dataclass(frozen=True)
class FetchPriority:
    topics: frozenset[str]
    """Topics whose buffered records every poll takes first, all of them."""
    others_per_poll: int
    """The most records of other topics one poll takes (the worker's route batch size: a poll
    is then about one batch of routing, and deliveries wait at most that long)."""


def split_poll(priority: FetchPriority, active: Iterable[Any]) -> tuple[set[Any], set[Any]]:
    """The active partitions of the priority topics, and the others."""
    first: set[Any] = set()
    rest: set[Any] = set()
    for tp in active:
        (first if tp.topic in priority.topics else rest).add(tp)
    return first, rest


def use_fetch_priority(app: faust.App, priority: FetchPriority) -> None:
    """Give `app`'s consumer `priority` (other apps' consumers keep Faust's order)."""
    setattr(app, _ATTR, priority)
    fetch = AIOKafkaConsumerThread._fetch_records
    if getattr(fetch, "__wrapped__", None) is not None:
        return
    original = fetch

    @wraps(original)
    async def fetch_records(
        self: AIOKafkaConsumerThread,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109 (Faust calls it so)
        max_records: int | None = None,
    ) -> Mapping[Any, Any]:
        wanted: FetchPriority | None = getattr(self.app, _ATTR, None)
        if wanted is None or not active_partitions:
            return await original(
                self, consumer, active_partitions, timeout=timeout, max_records=max_records
            )
        first, rest = split_poll(wanted, active_partitions)
        cap = wanted.others_per_poll
        if max_records is not None:
            cap = min(cap, max_records)
        records: dict[Any, Any] = {}
        if first:
            # An empty set would mean every partition to aiokafka.
            records.update(await original(self, consumer, first, timeout=0, max_records=None))
        if rest:
            records.update(await original(self, consumer, rest, timeout=0, max_records=cap))
        if records or not timeout:
            return records
        # Nothing buffered: wait for the next fetch of any active partition, as Faust does.
        return await original(self, consumer, active_partitions, timeout=timeout, max_records=cap)

    AIOKafkaConsumerThread._fetch_records = fetch_records  # type: ignore[method-assign]
