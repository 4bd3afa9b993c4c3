"""Sending simulated traffic: paced into the ingest API, or written to a JSONL file.

Pacing follows each item's offset from the start, so `--rate 20` means twenty changes a second
arrive in control as they would from Certain, a few batches a second rather than one huge post.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from apiclient.client import ApiClient
from apiclient.rows import IngestResult
from simulators.certain.pacing import TICK_S, due_batches
from simulators.certain.traffic import SimChange

BatchHook = Callable[[IngestResult], None]


def to_line(item: SimChange) -> str:
    return json.dumps(item.body, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(items: Sequence[SimChange], out: IO[str]) -> int:
    for item in items:
        out.write(to_line(item) + "\n")
    return len(items)


def write_file(items: Sequence[SimChange], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        return write_jsonl(items, out)


async def send_paced(
    items: Sequence[SimChange],
    client: ApiClient,
    *,
    stop: asyncio.Event | None = None,
    tick: float = TICK_S,
    on_batch: BatchHook | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> IngestResult:
    """Post the items as they fall due; returns what the API accepted and rejected.

    A slow API delays later batches rather than dropping them: every item is posted exactly once
    (unless `stop` is set first).
    """
    total = IngestResult()
    first = 1
    async for batch in due_batches(items, stop=stop, tick=tick, clock=clock):
        result = await client.post_changes([item.body for item in batch], first_line=first)
        first += len(batch)
        total.merge(result)
        if on_batch is not None:
            on_batch(total)
    return total
