"""Latency from a change sent to Marketo's acknowledgement, and where the time goes.

    python -m bench.delivery_latency [--seconds 20] [--runs 50:0,50:150,500:0]

One pipeline worker, an embedded broker and the Marketo sandbox (`bench.pipeline_throughput`'s
rig). Each run sends changes that become a create_update_lead delivery (upsert, then the
campaign) at a steady rate for `--seconds`, with the sandbox adding `latency` ms to every call,
and reads what the worker publishes: delivery requests (`routed_at`), Marketo call records
(`started_at`, `duration_ms`) and outcomes (`processed_at`, when the answer was in). Per
delivered change, in one clock (everything runs on this machine):

- route: sent → routed (the change's hop through the broker, the route batch's wait);
- to Marketo: routed → the start of its upsert (the delivery window): the last upsert that
  started after it and before its outcome (batches go one at a time, so a call that merely
  follows the routing may be the previous batch's campaign request);
- Marketo: that upsert's start → the end of the last call before the outcome (the campaign);
- outcome: the end of that call → `processed_at`;
- total: sent → `processed_at`, the goal's "change accepted → Marketo acknowledged".

With the worker's resident memory before and after each run: a long run at 50/s
(`--seconds 1800 --runs 50:0`) is the soak of issue 13 item 8, which should show it flat.
Percentiles are over every delivered change of a run; the goal (issue 13) is p95 ≤ 500 ms and
p99 ≤ 800 ms at 50 changes/s without added latency. Smoke mode: one run of 2 s at 20/s.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer

from bench import arguments, sized
from bench.pipeline_throughput import (
    Rig,
    event_change,
    memory_mb,
    registration,
    rig,
    send_all,
)
from bench.tailing import tail
from stream.marketo.protocol import LEADS_PATH

STAGES = ("route", "to Marketo", "Marketo", "outcome", "total")


@dataclass
class Seen:
    """What the bench read back, by change id (and Marketo calls by start time)."""

    routed: dict[str, datetime] = field(default_factory=dict)
    done: dict[str, datetime] = field(default_factory=dict)
    calls: list[tuple[datetime, datetime]] = field(default_factory=list)
    upserts: list[datetime] = field(default_factory=list)
    """Start of every upsert call (`signal-api-calls` with the leads endpoint)."""


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def read_back(consumer: AIOKafkaConsumer, seen: Seen, stop: asyncio.Event) -> None:
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
        for records in batches.values():
            for record in records:
                if record.value is None:
                    continue
                data = json.loads(record.value)
                if record.topic == "signal-deliveries":
                    seen.routed.setdefault(data["change_id"], when(data["routed_at"]))
                elif record.topic == "signal-api-calls":
                    start = when(data["started_at"])
                    end = start.timestamp() + data["duration_ms"] / 1000
                    seen.calls.append((start, datetime.fromtimestamp(end, UTC)))
                    if data.get("endpoint") == LEADS_PATH:
                        seen.upserts.append(start)
                elif data.get("status") == "delivered":
                    seen.done.setdefault(data["change_id"], when(data["processed_at"]))


async def until(done: Callable[[], bool], within: float) -> None:
    """Poll `done` every 0.2 s for at most `within` s (a run reports what arrived by then)."""
    deadline = time.monotonic() + within
    while True:
        if done() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def breakdown(sent: dict[str, datetime], seen: Seen) -> dict[str, list[float]]:
    """Milliseconds per stage for every change that was delivered."""
    calls = sorted(seen.calls)
    starts = [c[0] for c in calls]
    upserts = sorted(seen.upserts)
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for change_id, at in sent.items():
        routed, done = seen.routed.get(change_id), seen.done.get(change_id)
        if routed is None or done is None:
            continue
        mine = [c for c in calls[bisect.bisect_left(starts, routed) :] if c[1] <= done]
        last = max((c[1] for c in mine), default=done)
        carried = upserts[bisect.bisect_left(upserts, routed) : bisect.bisect_left(upserts, last)]
        first = carried[-1] if carried else (mine[0][0] if mine else done)
        for name, begin, end in (
            ("route", at, routed),
            ("to Marketo", routed, first),
            ("Marketo", first, last),
            ("outcome", last, done),
            ("total", at, done),
        ):
            stages[name].append(max(0.0, (end - begin).total_seconds() * 1000))
    return stages


async def one_run(bench: Rig, rate: float, seconds: float, latency_ms: float) -> None:
    bench.sandbox.set_latency(latency_ms)
    consumer = await tail(
        [bench.broker.bootstrap_servers], "signal-deliveries", "signal-api-calls", "signal-outcomes"
    )
    seen, stop = Seen(), asyncio.Event()
    reader = asyncio.create_task(read_back(consumer, seen, stop))
    run = f"l{uuid.uuid4().hex[:6]}"
    sent: dict[str, datetime] = {}
    count = max(1, round(rate * seconds))
    rss_before, _ = memory_mb(bench.worker.pid)
    started = time.monotonic()
    try:
        for n in range(count):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            change = registration(run, n, "US")
            sent[change["changeId"]] = datetime.now(UTC)
            await bench.producer.send(
                "certain-changes", json.dumps(change).encode(), key=change["changeId"].encode()
            )
        await until(lambda: len(seen.done.keys() & sent.keys()) >= count, 120)
    finally:
        stop.set()
        await reader
        await consumer.stop()
    stages = breakdown(sent, seen)
    total = stages["total"]
    rss, peak = memory_mb(bench.worker.pid)
    print(
        f"{rate:g} changes/s for {seconds:g} s, sandbox latency {latency_ms:g} ms: "
        f"{len(total)} of {count} delivered; worker RSS {rss_before:.0f} → {rss:.0f} MiB "
        f"(peak {peak:.0f})"
    )
    for name in STAGES:
        values = stages[name]
        print(
            f"  {name:<11} p50 {pct(values, 0.5):7.0f} ms  p95 {pct(values, 0.95):7.0f} ms  "
            f"p99 {pct(values, 0.99):7.0f} ms"
        )
    if latency_ms == 0 and rate <= 50:
        ok = pct(total, 0.95) <= 500 and pct(total, 0.99) <= 800
        print(f"  goal p95 ≤ 500 ms, p99 ≤ 800 ms: {'met' if ok else 'not met'}")


async def run(runs: Sequence[tuple[float, float]], seconds: float) -> None:
    async with rig() as bench:
        await send_all(bench.producer, [event_change()])
        warm = registration(f"w{uuid.uuid4().hex[:6]}", 0, "US")
        await send_all(bench.producer, [warm])
        # The worker is ready once the warm-up change is delivered.
        await until(lambda: bool(bench.sandbox.state.campaign_runs), 120)
        for rate, latency_ms in runs:
            await one_run(bench, rate, seconds, latency_ms)


def parse_runs(text: str) -> list[tuple[float, float]]:
    return [(float(r), float(ms)) for r, ms in (part.split(":") for part in text.split(","))]


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--seconds", type=float, default=sized(20.0, 2.0))
    parser.add_argument(
        "--runs",
        default=sized("50:0,50:150,500:0", "20:0"),
        help="rate:added-latency-ms pairs, comma-separated",
    )
    args = parser.parse_args(argv)
    asyncio.run(run(parse_runs(args.runs), args.seconds))


if __name__ == "__main__":
    main()
