"""`PUT /api/v1/sources/{id}` and `PUT /api/v1/connections/{id}` read their body alike
(`stream.api.connections.parsed_replacement`): the id defaults to the URL's, a body naming
another id is refused on `id`, a body that does not parse is refused with its problems, and
nothing is saved either way."""

from __future__ import annotations

from typing import Any

from simulators.certain.sandbox_seed import DEFAULT_PASSWORD, DEFAULT_USER
from tests.api.api_harness import Api
from tests.api.conftest import api

__all__ = ["api"]


def source(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "acme-certain",
        "name": "ACME on Certain",
        "host": "http://127.0.0.1:9",
        "account_code": "ACME",
        "username": DEFAULT_USER,
        "password": DEFAULT_PASSWORD,
    }
    return body | overrides


async def answer(response: Any) -> tuple[int, dict[str, Any]]:
    return response.status, await response.json()


async def test_a_replaced_source_takes_the_urls_id_and_refuses_another(api: Api) -> None:
    status, created = await answer(await api.post("/api/v1/sources", json=source()))
    assert status == 201, created
    without_id = {k: v for k, v in source(name="Renamed").items() if k != "id"}
    status, saved = await answer(await api.put("/api/v1/sources/acme-certain", json=without_id))
    assert status == 200, saved
    assert (saved["id"], saved["name"]) == ("acme-certain", "Renamed")

    status, refused = await answer(
        await api.put("/api/v1/sources/acme-certain", json=source(id="other-source"))
    )
    assert status == 422, refused
    assert "expected 'acme-certain' (the id in the URL)" in str(refused)
    status, refused = await answer(
        await api.put("/api/v1/sources/acme-certain", json=source(poll_interval_s="often"))
    )
    assert status == 422 and "poll_interval_s" in str(refused), refused
    listed = await (await api.get("/api/v1/sources")).json()
    assert [(s["id"], s["name"], s["version"]) for s in listed["sources"]] == [
        ("acme-certain", "Renamed", saved["version"])
    ]


async def test_a_replaced_connection_refuses_another_id(api: Api) -> None:
    listed = await (await api.get("/api/v1/connections")).json()
    first = listed["connections"][0]
    body = {k: v for k, v in first.items() if not k.startswith("secret_") and k != "version"}
    status, refused = await answer(
        await api.put(f"/api/v1/connections/{first['id']}", json=body | {"id": "elsewhere"})
    )
    assert status == 422, refused
    assert f"expected {first['id']!r} (the id in the URL)" in str(refused)
