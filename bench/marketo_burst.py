"""Marketo client burst: calls per 1,000 leads and leads/s against the rate-limited sandbox.

    python -m bench.marketo_burst [--leads 20000] [--shares 1.0,0.5]

The sandbox enforces Marketo's real limits (100 calls / rolling 20 s, 10 in flight), so a burst
larger than one window's worth of calls has to wait out whole windows. Figures are printed next
to what the limits allow: 300 leads x (100 x share) calls / 20 s in steady state, and the least
time the window imposes on a burst of this many calls.

Smoke mode (`bench/__init__.py`) shrinks the limit to 4 calls / 1 s, on the sandbox and in the
client alike, and the burst to 1,500 leads (5 upsert calls), so each share still has to wait out
whole windows, in about a second each.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter

from pydantic import SecretStr

from bench import arguments, sized
from simulators.marketo.sandbox import Sandbox, SandboxConfig
from stream.marketo.client import MarketoClient
from stream.marketo.results import CallRecord
from stream.marketo.settings import (
    MARKETO_CALLS_PER_WINDOW,
    MARKETO_LEAD_BATCH,
    MARKETO_WINDOW_S,
    MarketoSettings,
)


async def burst(
    leads: int,
    share: float,
    limit: int = MARKETO_CALLS_PER_WINDOW,
    window_s: float = MARKETO_WINDOW_S,
) -> None:
    sandbox = Sandbox(SandboxConfig(rate_limit_calls=limit, rate_limit_window_s=window_s))
    await sandbox.start("127.0.0.1", 0)
    records: list[CallRecord] = []
    settings = MarketoSettings(
        connection_id="bench",
        base_url=sandbox.url,
        client_id="sandbox-client",
        client_secret=SecretStr("sandbox-secret"),
        rate_share=share,
        rate_limit_calls=limit,
        rate_window_s=window_s,
    )
    batch = [
        {"email": f"bench{i}@example.com", "firstName": "Bench", "lastName": f"L{i}"}
        for i in range(leads)
    ]
    try:
        async with MarketoClient(settings, on_call=records.append) as client:
            await client.authenticate()
            start = time.monotonic()
            results = await client.upsert_leads(batch)
            elapsed = time.monotonic() - start
    finally:
        await sandbox.stop()

    ok = sum(1 for r in results if r.ok)
    sync = [r for r in records if r.endpoint == "/rest/v1/leads.json"]
    codes = Counter(c.code for c in sandbox.calls() if c.code)
    per_window = settings.calls_per_window
    steady_bound = MARKETO_LEAD_BATCH * per_window / window_s
    min_calls = math.ceil(leads / MARKETO_LEAD_BATCH)
    windows_waited = math.ceil(min_calls / per_window) - 1
    min_elapsed = windows_waited * window_s
    burst_bound = leads / min_elapsed if min_elapsed else float("inf")
    print(
        f"share {share:.2f} ({per_window}/{limit} calls per "
        f"{window_s:g} s): {leads:,} leads, {ok:,} ok"
    )
    print(
        f"  calls       {len(sync)} upsert calls ({min_calls} minimum) = "
        f"{len(sync) * 1000 / leads:.2f} per 1,000 leads"
    )
    print(f"  throughput  {leads / elapsed:,.0f} leads/s over {elapsed:.1f} s")
    print(
        f"  bound       {steady_bound:,.0f} leads/s steady state "
        f"({MARKETO_LEAD_BATCH} x {per_window} / {window_s:g} s)"
    )
    if min_elapsed:
        print(
            f"              this burst needs at least {min_elapsed:g} s "
            f"({windows_waited} full window{'s' if windows_waited > 1 else ''}): "
            f"at most {burst_bound:,.0f} leads/s"
        )
    else:
        print("              this burst fits in one window: only latency and concurrency bound it")
    print(f"  refused     606: {codes.get('606', 0)}  615: {codes.get('615', 0)}")


async def main() -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--leads", type=int, default=sized(20_000, 1_500))
    parser.add_argument("--shares", default="1.0,0.5")
    args = parser.parse_args()
    limit, window_s = sized((MARKETO_CALLS_PER_WINDOW, MARKETO_WINDOW_S), (4, 1.0))
    for share in (float(s) for s in args.shares.split(",") if s.strip()):
        await burst(args.leads, share, limit, window_s)


if __name__ == "__main__":
    asyncio.run(main())
