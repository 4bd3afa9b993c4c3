"""A burst through a pipeline worker to a sandbox enforcing Marketo's limits.

    python -m bench.delivery_burst [--changes 20000]

One mass status change: `--changes` registrations, each a create_update_lead delivery with a
campaign, produced at once to `certain-changes`; one pipeline worker
(`bench.pipeline_throughput`'s rig) routes and delivers them to the sandbox, which enforces
Marketo's limits (100 calls per rolling 20 s, 10 in flight, 606/615 beyond). Figures: the time
from the first change produced to the last outcome read, the calls by endpoint next to the
fewest possible (one upsert per 300 leads, one campaign request per 100, one token), the
refusals, and the bound the rolling window sets on that many calls (whole windows waited). The
goal (issue 13) is 110 % of that bound (44 s for 20,000) with the fewest calls and no 606/615.

The worker is warmed up first (its token, a filtered change), so the calls counted are the
burst's. Smoke mode: 600 changes with the sandbox's and the worker's limit left as Marketo's (a
burst that fits one window).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer

from bench import arguments, sized
from bench.pipeline_throughput import (
    FLOWS,
    event_change,
    memory_mb,
    outcomes_consumer,
    registration,
    rig,
    send_all,
    wait_outcomes,
)
from stream.marketo.settings import MARKETO_CALLS_PER_WINDOW, MARKETO_LEAD_BATCH, MARKETO_WINDOW_S

CAMPAIGN_LEADS = 100
"""Leads per Request Campaign call (Marketo's maximum)."""


async def run(changes: int) -> None:
    async with rig() as bench:
        consumer = outcomes_consumer(bench.broker.bootstrap_servers)
        await consumer.start()
        try:
            warm = f"w{uuid.uuid4().hex[:6]}"
            await send_all(bench.producer, [event_change(), registration(warm, 0, "US")])
            await wait_outcomes(consumer, warm, FLOWS, 120)
            before = len(bench.sandbox.state.calls)
            burst = f"b{uuid.uuid4().hex[:6]}"
            made = [registration(burst, n, "US") for n in range(changes)]
            started, started_wall = time.monotonic(), time.time()
            await send_all(bench.producer, made)
            routed, done, quarters = await read_outcomes(consumer, burst, changes, 900)
            calls = bench.sandbox.state.calls[before:]
            _, peak = memory_mb(bench.worker.pid)
        finally:
            await consumer.stop()

    elapsed = done - started
    by_endpoint = Counter(c.endpoint for c in calls)
    codes = Counter(c.code for c in calls if c.code)
    upserts = math.ceil(changes / MARKETO_LEAD_BATCH)
    campaigns = math.ceil(changes / CAMPAIGN_LEADS)
    fewest = upserts + campaigns + 1
    windows = math.ceil(fewest / MARKETO_CALLS_PER_WINDOW) - 1
    bound = windows * MARKETO_WINDOW_S
    goal = 1.1 * bound
    print(
        f"{changes:,} registrations in one burst, one pipeline worker, sandbox at Marketo's limits"
    )
    print(
        f"  drained in {elapsed:.1f} s ({changes / elapsed:,.0f} changes/s); "
        f"worker peak RSS {peak:.0f} MiB"
    )
    print(
        "  calls       "
        + ", ".join(f"{endpoint} {n}" for endpoint, n in sorted(by_endpoint.items()))
        + f" ({len(calls)} in all; fewest {upserts} upserts + {campaigns} campaign requests"
        + " + 1 token, the token taken at warm-up)"
    )
    print(f"  refused     606: {codes.get('606', 0)}  615: {codes.get('615', 0)}")
    if calls:
        at = sorted(c.at - started_wall for c in calls)
        print(
            f"  timeline    first call {at[0]:.1f} s after the first change, last {at[-1]:.1f} s, "
            f"last outcome {elapsed:.1f} s; busiest {MARKETO_WINDOW_S:g} s: "
            f"{busiest(at, MARKETO_WINDOW_S)} calls; routing done {routed - started:.1f} s"
        )
        print(
            "  routed      "
            + ", ".join(
                f"{q}% {t - started:.1f} s" for q, t in zip((25, 50, 75), quarters, strict=False)
            )
            + " (a call can go only once its batch's changes are routed)"
        )
        # Call n + 100 cannot go before call n's window has passed, so the last call follows
        # call n - 200 by two windows at least: how soon the first calls went sets the end.
        w = MARKETO_CALLS_PER_WINDOW
        marks = sorted(
            n for n in {1, len(at) - 2 * w, w, len(at) - w, 2 * w, len(at)} if 1 <= n <= len(at)
        )
        print("  calls sent  " + ", ".join(f"#{n} {at[n - 1]:.1f} s" for n in marks))
    if bound:
        verdict = "met" if elapsed <= goal else "not met"
        print(
            f"  bound       {fewest} calls at {MARKETO_CALLS_PER_WINDOW} per "
            f"{MARKETO_WINDOW_S:g} s wait out {windows} whole windows: {bound:g} s; "
            f"goal ≤ {goal:g} s: {verdict} "
            f"({elapsed / bound:.0%} of the bound)"
        )
    else:
        print(f"  bound       {fewest} calls fit one window: only latency and concurrency bound it")


async def read_outcomes(
    consumer: AIOKafkaConsumer, prefix: str, changes: int, within: float
) -> tuple[float, float, list[float]]:
    """Read the burst's outcomes until every change has its `FLOWS` final ones; returns when
    routing was done (every change's `queued` record, which route publishes with the delivery
    request, was in), when the last outcome was, and when a quarter, a half and three quarters
    of the changes were routed (monotonic)."""
    marker = f'"change_id":"{prefix}-'.encode()
    queued_mark = b'"status":"queued"'
    queued = final = 0
    routed: float | None = None
    quarters: list[float] = []
    deadline = time.monotonic() + within
    while final < changes * FLOWS:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {final} of {changes * FLOWS} outcomes in {within:g}s")
        batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
        for records in batches.values():
            for r in records:
                if r.value is None or marker not in r.value:
                    continue
                if queued_mark in r.value:
                    queued += 1
                else:
                    final += 1
        while len(quarters) < 3 and queued >= changes * (len(quarters) + 1) / 4:
            quarters.append(time.monotonic())
        if routed is None and queued >= changes:
            routed = time.monotonic()
    now = time.monotonic()
    return routed or now, now, quarters


def busiest(times: Sequence[float], window_s: float) -> int:
    """The most calls (sorted send times) in any rolling `window_s`."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - window_s:
            first += 1
        most = max(most, last - first + 1)
    return most


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--changes", type=int, default=sized(20_000, 600))
    args = parser.parse_args(argv)
    asyncio.run(run(args.changes))


if __name__ == "__main__":
    main()
