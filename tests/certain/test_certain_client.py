"""The Certain source's HTTP edge against the Certain sandbox: pages (large answers read whole),
404 as an empty page, each failure sorted by what the poller does about it, and the budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from config.models import CertainSource
from simulators.certain.sandbox import CertainSandbox
from stream.broker import free_port
from stream.certain.client import (
    CertainClient,
    CertainUnauthorized,
    CertainUnavailable,
    RequestBudget,
)

EVENT = "CLIENTEV"


def source(url: str, **overrides: object) -> CertainSource:
    fields: dict[str, object] = {
        "id": "acme",
        "name": "ACME",
        "host": url,
        "account_code": "ACME",
        "username": "signal-api",
        "password": "sandbox-password",
    }
    fields.update(overrides)
    return CertainSource.model_validate(fields)


@pytest.fixture
async def sandbox() -> AsyncIterator[CertainSandbox]:
    sb = CertainSandbox(per_event=0)
    await sb.start()
    try:
        yield sb
    finally:
        await sb.stop()


async def admin(http: aiohttp.ClientSession, sb: CertainSandbox, path: str, body: object) -> None:
    async with http.post(f"{sb.url}/_sandbox/{path}", json=body) as response:
        assert response.status < 300, await response.text()


async def test_pages_are_read_whole_and_404_is_an_empty_page(sandbox: CertainSandbox) -> None:
    async with aiohttp.ClientSession() as http:
        await admin(http, sandbox, "events", {"eventCode": EVENT, "eventName": "Client"})
        await admin(http, sandbox, "registrations", {"eventCode": EVENT, "count": 1200})
        client = CertainClient(http, source(sandbox.url), RequestBudget(600))
        since = datetime.now(UTC) - timedelta(hours=1)
        first = await client.registrations(EVENT, since, 0)
        second = await client.registrations(EVENT, since, 500)
        third = await client.registrations(EVENT, since, 1000)
        after = await client.registrations(EVENT, since, 1200)
        assert [len(p.records) for p in (first, second, third)] == [500, 500, 200]
        assert first.total == 1200
        assert after.records == [] and after.total == 0
        stamps = [r["dateModified"] for r in first.records + second.records + third.records]
        assert stamps == sorted(stamps)
        assert "registrationQuestions" in first.records[0]
        events = await client.events(0)
        assert EVENT in {e["eventCode"] for e in events.records}
        detail = await client.event(EVENT)
        assert detail["eventCode"] == EVENT and "setup" in detail
        assert await client.event("NOSUCH") is None
        assert client.requests == 7


async def test_wrong_credentials_and_another_account_are_unauthorized(
    sandbox: CertainSandbox,
) -> None:
    async with aiohttp.ClientSession() as http:
        wrong = CertainClient(http, source(sandbox.url, password="nope-pw"), RequestBudget(60))
        with pytest.raises(CertainUnauthorized) as refused:
            await wrong.events(0)
        assert refused.value.status == 401
        assert "nope-pw" not in refused.value.message
        other = CertainClient(http, source(sandbox.url, account_code="OTHER"), RequestBudget(60))
        with pytest.raises(CertainUnauthorized) as forbidden:
            await other.events(0)
        assert forbidden.value.status == 403


async def test_5xx_and_no_connection_are_worth_retrying(sandbox: CertainSandbox) -> None:
    async with aiohttp.ClientSession() as http:
        await admin(http, sandbox, "faults", {"status": 503, "count": 1})
        client = CertainClient(http, source(sandbox.url), RequestBudget(60))
        with pytest.raises(CertainUnavailable) as unavailable:
            await client.events(0)
        assert unavailable.value.status == 503
        assert (await client.events(0)).records
        closed = CertainClient(http, source(f"http://127.0.0.1:{free_port()}"), RequestBudget(60))
        with pytest.raises(CertainUnavailable):
            await closed.events(0)


async def test_a_source_without_password_is_refused_before_any_call() -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(CertainUnauthorized, match="has no password"):
            CertainClient(http, source("http://127.0.0.1:9", password=None), RequestBudget(60))


async def test_the_budget_spreads_requests_over_the_minute() -> None:
    now = [0.0]
    budget = RequestBudget(60, clock=lambda: now[0])
    for _ in range(60):
        await budget.acquire()  # a minute's worth at once
    assert budget.waited_s == 0.0
    waiter = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0)
    assert not waiter.done(), "the 61st request of the minute waits"
    now[0] = 1.0  # one second later, one more token
    await asyncio.wait_for(waiter, 5)
    assert budget.waited_s > 0
    with pytest.raises(ValueError, match="per_minute must be at least 1"):
        RequestBudget(0)
