"""Limit compliance against a sandbox that enforces Marketo's limits (scaled window for speed).

The client is configured with the same numbers the sandbox enforces; the logic is the one that
runs against 100 calls / 20 s in production, only the window is shorter.
"""

from __future__ import annotations

import asyncio
from typing import Any

from simulators.marketo.sandbox import Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.settings import MarketoSettings
from tests.support.fixtures import MakeSandbox
from tests.support.marketo import settings_for as default_settings


def settings_for(sb: Sandbox, **overrides: Any) -> MarketoSettings:
    """The shared settings as one burst's connection, backing off a little longer on 615."""
    values: dict[str, Any] = {"connection_id": "conn-burst", "concurrency_backoff_s": 0.05}
    return default_settings(sb, **{**values, **overrides})


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_burst_of_5000_uses_17_calls_and_never_trips_a_limit(
    make_sandbox: MakeSandbox,
) -> None:
    sb = await make_sandbox(
        rate_limit_calls=6, rate_limit_window_s=1.0, max_concurrent=3, latency_ms=40
    )
    settings = settings_for(sb, rate_limit_calls=6, rate_window_s=1.0, max_in_flight=3)
    leads = [{"email": f"burst{i}@example.com", "firstName": "B"} for i in range(5000)]
    async with MarketoClient(settings) as client:
        results = await client.upsert_leads(leads)
    assert all(r.ok and r.status == "created" for r in results)
    assert len(sb.state.leads) == 5000
    sync = sb.calls("leads.sync")
    assert len(sync) == 17  # ceil(5000 / 300)
    codes = [c.code for c in sb.calls()]
    assert "606" not in codes
    assert "615" not in codes
    assert max_in_any_window([c.at for c in sync], 1.0) <= 6


async def test_concurrent_callers_share_the_limits(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox(rate_limit_calls=8, rate_limit_window_s=0.5, max_concurrent=2)
    settings = settings_for(sb, rate_limit_calls=8, rate_window_s=0.5, max_in_flight=2)
    async with MarketoClient(settings) as client:
        await asyncio.gather(
            *(client.get_leads("email", [f"n{i}@example.com"]) for i in range(30)),
            *(client.upsert_leads([{"email": f"u{i}@example.com"}]) for i in range(10)),
        )
    codes = [c.code for c in sb.calls()]
    assert "606" not in codes
    assert "615" not in codes
    assert len(sb.calls("leads.filter")) == 30
    assert len(sb.calls("leads.sync")) == 10


async def test_rate_share_leaves_room_for_other_integrations(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox(rate_limit_calls=10, rate_limit_window_s=0.5)
    settings = settings_for(sb, rate_limit_calls=10, rate_window_s=0.5, rate_share=0.5)
    async with MarketoClient(settings) as client:
        await asyncio.gather(*(client.get_leads("email", [f"n{i}@x.com"]) for i in range(15)))
    times = [c.at for c in sb.calls("leads.filter")]
    assert len(times) == 15
    assert max_in_any_window(times, 0.5) <= 5


async def test_606_from_a_shared_instance_is_waited_out(make_sandbox: MakeSandbox) -> None:
    # The instance allows fewer calls than this client believes: others are using it too.
    sb = await make_sandbox(rate_limit_calls=4, rate_limit_window_s=0.5)
    settings = settings_for(sb, rate_limit_calls=100, rate_window_s=0.5, max_in_flight=10)
    leads = [{"email": f"s{i}@example.com"} for i in range(3000)]
    async with MarketoClient(settings) as client:
        results = await client.upsert_leads(leads)
    assert all(r.ok for r in results)
    sync = sb.calls("leads.sync")
    assert sum(1 for c in sync if c.success) == 10
    assert any(c.code == "606" for c in sync)


async def test_615_from_a_shared_instance_is_waited_out(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox(max_concurrent=2, latency_ms=30)
    settings = settings_for(sb, max_in_flight=10, concurrency_backoff_s=0.02)
    async with MarketoClient(settings) as client:
        results = await client.upsert_leads([{"email": f"c{i}@example.com"} for i in range(3000)])
    assert all(r.ok for r in results)
    sync = sb.calls("leads.sync")
    assert sum(1 for c in sync if c.success) == 10
    assert any(c.code == "615" for c in sync)
