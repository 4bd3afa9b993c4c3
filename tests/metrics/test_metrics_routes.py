"""The metrics routes over HTTP (a real aiohttp server on loopback, the real store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config.models import Account
from simulators.certain.demo_account import CONNECTION_ID, SECRET_ENV, demo_account
from stream.api.metrics_routes import add_metrics_routes, config_providers
from stream.control.config_service import ConfigService
from stream.control.secret_store import SecretStore
from stream.metrics import RuntimeStatus
from stream.metrics.definitions import Mode
from stream.metrics.lag import GroupLag, LagReading
from stream.store import Store
from tests.metrics.metrics_stream_gen import NOW


@pytest.fixture
async def client(metrics_store: Store) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async def runtime() -> RuntimeStatus:
        lag = LagReading((GroupLag("signal-outcomes", "signal-control", 3),))
        return RuntimeStatus(last_change_seen_at=NOW, consumer_lag=lag, workers_alive=1)

    def flows(mode: Mode) -> int:
        return {"live": 4, "test": 1}[mode]

    app = web.Application()
    add_metrics_routes(app, metrics_store, runtime=runtime, active_flows=flows)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


EXPLICIT = {"from": "2026-11-27T12:00:00Z", "to": "2026-11-28T12:00:00Z"}


async def test_summary_over_http(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/api/v1/metrics/summary", params={"mode": "test", **EXPLICIT})
    assert response.status == 200
    body = await response.json()
    assert body["mode"] == "test" and body["active_flows"] == 1
    assert body["period"]["from"] == "2026-11-27T12:00:00+00:00"
    assert body["processing_status"]["consumer_lag"] == 3
    assert body["processing_status"]["consumer_lag_by_topic"] == {"signal-outcomes": 3}
    assert body["processing_status"]["last_change_seen_at"] == NOW.isoformat()
    assert len(body["registration_activity"]) == 24


async def test_troubleshooting_and_feed_over_http(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/api/v1/metrics/troubleshooting", params=EXPLICIT)
    assert response.status == 200
    assert (await response.json())["mode"] == "live"

    first = await (await client.get("/api/v1/activity", params={**EXPLICIT, "limit": "3"})).json()
    assert len(first["items"]) == 3 and first["next_before"]
    second = await (
        await client.get(
            "/api/v1/activity", params={**EXPLICIT, "limit": "3", "before": first["next_before"]}
        )
    ).json()
    assert second["items"][0]["time"] <= first["items"][-1]["time"]
    assert {i["change_id"] + i["flow_id"] for i in first["items"]}.isdisjoint(
        i["change_id"] + i["flow_id"] for i in second["items"]
    )


async def test_prometheus_scrape(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = await response.text()
    assert "# TYPE signal_outcome_attempts_total counter" in text
    assert "signal_workers_alive 1" in text
    assert 'signal_consumer_lag{group="signal-control",topic="signal-outcomes"} 3' in text


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/api/v1/metrics/summary", {"mode": "prod"}, "mode"),
        ("/api/v1/metrics/summary", {"period": "yesterday"}, "period"),
        ("/api/v1/metrics/summary", {"period": "0h"}, "period"),
        ("/api/v1/metrics/troubleshooting", {"period": "900d"}, "period"),
        ("/api/v1/metrics/troubleshooting", {"from": "2026-11-28T12:00:00"}, "from"),
        ("/api/v1/metrics/troubleshooting", {"from": "noon"}, "from"),
        ("/api/v1/activity", {**EXPLICIT, "period": "24h"}, "period"),
        ("/api/v1/activity", {"from": EXPLICIT["to"], "to": EXPLICIT["from"]}, "period"),
        ("/api/v1/activity", {"limit": "0"}, "limit"),
        ("/api/v1/activity", {"limit": "many"}, "limit"),
        ("/api/v1/activity", {"before": "garbage"}, "before"),
    ],
)
async def test_bad_parameters_answer_400_naming_the_parameter(
    client: TestClient[web.Request, web.Application],
    path: str,
    params: dict[str, str],
    parameter: str,
) -> None:
    response = await client.get(path, params=params)
    assert response.status == 400
    body = await response.json()
    [error] = body["errors"]
    assert error["path"] == parameter and error["message"]


async def test_a_closed_store_answers_503(
    client: TestClient[web.Request, web.Application], metrics_store: Store
) -> None:
    await metrics_store.close()
    for path in ("/api/v1/metrics/summary", "/api/v1/activity", "/metrics"):
        response = await client.get(path)
        assert response.status == 503
        assert (await response.json())["errors"][0]["message"].startswith("the database is closed")


async def test_default_period_is_the_last_24_hours(
    client: TestClient[web.Request, web.Application],
) -> None:
    body = await (await client.get("/api/v1/metrics/summary")).json()
    start = datetime.fromisoformat(body["period"]["from"])
    end = datetime.fromisoformat(body["period"]["to"])
    assert body["period"]["label"] == "24h"
    assert (end - start).total_seconds() == 86400
    assert abs((datetime.now(UTC) - end).total_seconds()) < 60


async def test_config_providers_count_active_complete_flows_and_read_shares(
    tmp_path: Path,
) -> None:
    raw = demo_account("http://127.0.0.1:9")
    raw["connections"][0]["rate_share"] = 0.25
    raw["connections"][0]["client_secret"] = "not-a-real-secret"
    flows = {f["id"]: f for f in raw["flows"]}
    flows["attended-follow-up"]["active"] = False
    flows["vip-session-attended"]["activate_for"] = {}
    store = await Store.open(tmp_path / "signal.duckdb", reader_threads=1, threads=1)
    try:
        config = ConfigService(store, SecretStore(tmp_path / "secrets.json"), env={SECRET_ENV: "x"})
        await config.start()
        await config.replace_account(Account.model_validate(raw), "test")
        views = {v.flow.id: v for v in config.flow_views()}
        assert not views["vip-session-attended"].complete
        active_flows, rate_shares = config_providers(config)
        assert active_flows("live") == 4  # six live flows: one switched off, one incomplete
        assert active_flows("test") == 2
        assert rate_shares() == {CONNECTION_ID: 0.25}
    finally:
        await store.close()
