"""Testing connection settings before they are saved (`POST /api/v1/connections/test`): nothing
is stored, and a stored secret is sent only where it was entered for."""

from __future__ import annotations

import json
from typing import Any

from simulators.marketo.sandbox import Sandbox
from stream.broker import free_port
from tests.api.api_harness import Api
from tests.api.api_helpers import SECRET_VAR

GOOD = "sandbox-secret"


def _connection(url: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "id": "mkto-sandbox",
        "name": "Sandbox",
        "service_url": url,
        "client_id": "sandbox-client",
        "client_secret": GOOD,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def _state(api: Api) -> tuple[Any, ...]:
    """What a stored change would move: the connection's version, secret mark, the audit."""
    got = await (await api.get("/api/v1/connections/mkto-sandbox")).json()
    audit = await api.store.config_audit(limit=1000)
    return got["version"], got["secret_updated_at"], got["secret_source"], len(audit)


async def _calls(api: Api) -> int:
    result = await api.store.query(
        "SELECT count(*) FROM api_calls WHERE connection_id = 'mkto-sandbox'"
    )
    return int(result.rows[0][0])


async def test_a_bad_candidate_secret_is_reported_and_not_stored(
    api: Api, sandbox: Sandbox
) -> None:
    assert (await api.post("/api/v1/connections", json=_connection(sandbox.url))).status == 201
    before = await _state(api)
    response = await api.post(
        "/api/v1/connections/test",
        json=_connection(sandbox.url, name="Renamed", client_secret="wrong"),
    )
    assert response.status == 200
    body = await response.json()
    assert body["ok"] is False and body["message"].startswith("bad client id or secret")
    assert "wrong" not in json.dumps(body)
    assert await _state(api) == before
    assert api.connection("mkto-sandbox").name == "Sandbox"
    stored = await (await api.post("/api/v1/connections/mkto-sandbox/test")).json()
    assert stored["ok"] is True, "the stored secret must still be the good one"


async def test_a_good_candidate_passes_and_is_stored_only_when_saved(
    api: Api, sandbox: Sandbox
) -> None:
    candidate = _connection(sandbox.url, id="mkto-new")
    response = await api.post("/api/v1/connections/test", json=candidate)
    body = await response.json()
    assert response.status == 200 and body["ok"] is True, body
    assert [c["name"] for c in body["checks"]] == ["credentials", "lead fields", "campaigns"]
    assert (await api.get("/api/v1/connections/mkto-new")).status == 404
    assert (await api.post("/api/v1/connections", json=candidate)).status == 201
    saved = await (await api.get("/api/v1/connections/mkto-new")).json()
    assert saved["secret_set"] is True and saved["secret_source"] == "stored"


async def test_without_a_secret_the_stored_one_is_used_for_its_own_destination_only(
    api: Api, sandbox: Sandbox
) -> None:
    assert (await api.post("/api/v1/connections", json=_connection(sandbox.url))).status == 201
    same = await api.post(
        "/api/v1/connections/test",
        json=_connection(sandbox.url, name="Renamed", client_secret=None),
    )
    assert (await same.json())["ok"] is True
    before = await _calls(api)
    elsewhere = f"http://127.0.0.1:{free_port()}"
    for moved, why in (
        (_connection(elsewhere, client_secret=None), "the identity URL changed"),
        (_connection(sandbox.url, client_id="someone-else", client_secret=None), "client id"),
        (
            _connection(
                elsewhere,
                access_token_url=f"{sandbox.url}/identity/oauth/token",
                client_secret=None,
            ),
            "the service URL changed",
        ),
    ):
        refused = await api.post("/api/v1/connections/test", json=moved)
        assert refused.status == 422, moved
        [error] = (await refused.json())["errors"]
        assert error["path"] == "client_secret"
        assert why in error["message"] and "enter it again" in error["message"]
    assert await _calls(api) == before, "nothing may be sent for a moved destination"
    new = await api.post(
        "/api/v1/connections/test", json=_connection(sandbox.url, id="other", client_secret=None)
    )
    assert new.status == 422
    assert (await new.json())["errors"][0]["path"] == "client_secret"


async def test_candidate_references_and_shapes(api: Api, sandbox: Sandbox) -> None:
    refused = await api.post(
        "/api/v1/connections/test", json=_connection(sandbox.url, client_secret="${HOME}")
    )
    assert refused.status == 422
    [error] = (await refused.json())["errors"]
    assert error["path"] == "client_secret" and "allow-list" in error["message"]
    unset = await api.post(
        "/api/v1/connections/test",
        json=_connection(sandbox.url, client_secret="${SIGNAL_SECRET_NOT_SET_ANYWHERE}"),
    )
    assert unset.status == 422
    assert (
        "SIGNAL_SECRET_NOT_SET_ANYWHERE is not set" in (await unset.json())["errors"][0]["message"]
    )
    # an allowed, set variable is resolved by control (its value is not the sandbox's secret)
    resolved = await api.post(
        "/api/v1/connections/test",
        json=_connection(sandbox.url, client_secret=f"${{{SECRET_VAR}}}"),
    )
    assert (await resolved.json())["message"].startswith("bad client id or secret")
    bad_url = await api.post(
        "/api/v1/connections/test", json=_connection("not a url", client_secret="x")
    )
    assert bad_url.status == 422
    assert (await bad_url.json())["errors"][0]["path"] == "service_url"
    assert (await api.get("/api/v1/connections/mkto-sandbox")).status == 404
