"""The metrics routes come with the application: `create_app` mounts them, with the runtime
status handed in through `ApiDeps` and active flows counted from the configuration."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from stream.api import create_app
from stream.api.deps import DEPS, ApiDeps
from stream.metrics.lag import GroupLag, LagReading
from stream.metrics.queries import RuntimeStatus
from tests.api.api_harness import Api


def _active_live_flows(api: Api) -> int:
    return sum(
        1
        for view in api.config.flow_views()
        if view.flow.active and view.complete and view.flow.mode.value == "live"
    )


async def test_metrics_routes_are_served_by_the_factory(api: Api) -> None:
    response = await api.get("/api/v1/metrics/summary", params={"period": "24h"})
    assert response.status == 200
    body = await response.json()
    assert body["active_flows"] == _active_live_flows(api)
    assert body["processing_status"]["last_change_seen_at"] is None

    scrape = await api.get("/metrics")
    assert scrape.status == 200
    assert (await api.get("/api/v1/activity", params={"limit": "5"})).status == 200
    assert (await api.get("/api/v1/metrics/troubleshooting")).status == 200


async def test_metrics_routes_need_the_token_and_check_parameters(api: Api) -> None:
    assert (await api.client.get("/api/v1/metrics/summary")).status == 401
    assert (await api.client.get("/metrics")).status == 401
    bad = await api.get("/api/v1/metrics/summary", params={"period": "forever"})
    assert bad.status == 400
    assert (await bad.json())["errors"][0]["path"] == "period"


async def test_runtime_status_comes_through_deps(api: Api) -> None:
    seen = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)

    async def status() -> RuntimeStatus:
        lag = LagReading((GroupLag("signal-deliveries", "signal-pipeline", 7),))
        return RuntimeStatus(last_change_seen_at=seen, consumer_lag=lag, workers_alive=2)

    app = create_app(replace(_deps_of(api), runtime_status=status))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/api/v1/metrics/summary", headers=api.auth)
        assert response.status == 200
        processing = (await response.json())["processing_status"]
        assert processing["last_change_seen_at"] == seen.isoformat()
        assert processing["consumer_lag"] == 7


async def test_last_change_seen_is_reported_without_a_runtime_provider(api: Api) -> None:
    seen = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
    app = create_app(replace(_deps_of(api), last_change_seen=lambda: seen))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/api/v1/metrics/summary", headers=api.auth)
        processing = (await response.json())["processing_status"]
        assert processing["last_change_seen_at"] == seen.isoformat()
        assert processing["consumer_lag"] is None


def _deps_of(api: Api) -> ApiDeps:
    app: Any = api.client.app
    deps: ApiDeps = app[DEPS]
    return deps
