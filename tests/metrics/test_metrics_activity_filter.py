"""`GET /api/v1/activity?status=…&exclude_status=…`: the feed filtered by outcome status, over
HTTP (a real aiohttp server on loopback, the real store with the recorded metrics stream)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream.api.metrics_routes import add_metrics_routes
from stream.store import Store

Client = TestClient[web.Request, web.Application]

WINDOW = {"from": "2026-11-27T12:00:00Z", "to": "2026-11-28T12:00:00Z", "limit": "500"}


@pytest.fixture
async def client(metrics_store: Store) -> AsyncIterator[Client]:
    app = web.Application()
    add_metrics_routes(app, metrics_store)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def _items(client: Client, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/activity", params={**WINDOW, **params})
    assert response.status == 200, await response.text()
    items: list[dict[str, Any]] = (await response.json())["items"]
    return items


async def test_the_stream_has_the_mix_the_filter_is_for(client: Client) -> None:
    statuses = Counter(i["status"] for i in await _items(client))
    assert statuses["not_activated"] > 0 and statuses["delivered"] > 0
    assert len(statuses) >= 3


async def test_status_keeps_only_the_statuses_named(client: Client) -> None:
    everything = await _items(client)
    delivered = await _items(client, status="delivered")
    assert delivered and {i["status"] for i in delivered} == {"delivered"}
    both = await _items(client, status="delivered, failed")
    assert {i["status"] for i in both} <= {"delivered", "failed"}
    assert len(both) >= len(delivered)
    assert len(both) < len(everything)


async def test_exclude_status_drops_the_statuses_named(client: Client) -> None:
    kept = await _items(client, exclude_status="not_activated")
    assert kept and "not_activated" not in {i["status"] for i in kept}
    none_left = await _items(client, status="not_activated", exclude_status="not_activated")
    assert none_left == []


async def test_a_filtered_feed_pages_with_its_cursor(client: Client) -> None:
    params = {**WINDOW, "limit": "3", "status": "not_activated"}
    first = await (await client.get("/api/v1/activity", params=params)).json()
    assert len(first["items"]) == 3 and first["next_before"]
    second = await (
        await client.get("/api/v1/activity", params={**params, "before": first["next_before"]})
    ).json()
    assert second["items"] and {i["status"] for i in second["items"]} == {"not_activated"}
    assert second["items"][0]["time"] <= first["items"][-1]["time"]


async def test_a_blank_status_is_no_filter(client: Client) -> None:
    assert len(await _items(client, status=" ")) == len(await _items(client))


@pytest.mark.parametrize(
    ("params", "path", "named"),
    [
        ({"status": "sent"}, "status", "'sent' is not an outcome status"),
        ({"status": "delivered,DELIVERED"}, "status", "'DELIVERED'"),
        ({"exclude_status": "nope,never"}, "exclude_status", "'nope', 'never' are not outcome"),
    ],
)
async def test_an_unknown_status_is_refused_naming_it(
    client: Client, params: dict[str, str], path: str, named: str
) -> None:
    response = await client.get("/api/v1/activity", params={**WINDOW, **params})
    assert response.status == 400
    error = (await response.json())["errors"][0]
    assert error["path"] == path
    assert named in error["message"]
    assert "expected a comma-separated list of" in error["message"]
    assert "delivered" in error["message"] and "not_activated" in error["message"]
