"""Bearer-token authentication, the token file, and the open health check."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from stream.control.token import load_or_create_token, token_matches
from tests.api.api_harness import Api


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "basic", "empty"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/flows"),
        ("POST", "/api/v1/changes"),
        ("PUT", "/api/v1/config"),
        ("POST", "/api/v1/sql"),
        ("GET", "/api/v1/connections"),
    ],
)
async def test_every_api_route_needs_the_token(
    api: Api, headers: dict[str, str], method: str, path: str
) -> None:
    response = await api.client.request(method, path, headers=headers, data=b"[]")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = await response.json()
    assert body == {"errors": [{"path": "", "message": "missing or invalid bearer token"}]}


async def test_unknown_route_also_needs_the_token(api: Api) -> None:
    assert (await api.client.get("/api/v1/nothing-here")).status == 401
    response = await api.get("/api/v1/nothing-here")
    assert response.status == 404
    assert "errors" in await response.json()


async def test_the_right_token_is_accepted(api: Api) -> None:
    response = await api.get("/api/v1/flows")
    assert response.status == 200


async def test_healthz_is_open_and_reports_its_parts(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body["ok"] is True
    assert body["store"] is True
    assert body["broker"] is True
    assert body["version"]
    assert body["config_version"] == api.published_version
    assert "last_change_seen" in body


async def test_healthz_fails_when_the_store_is_closed(api: Api) -> None:
    await api.store.close()
    response = await api.client.get("/healthz")
    assert response.status == 503
    assert (await response.json())["store"] is False


def test_token_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "api-token"
    token = load_or_create_token(path)
    assert len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == token


def test_a_loosened_token_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    token = load_or_create_token(path)
    path.chmod(0o644)
    assert load_or_create_token(path) == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_token_comparison() -> None:
    assert token_matches("abc", "abc")
    assert not token_matches("abc", "abd")
    assert not token_matches("abc", None)
    assert not token_matches("abc", "")
    assert not token_matches("abc", "abcd")


async def test_api_fixture_token_file_is_private(api: Api) -> None:
    path = api.data_dir / "api-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == api.token


async def test_healthz_reports_an_unreachable_broker(api: Api) -> None:
    from aiokafka import AIOKafkaProducer

    from stream.api.deps import DEPS
    from stream.broker import EmbeddedBroker

    with EmbeddedBroker() as doomed:
        producer = AIOKafkaProducer(bootstrap_servers=doomed.bootstrap_servers)
        await producer.start()
    try:

        async def broker_ok() -> bool:
            return bool(await producer.client.force_metadata_update())

        api.client.app[DEPS].broker_ok = broker_ok
        response = await api.client.get("/healthz")
        assert response.status == 503
        body = await response.json()
        assert (body["ok"], body["broker"], body["store"]) == (False, False, True)
    finally:
        await producer.stop()
