"""Idempotency of deliveries: a (change, flow) already delivered is not delivered again.

The deliver agent keeps the keys of delivered pairs in a Faust table (changelog-backed, so it
survives a restart and moves with its partition); this module is the pure part: the key, the
split of a batch into fresh and duplicate requests, and the outcome a duplicate gets.

A replay is an operator asking to send again on purpose, so its key includes the replay id; a
retry or resubmit of a pair that was delivered meanwhile is a duplicate (resubmitting a succeeded
item is a no-op).
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from datetime import datetime

from stream.messages import DeliveryRequest, OutcomeRecord, OutcomeStatus
from stream.pipeline.deliver import Result, outcome_for

__all__ = ["delivery_key", "duplicate_outcome", "split_duplicates"]

SEP = "\x1f"


def delivery_key(request: DeliveryRequest) -> str:
    key = f"{request.change_id}{SEP}{request.flow_id}"
    if request.replay_id:
        key += f"{SEP}replay{SEP}{request.replay_id}"
    return key


def split_duplicates(
    requests: Sequence[DeliveryRequest], delivered: Container[str]
) -> tuple[list[int], list[int]]:
    """Indices of requests to deliver, and of duplicates (delivered before, or earlier in this
    batch)."""
    fresh: list[int] = []
    duplicates: list[int] = []
    taken: set[str] = set()
    for index, request in enumerate(requests):
        key = delivery_key(request)
        if key in taken or key in delivered:
            duplicates.append(index)
        else:
            taken.add(key)
            fresh.append(index)
    return fresh, duplicates


def duplicate_outcome(request: DeliveryRequest, now: datetime) -> OutcomeRecord:
    return outcome_for(
        request,
        Result(
            OutcomeStatus.SKIPPED_DUPLICATE,
            reason="already delivered (same change and flow); not sent again",
        ),
        now,
    )
