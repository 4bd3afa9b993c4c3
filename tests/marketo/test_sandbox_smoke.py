"""The fixture serves a sandbox that answers identity and a lead upsert over real HTTP."""

from __future__ import annotations

import aiohttp

from simulators.marketo.sandbox import Sandbox


async def test_fixture_serves_identity_and_sync(sandbox: Sandbox) -> None:
    assert sandbox.url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{sandbox.url}/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
            },
        ) as resp:
            assert resp.status == 200
            token = (await resp.json())["access_token"]
        async with http.post(
            f"{sandbox.url}/rest/v1/leads.json",
            json={"input": [{"email": "ana@example.com", "firstName": "Ana"}]},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            body = await resp.json()
    assert body["success"] is True
    assert body["result"][0]["status"] == "created"
    assert sandbox.state.leads[body["result"][0]["id"]]["firstName"] == "Ana"
