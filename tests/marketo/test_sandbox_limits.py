"""Instance limits (reference §4, checklist item 14), with an injected clock so nothing waits."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp

from simulators.marketo.sandbox import ManualClock
from tests.marketo.conftest import MarketoHttp, signed_in
from tests.support.fixtures import MakeSandbox

DESCRIBE = "/rest/v1/leads/describe.json"
CHICAGO = ZoneInfo("America/Chicago")


def chicago(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=CHICAGO).timestamp()


async def test_606_at_call_101_within_20_s_then_rolls(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock(1_790_000_000.0)
    _sb, mkto = await signed_in(make_sandbox, http, clock=clock)
    for _ in range(50):
        assert (await mkto.call("GET", DESCRIBE)).body["success"] is True
    clock.advance(10)
    for _ in range(50):
        assert (await mkto.call("GET", DESCRIBE)).body["success"] is True
    over = await mkto.call("GET", DESCRIBE)
    assert over.status == 200 and over.body["success"] is False
    assert over.body["errors"] == [
        {"code": "606", "message": "Max rate limit '100' exceeded with in '20' secs"}
    ]
    clock.advance(9.9)  # first 50 are 19.9 s old: still inside the window
    assert (await mkto.call("GET", DESCRIBE)).code == "606"
    clock.advance(0.1)  # now exactly 20 s old: out of the rolling window
    for _ in range(50):
        assert (await mkto.call("GET", DESCRIBE)).body["success"] is True
    assert (await mkto.call("GET", DESCRIBE)).code == "606"


async def test_615_with_11_concurrent_slow_calls(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    sb, mkto = await signed_in(make_sandbox, http)
    sb.set_latency(400)
    replies = await asyncio.gather(*(mkto.call("GET", DESCRIBE) for _ in range(11)))
    codes = sorted(r.code or "ok" for r in replies)
    assert codes == ["615"] + ["ok"] * 10
    refused = next(r for r in replies if r.code)
    assert refused.status == 200
    assert refused.body["errors"][0]["message"] == "Concurrent access limit '10' reached"
    sb.set_latency(0)
    assert (await mkto.call("GET", DESCRIBE)).body["success"] is True


async def test_607_until_next_chicago_midnight(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock(chicago(2026, 11, 28, 23, 59, 50))  # CST, UTC-6
    _sb, mkto = await signed_in(make_sandbox, http, clock=clock, daily_quota=3)
    for _ in range(3):
        assert (await mkto.call("GET", DESCRIBE)).body["success"] is True
    over = await mkto.call("GET", DESCRIBE)
    assert over.body["errors"] == [{"code": "607", "message": "Daily quota reached"}]
    clock.set(chicago(2026, 11, 28, 23, 59, 59))
    assert (await mkto.call("GET", DESCRIBE)).code == "607"
    clock.set(chicago(2026, 11, 29, 0, 0, 0))
    assert (await mkto.call("GET", DESCRIBE)).body["success"] is True


async def test_607_resets_at_central_daylight_midnight(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock(chicago(2026, 7, 1, 23, 30, 0))  # CDT, UTC-5
    sb, mkto = await signed_in(make_sandbox, http, clock=clock, daily_quota=1)
    sb.exhaust_quota()
    assert (await mkto.call("GET", DESCRIBE)).code == "607"
    clock.set(datetime(2026, 7, 2, 4, 59, 59, tzinfo=ZoneInfo("UTC")).timestamp())
    assert (await mkto.call("GET", DESCRIBE)).code == "607"
    clock.set(datetime(2026, 7, 2, 5, 0, 0, tzinfo=ZoneInfo("UTC")).timestamp())
    assert (await mkto.call("GET", DESCRIBE)).body["success"] is True


async def test_refused_calls_do_not_spend_quota(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    sb, mkto = await signed_in(
        make_sandbox, http, rate_limit_calls=1, daily_quota=2, clock=ManualClock(1e9)
    )
    assert (await mkto.call("GET", DESCRIBE)).body["success"] is True
    for _ in range(3):
        assert (await mkto.call("GET", DESCRIBE)).code == "606"
    assert sb.quota.used(sb.now()) == 1


async def test_413_for_body_over_1_mb(mkto: MarketoHttp) -> None:
    pad = "x" * (1_048_576 - 100)
    fits = await mkto.sync([{"email": "big@example.com"}], pad=pad)
    assert fits.status == 200 and fits.body["success"] is True
    too_big = await mkto.sync([{"email": "big@example.com"}], pad=pad + "x" * 200)
    assert too_big.status == 413


async def test_414_for_uri_over_8_kb_and_post_method_get_escape(
    mkto: MarketoHttp,
) -> None:
    values = ",".join(f"someone.with.a.long.address{i}@example.com" for i in range(250))
    params = {"filterType": "email", "filterValues": values}
    long_get = await mkto.call("GET", "/rest/v1/leads.json", params=params)
    assert long_get.status == 414
    as_post = await mkto.call("POST", "/rest/v1/leads.json", params={"_method": "GET"}, data=params)
    assert as_post.status == 200 and as_post.body["result"] == []


async def test_gzip_when_accepted_and_large(mkto: MarketoHttp) -> None:
    gz = await mkto.call("GET", DESCRIBE, headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("Content-Encoding") == "gzip"
    assert gz.body["success"] is True  # aiohttp decompressed it
    plain = await mkto.call("GET", DESCRIBE, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    small = await mkto.call("GET", "/rest/v1/lead/1.json", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers
