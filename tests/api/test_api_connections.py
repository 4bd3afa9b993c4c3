"""Connections: secrets are write-only everywhere; Save & Test and field refresh against a real
Marketo sandbox."""

from __future__ import annotations

import json
from typing import Any

from simulators.marketo.sandbox import Sandbox
from stream.broker import free_port
from stream.control.config_secrets import account_from_snapshot
from stream.messages import ConfigSnapshot
from tests.api.api_harness import Api
from tests.api.api_helpers import LITERAL_SECRET, SECRET, snapshots
from tests.support.topics import read_topic

SANDBOX_SECRET = "sandbox-secret"


def _connection(url: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "id": "mkto-sandbox",
        "name": "Sandbox",
        "service_url": url,
        "client_id": "sandbox-client",
        "client_secret": SANDBOX_SECRET,
    }
    body.update(overrides)
    return body


async def _all_bodies_and_audit(api: Api) -> str:
    """Every read answer plus every audit row and stored object, as text."""
    texts = []
    for path in ("/api/v1/connections", "/api/v1/config", "/api/v1/config?format=json"):
        texts.append(await (await api.get(path)).text())
    for connection in api.config.account.connections:
        texts.append(await (await api.get(f"/api/v1/connections/{connection.id}")).text())
    for row in await api.store.config_audit(limit=1000):
        texts.append(json.dumps(row.change))
    for obj in await api.store.load_config():
        texts.append(json.dumps(obj.body))
    result = await api.store.query("SELECT * FROM config_audit")
    texts.append(json.dumps(result.to_json()))
    return "\n".join(texts)


async def test_list_and_get_never_return_secrets(api: Api) -> None:
    response = await api.get("/api/v1/connections")
    body = await response.json()
    [connection] = body["connections"]
    assert connection["id"] == "mkto-prod"
    assert "client_secret" not in connection
    assert connection["secret_set"] is True
    assert connection["secret_source"] == "env:SIGNAL_SECRET_TEST_MARKETO"
    assert SECRET not in await _all_bodies_and_audit(api)
    missing = await api.get("/api/v1/connections/nope")
    assert missing.status == 404


async def test_create_update_delete_keep_secrets_write_only(api: Api, sandbox: Sandbox) -> None:
    created = await api.post(
        "/api/v1/connections",
        json=_connection(sandbox.url, client_secret=LITERAL_SECRET),
        headers=api.headers("ana"),
    )
    assert created.status == 201
    text = await created.text()
    assert LITERAL_SECRET not in text
    body = json.loads(text)
    assert body["secret_set"] is True
    assert body["secret_source"] == "stored"
    assert body["secret_updated_at"]
    first_mark = body["secret_updated_at"]

    duplicate = await api.post("/api/v1/connections", json=_connection(sandbox.url))
    assert duplicate.status == 409

    # A replace without a secret keeps it; with one, the audit shows that it changed.
    edited = {k: v for k, v in _connection(sandbox.url, name="Sandbox 2").items()}
    del edited["client_secret"]
    response = await api.put("/api/v1/connections/mkto-sandbox", json=edited)
    assert response.status == 200
    assert (await response.json())["secret_set"] is True
    assert api.connection("mkto-sandbox").client_secret is not None
    rotated = await api.put(
        "/api/v1/connections/mkto-sandbox", json=_connection(sandbox.url, client_secret="n3w-s3c")
    )
    assert rotated.status == 200
    assert (await rotated.json())["secret_updated_at"] != first_mark
    audit = await api.store.config_audit(kind="connection", object_id="mkto-sandbox")
    assert [a.action for a in audit] == ["update", "update", "create"]
    assert (
        audit[0].change["before"]["secret_updated_at"]
        != audit[0].change["after"]["secret_updated_at"]
    )
    assert audit[2].actor == "ana"

    # The pipeline gets the secret through the snapshot, and only there, sealed.
    def opened(records: list[Any]) -> str | None:
        message = ConfigSnapshot.loads(records[-1].value)
        account = account_from_snapshot(message, api.config.box)
        connection = account.connection("mkto-sandbox")
        secret = connection.client_secret if connection is not None else None
        return secret.get_secret_value() if secret is not None else None

    records = await read_topic(
        api.bootstrap, api.config_topic, until=lambda rs: bool(rs) and opened(rs) == "n3w-s3c"
    )
    assert "n3w-s3c" not in b"".join(r.value for r in records).decode()
    assert snapshots(records)[-1]["secrets"]["mkto-sandbox"].startswith("sealed:v1:")
    everything = await _all_bodies_and_audit(api)
    for secret in (LITERAL_SECRET, "n3w-s3c", SECRET):
        assert secret not in everything
    secrets_file = api.data_dir / "secrets.json"
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"

    deleted = await api.delete("/api/v1/connections/mkto-sandbox")
    assert deleted.status == 204
    assert (await api.get("/api/v1/connections/mkto-sandbox")).status == 404
    assert "mkto-sandbox" not in json.loads(secrets_file.read_text())


async def test_secret_as_env_reference(api: Api) -> None:
    body = _connection("https://1-2-3.mktorest.com", client_secret="${SIGNAL_SECRET_TEST_MARKETO}")
    response = await api.post("/api/v1/connections", json=body)
    data = await response.json()
    assert data["client_secret_ref"] == "SIGNAL_SECRET_TEST_MARKETO"
    assert data["secret_source"] == "env:SIGNAL_SECRET_TEST_MARKETO"


async def test_connection_validation_and_referenced_delete(api: Api) -> None:
    bad = await api.post(
        "/api/v1/connections", json=_connection("ftp://nowhere", id="x", rate_share=3)
    )
    assert bad.status == 422
    paths = {e["path"] for e in (await bad.json())["errors"]}
    assert {"service_url", "rate_share"} <= paths
    empty_secret = await api.post(
        "/api/v1/connections", json=_connection("https://a.b", id="y", client_secret="")
    )
    assert empty_secret.status == 422
    in_use = await api.delete("/api/v1/connections/mkto-prod")
    assert in_use.status == 422
    errors = (await in_use.json())["errors"]
    assert errors[0]["path"].startswith("flows[0].destination.connection")
    assert (await api.get("/api/v1/connections/mkto-prod")).status == 200


async def test_save_and_test_good_credentials(api: Api, sandbox: Sandbox) -> None:
    await api.post("/api/v1/connections", json=_connection(sandbox.url))
    response = await api.post("/api/v1/connections/mkto-sandbox/test")
    assert response.status == 200
    body = await response.json()
    assert body["ok"] is True, body
    assert body["fields"] > 0
    assert [c["name"] for c in body["checks"]] == ["credentials", "lead fields", "campaigns"]
    assert all(c["ok"] for c in body["checks"])
    calls = await api.store.query(
        "SELECT endpoint, http_status FROM api_calls WHERE connection_id = 'mkto-sandbox'"
    )
    assert len(calls.rows) >= 3
    assert SANDBOX_SECRET not in json.dumps(calls.to_json())


async def test_save_and_test_bad_secret(api: Api, sandbox: Sandbox) -> None:
    await api.post("/api/v1/connections", json=_connection(sandbox.url, client_secret="wrong"))
    body = await (await api.post("/api/v1/connections/mkto-sandbox/test")).json()
    assert body["ok"] is False
    assert body["message"].startswith("bad client id or secret")
    assert body["checks"][0]["name"] == "credentials"
    assert "wrong" not in json.dumps(body)


async def test_save_and_test_unreachable_url(api: Api) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    await api.post("/api/v1/connections", json=_connection(url))
    body = await (await api.post("/api/v1/connections/mkto-sandbox/test")).json()
    assert body["ok"] is False
    assert body["message"].startswith("cannot reach")
    assert "127.0.0.1" in body["message"]


async def test_test_without_secret_or_unknown_connection(api: Api) -> None:
    body = _connection("https://1-2-3.mktorest.com", client_secret="${SIGNAL_SECRET_UNSET_X}")
    await api.post("/api/v1/connections", json=body)
    response = await api.post("/api/v1/connections/mkto-sandbox/test")
    assert response.status == 422
    assert (await response.json())["errors"][0]["path"] == "client_secret"
    assert (await api.post("/api/v1/connections/nope/test")).status == 404


async def test_refresh_fields(api: Api, sandbox: Sandbox) -> None:
    await api.post("/api/v1/connections", json=_connection(sandbox.url))
    response = await api.post("/api/v1/connections/mkto-sandbox/fields/refresh")
    assert response.status == 200
    body = await response.json()
    names = {f["name"] for f in body["fields"]}
    assert {"email", "firstName", "lastName"} <= names
    assert body["count"] == len(body["fields"])


async def test_refresh_fields_with_a_bad_secret_is_502(api: Api, sandbox: Sandbox) -> None:
    await api.post("/api/v1/connections", json=_connection(sandbox.url, client_secret="wrong"))
    response = await api.post("/api/v1/connections/mkto-sandbox/fields/refresh")
    assert response.status == 502
    assert "bad client id or secret" in (await response.json())["errors"][0]["message"]
