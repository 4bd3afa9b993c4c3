"""Connection secrets through the operator API (issue 11, items 1 and 2): `${VAR}` only for names
on the allow-list, refused alike whether the variable exists or not; a change of destination
without a new secret clears it and the answer says so; Save & Test then sends nothing."""

from __future__ import annotations

from typing import Any

from tests.api.api_harness import Api
from tests.api.api_helpers import SECRET, SECRET_VAR

CLEARED_URL = "the client secret was cleared because the identity URL changed; enter it again"


def _connection(**overrides: Any) -> dict[str, Any]:
    body = {
        "id": "mkto-x",
        "name": "X",
        "service_url": "https://1-2-3.mktorest.com",
        "client_id": "cid",
        "client_secret": "literal-x-1",
    }
    body.update(overrides)
    return body


async def test_a_reference_outside_the_allow_list_is_refused_alike(api: Api) -> None:
    answers = []
    for name in ("HOME", "NO_SUCH_VARIABLE_ANYWHERE"):
        response = await api.post(
            "/api/v1/connections", json=_connection(client_secret=f"${{{name}}}")
        )
        assert response.status == 422
        body = await response.json()
        [error] = body["errors"]
        assert error["path"] == "client_secret"
        assert name in error["message"]
        assert "SIGNAL_SECRET_ENV_ALLOWLIST: MARKETO_*, SIGNAL_SECRET_*" in error["message"]
        answers.append(str(body).replace(name, "NAME"))
        assert (await api.get("/api/v1/connections/mkto-x")).status == 404
    assert answers[0] == answers[1]


async def test_client_secret_ref_in_a_body_is_read_only(api: Api) -> None:
    created = await api.post("/api/v1/connections", json=_connection(client_secret_ref="HOME"))
    assert created.status == 201
    body = await created.json()
    assert body["client_secret_ref"] is None and body["secret_source"] == "stored"
    kept = await api.put(
        "/api/v1/connections/mkto-x",
        json={k: v for k, v in body.items() if k != "version"} | {"client_secret_ref": "HOME"},
    )
    assert (await kept.json())["secret_source"] == "stored"


async def test_an_import_with_a_reference_outside_the_allow_list_is_refused(api: Api) -> None:
    exported = await (await api.get("/api/v1/config")).text()
    assert f"${{{SECRET_VAR}}}" in exported
    refused = await api.put(
        "/api/v1/config",
        data=exported.replace(SECRET_VAR, "HOME").encode(),
        headers=api.headers("ana"),
    )
    assert refused.status == 422
    errors = (await refused.json())["errors"]
    assert [e["path"] for e in errors] == ["connections[0].client_secret"]
    assert "HOME" in errors[0]["message"]
    assert api.connection("mkto-prod").client_secret is not None


async def test_moving_a_connection_clears_its_secret_and_save_and_test_sends_nothing(
    api: Api,
) -> None:
    assert (await api.post("/api/v1/connections", json=_connection())).status == 201
    moved = _connection(service_url="http://127.0.0.1:9")
    del moved["client_secret"]
    response = await api.put("/api/v1/connections/mkto-x", json=moved)
    assert response.status == 200
    body = await response.json()
    assert body["secret_set"] is False and body["secret_cleared"] == CLEARED_URL
    listed = (await (await api.get("/api/v1/connections")).json())["connections"]
    assert [c["secret_cleared"] for c in listed if c["id"] == "mkto-x"] == [CLEARED_URL]
    test = await api.post("/api/v1/connections/mkto-x/test")
    assert test.status == 422
    [error] = (await test.json())["errors"]
    assert error["path"] == "client_secret" and error["message"] == CLEARED_URL
    calls = await api.store.query("SELECT count(*) FROM api_calls WHERE connection_id = 'mkto-x'")
    assert [tuple(r) for r in calls.rows] == [(0,)]
    # The env-referenced secret of the account's own connection moves the same way.
    prod = await (await api.get("/api/v1/connections/mkto-prod")).json()
    assert prod["secret_source"] == f"env:{SECRET_VAR}"
    prod = {k: v for k, v in prod.items() if k != "version"}
    again = await api.put(
        "/api/v1/connections/mkto-prod", json={**prod, "client_id": "someone-else"}
    )
    body = await again.json()
    assert body["secret_set"] is False and "client id changed" in body["secret_cleared"]
    assert SECRET not in str(body)
