"""The pickers' routes over real HTTP against the Marketo sandbox: campaigns, forms, programs
and a program's statuses read from a connection, cached briefly, bounded in pages, recorded
as Marketo calls; Marketo unreachable, down or refusing is a 502 naming why (and not cached),
a bad program id or an unknown connection a 4xx."""

from __future__ import annotations

from typing import Any

from simulators.marketo.config import SandboxSeed, SeedProgram
from simulators.marketo.sandbox import Sandbox
from stream.api import marketo_assets
from stream.broker import free_port
from tests.api.api_harness import Api
from tests.support.fixtures import MakeSandbox

BASE = "/api/v1/connections/mkto-sandbox/marketo"


def connection(url: str) -> dict[str, Any]:
    return {
        "id": "mkto-sandbox",
        "name": "Sandbox",
        "service_url": url,
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }


async def marketo_calls(api: Api, like: str) -> int:
    rows = await api.store.query(
        f"SELECT count(*) FROM api_calls WHERE connection_id = 'mkto-sandbox' "
        f"AND endpoint LIKE '%{like}%'"
    )
    return int(rows.rows[0][0])


async def test_campaigns_forms_programs_and_statuses(api: Api, sandbox: Sandbox) -> None:
    assert (await api.post("/api/v1/connections", json=connection(sandbox.url))).status == 201
    body = await (await api.get(f"{BASE}/campaigns")).json()
    names = {c["name"]: c for c in body["items"]}
    assert "Registration Confirmed" in names and names["Registration Confirmed"]["id"] == 1001
    assert "Weekly Newsletter" not in names  # a batch campaign cannot be triggered
    assert body["truncated"] is False and body["kind"] == "campaigns"

    forms = await (await api.get(f"{BASE}/forms")).json()
    assert forms["items"] and all(isinstance(f["id"], int) and f["name"] for f in forms["items"])

    programs = await (await api.get(f"{BASE}/programs")).json()
    by_id = {p["id"]: p for p in programs["items"]}
    assert by_id[1044]["name"] == "Signal Demo Program" and by_id[1044]["channel"] == "Webinar"

    statuses = await (await api.get(f"{BASE}/programs/1044/statuses")).json()
    assert [s["name"] for s in statuses["items"]] == [
        "Not in Program",
        "Invited",
        "Registered",
        "No Show",
        "Attended",
        "Attended On-demand",
    ]
    attended = next(s for s in statuses["items"] if s["name"] == "Attended")
    assert attended["success"] is True and attended["step"] == 40

    # cached: the same lists again make no call to Marketo
    before = await marketo_calls(api, "campaigns")
    assert before >= 1
    again = await (await api.get(f"{BASE}/campaigns")).json()
    assert again["items"] == body["items"] and again["age_s"] >= 0
    assert await marketo_calls(api, "campaigns") == before


async def test_bad_program_id_and_unknown_connection(api: Api, sandbox: Sandbox) -> None:
    await api.post("/api/v1/connections", json=connection(sandbox.url))
    for text in ("abc", "0", "-4", "1" * 13):
        response = await api.get(f"{BASE}/programs/{text}/statuses")
        assert response.status == 400, text
        [error] = (await response.json())["errors"]
        assert error["path"] == "program_id" and repr(text) in error["message"]
    unknown = await api.get("/api/v1/connections/nope/marketo/programs")
    assert unknown.status == 404 and "nope" in (await unknown.json())["errors"][0]["message"]
    assert (await api.client.get(f"{BASE}/programs")).status == 401


async def test_unreachable_or_down_is_a_502_naming_why_and_not_cached(
    api: Api, sandbox: Sandbox
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    await api.post("/api/v1/connections", json=connection(closed))
    response = await api.get(f"{BASE}/programs")
    assert response.status == 502
    message = (await response.json())["errors"][0]["message"]
    assert message.startswith("cannot reach") and "127.0.0.1" in message
    assert "sandbox-secret" not in message

    await api.put("/api/v1/connections/mkto-sandbox", json=connection(sandbox.url))
    sandbox.start_outage(600)
    down = await api.get(f"{BASE}/forms")
    assert down.status == 502
    assert (await down.json())["errors"][0]["message"]
    sandbox.end_outage()
    back = await api.get(f"{BASE}/forms")
    assert back.status == 200 and (await back.json())["items"]

    sandbox.inject_error("603", count=5)
    refused = await api.get(f"{BASE}/campaigns")
    assert refused.status == 502
    assert "lacks permission to list campaigns" in (await refused.json())["errors"][0]["message"]


async def test_a_long_list_stops_at_the_page_limit(api: Api, make_sandbox: MakeSandbox) -> None:
    many = [SeedProgram(id=5000 + n, name=f"Program {n}", channel="Webinar") for n in range(1300)]
    sandbox = await make_sandbox(seed=SandboxSeed(programs=many))
    await api.post("/api/v1/connections", json=connection(sandbox.url))
    body = await (await api.get(f"{BASE}/programs")).json()
    assert len(body["items"]) == marketo_assets.MAX_ITEMS and body["truncated"] is True
    assert await marketo_calls(api, "programs") == marketo_assets.MAX_PAGES
