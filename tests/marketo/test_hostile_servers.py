"""Servers that misbehave on purpose. One that echoes what Signal sent it: the Certain password
(Basic authorization), the Marketo client secret (the identity form) and access tokens (bearer
authorization) never reach a failure's message, whatever form the echo takes. A runaway Marketo
answer is refused, not held in memory; a lead lookup that always offers another page stops."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from config.models import CertainSource
from stream.certain.client import CertainClient, CertainUnavailable, RequestBudget
from stream.marketo import transport
from stream.marketo.client import LOOKUP_MAX_PAGES, MarketoClient
from stream.marketo.errors import MarketoError
from stream.server_answers import REDACTED, echo_forms, scrub
from tests.support.fixtures import Serve
from tests.support.marketo import CLIENT_SECRET, settings_at

PASSWORD = "pa/ss w+rd-é"
TOKEN = "token-0123456789abcdef"
FORM = web.RequestKey("form", str)


def test_every_echo_form_is_taken_out_and_json_still_parses() -> None:
    forms = echo_forms(PASSWORD, basic=("signal-api", PASSWORD))
    basic = base64.b64encode(f"signal-api:{PASSWORD}".encode()).decode()
    for echoed in (
        PASSWORD,
        quote(PASSWORD, safe=""),
        json.dumps(PASSWORD)[1:-1],
        json.dumps(PASSWORD)[1:-1].replace("/", "\\/"),
        basic,
    ):
        body = b'{"error": "you sent ' + echoed.encode() + b'!"}'
        cleaned = scrub(body, forms)
        assert PASSWORD.encode() not in cleaned and basic.encode() not in cleaned, cleaned
        assert json.loads(cleaned)["error"] == f"you sent {REDACTED.decode()}!"
    assert echo_forms("abc") == ()  # too short to look for
    assert scrub(b"nothing here", forms) == b"nothing here"


def _echo(request: web.Request, status: int) -> web.Response:
    """An answer quoting the request's headers, query and form back to the caller."""
    text = (
        f"Authorization: {request.headers.get('Authorization')}; "
        f"query: {request.query_string}; form: {request.get(FORM, '')}"
    )
    return web.json_response(
        {"error": "invalid_client", "error_description": text, "errors": [], "message": text},
        status=status,
    )


async def test_a_certain_host_echoing_the_authorization_never_shows_the_password(
    web_server: Serve,
) -> None:
    app = web.Application()

    async def echo(request: web.Request) -> web.Response:
        return _echo(request, 503)

    app.router.add_get("/{tail:.*}", echo)
    url = await web_server(app)
    source = CertainSource.model_validate(
        {
            "id": "acme",
            "name": "ACME",
            "host": url,
            "account_code": "ACME",
            "username": "signal-api",
            "password": PASSWORD,
        }
    )
    async with aiohttp.ClientSession() as http:
        client = CertainClient(http, source, RequestBudget(600))
        with pytest.raises(CertainUnavailable) as raised:
            await client.events(0)
    message = str(raised.value)
    basic = base64.b64encode(f"signal-api:{PASSWORD}".encode()).decode()
    assert "503" in message and "[redacted]" in message, message
    assert PASSWORD not in message and basic not in message


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def token(request: web.Request) -> web.Response:
    return web.json_response({"access_token": TOKEN, "expires_in": 3600})


async def marketo_host(
    web_server: Serve, leads: Handler | None = None, identity: Handler = token
) -> str:
    """A stand-in Marketo: its identity endpoint and its lead lookup."""
    app = web.Application()
    app.router.add_post("/identity/oauth/token", identity)
    if leads is not None:
        app.router.add_get("/rest/v1/leads.json", leads)
    return await web_server(app)


async def lookup(url: str) -> list[dict[str, Any]]:
    """One lead lookup by a client with a single attempt per call."""
    client = MarketoClient(settings_at(url, max_attempts=1))
    try:
        return await client.get_leads("email", ["a@example.com"])
    finally:
        await client.close()


async def refused(url: str) -> MarketoError:
    with pytest.raises(MarketoError) as raised:
        await lookup(url)
    return raised.value


async def test_a_marketo_host_echoing_the_secret_and_the_token_never_shows_them(
    web_server: Serve,
) -> None:
    async def identity(request: web.Request) -> web.Response:
        form = await request.post()
        request[FORM] = "&".join(f"{k}={quote(str(v))}" for k, v in form.items())
        return _echo(request, 401)

    message = str(await refused(await marketo_host(web_server, identity=identity)))
    assert "bad client id or secret" in message and "[redacted]" in message, message
    assert CLIENT_SECRET not in message

    async def leads(request: web.Request) -> web.Response:
        return _echo(request, 400)

    message = str(await refused(await marketo_host(web_server, leads)))
    assert TOKEN not in message and CLIENT_SECRET not in message, message


async def test_a_runaway_marketo_answer_is_refused_unread(
    web_server: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "MAX_ANSWER_BYTES", 100_000)

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"success": true, "result": [' + b'{"id": 1},' * 50_000)
        return response

    failure = (await refused(await marketo_host(web_server, huge))).failure
    assert failure.code == "too-large", failure
    assert "over 100,000 bytes" in failure.message


async def test_a_lead_lookup_that_always_offers_a_next_page_stops(web_server: Serve) -> None:
    served: list[str] = []

    async def leads(request: web.Request) -> web.Response:
        served.append(request.query.get("nextPageToken", ""))
        page = len(served)
        return web.json_response(
            {
                "success": True,
                "requestId": f"r{page}",
                "result": [{"id": page, "email": "a@example.com"}],
                "nextPageToken": f"page-{page}",
            }
        )

    found = await lookup(await marketo_host(web_server, leads))
    assert len(served) == LOOKUP_MAX_PAGES
    assert [lead["id"] for lead in found] == list(range(1, LOOKUP_MAX_PAGES + 1))


async def test_an_identity_endpoint_that_redirects_never_gets_the_secret_sent_on(
    web_server: Serve,
) -> None:
    """A 307 from the identity URL would have the form, client secret included, posted to the
    Location: the secret is bound to the identity URL it was entered for."""
    elsewhere: list[str] = []

    async def catch(request: web.Request) -> web.Response:
        elsewhere.append(await request.text())
        return await token(request)

    other = web.Application()
    other.router.add_post("/{tail:.*}", catch)
    other_url = await web_server(other)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{other_url}/steal")

    error = await refused(await marketo_host(web_server, identity=redirect))
    assert elsewhere == []
    assert "HTTP 307" in str(error) and CLIENT_SECRET not in str(error)
