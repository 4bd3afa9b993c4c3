"""What ingest costs against a running control: changes/s accepted by `POST /api/v1/changes`
(the answer waits for the ledger commit of the outbox and the broker's acks) compared, in the same
run, with producing the same records straight to `certain-changes` with aiokafka `acks=all`.

    python -m bench.ingest_outbox [--changes 20000] [--batch 100] [--concurrency 4] [--rounds 2]

A real `csignal control` process (DuckDB file in a temporary directory) on an embedded broker;
both sides send the same batches with the same number of requests in flight and wait for each
batch's acknowledgement (a 202; the producer's acks), alternating rounds so that neither gets the
quieter machine. Printed: the best round of each and the ratio API / raw produce. Smoke mode
(`bench/__init__.py`): 300 changes, one round.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from bench import arguments, sized
from stream.broker import EmbeddedBroker
from stream.topics import CHANGES, declare_topics
from tests.e2e.chaos_support import registration_change
from tests.support.processes import ControlProcess, start_control

Batch = list[dict[str, Any]]


async def in_flight(
    batches: list[Batch], concurrency: int, send: Callable[[Batch], Awaitable[None]]
) -> float:
    """Seconds to send every batch, `concurrency` at a time, each awaited."""
    queue: asyncio.Queue[Batch] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def worker() -> None:
        while not queue.empty():
            await send(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def batches_of(prefix: str, changes: int, batch: int) -> list[Batch]:
    items = [registration_change(prefix, n) for n in range(changes)]
    return [items[i : i + batch] for i in range(0, changes, batch)]


async def through_api(control: ControlProcess, batches: list[Batch], concurrency: int) -> float:
    headers = control.auth(**{"Content-Type": "application/x-ndjson"})
    async with aiohttp.ClientSession(headers=headers) as session:

        async def send(batch: Batch) -> None:
            body = "\n".join(json.dumps(item) for item in batch).encode()
            async with session.post(f"{control.url}/api/v1/changes", data=body) as response:
                text = await response.text()
                if response.status != 202:
                    raise RuntimeError(f"POST /api/v1/changes: {response.status} {text[:300]}")

        return await in_flight(batches, concurrency, send)


async def straight_to_topic(
    broker: EmbeddedBroker, batches: list[Batch], concurrency: int
) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:

        async def send(batch: Batch) -> None:
            futures = [
                await producer.send(
                    CHANGES.name,
                    json.dumps(item, separators=(",", ":")).encode(),
                    key=item["registration"]["registrationCode"].encode(),
                )
                for item in batch
            ]
            await asyncio.gather(*futures)

        return await in_flight(batches, concurrency, send)
    finally:
        await producer.stop()


async def run(changes: int, batch: int, concurrency: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        async with EmbeddedBroker() as broker:
            await declare_topics(broker.url)
            control = await asyncio.to_thread(start_control, broker, Path(tmp) / "data")
            try:
                api_rates, raw_rates = [], []
                warm = batches_of(f"w{uuid.uuid4().hex[:6]}", batch, batch)
                await through_api(control, warm, 1)
                await straight_to_topic(broker, warm, 1)
                for _ in range(rounds):
                    raw = batches_of(f"r{uuid.uuid4().hex[:6]}", changes, batch)
                    raw_rates.append(changes / await straight_to_topic(broker, raw, concurrency))
                    api = batches_of(f"a{uuid.uuid4().hex[:6]}", changes, batch)
                    api_rates.append(changes / await through_api(control, api, concurrency))
            finally:
                await asyncio.to_thread(control.stop)
    best_api, best_raw = max(api_rates), max(raw_rates)
    print(
        f"{changes} changes per round, batches of {batch}, {concurrency} in flight, "
        f"{rounds} round(s); best round shown"
    )
    print(f"  aiokafka acks=all straight to {CHANGES.name}: {best_raw:>9,.0f} changes/s")
    print(
        f"  POST /api/v1/changes (202 after the ledger and the acks): {best_api:>9,.0f} changes/s"
    )
    print(f"  ratio API / raw produce: {best_api / best_raw:.2f}")
    rounds_text = ", ".join(f"{a:,.0f}/{r:,.0f}" for a, r in zip(api_rates, raw_rates, strict=True))
    print(f"  every round (API/raw changes/s): {rounds_text}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--changes", type=int, default=sized(20_000, 300))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=sized(2, 1))
    args = parser.parse_args(argv)
    asyncio.run(run(args.changes, args.batch, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
