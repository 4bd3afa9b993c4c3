"""Consumer lag as the dashboards show it: per (topic, group), per topic, in total.

Plain code: the figures come from `stream.metrics.consumer_lag`'s probe (the Kafka edge), and
the arithmetic is kept apart so it is tested without a broker.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

P = TypeVar("P", bound=Hashable)
"""A partition's key (aiokafka's TopicPartition where the probe calls)."""


@dataclass(frozen=True, slots=True)
class GroupLag:
    topic: str
    group: str
    lag: int


@dataclass(frozen=True, slots=True)
class LagReading:
    """One probe: lag per (topic, group)."""

    groups: tuple[GroupLag, ...] = ()

    def by_topic(self) -> dict[str, int]:
        """Each topic's lag as its slowest reader's: what is not yet done by everyone who must
        read it."""
        out: dict[str, int] = {}
        for g in self.groups:
            out[g.topic] = max(out.get(g.topic, 0), g.lag)
        return out

    def total(self) -> int:
        return sum(self.by_topic().values())


def lag_of(
    ends: Mapping[P, int],
    starts: Mapping[P, int],
    committed: Mapping[P, int],
) -> int:
    """Messages of `ends`' partitions a group has not committed yet, never negative.

    A partition without a commit (or with -1, "none") counts from its start; a commit ahead of
    the end (a broker that lost its data, a stale end) counts 0 rather than below zero.
    """
    total = 0
    for tp, end in ends.items():
        start = starts.get(tp, 0)
        done = committed.get(tp, -1)
        position = done if done >= 0 else start
        total += max(0, end - max(position, start))
    return total
