"""Identity and access tokens (reference §1, checklist items 1–5)."""

from __future__ import annotations

import aiohttp

from simulators.marketo.sandbox import ManualClock, Sandbox
from tests.marketo.conftest import MarketoHttp
from tests.support.fixtures import MakeSandbox

CREDS = {
    "grant_type": "client_credentials",
    "client_id": "sandbox-client",
    "client_secret": "sandbox-secret",
}
T0 = 1_790_000_000.0


async def test_token_on_get_with_query_params(mkto: MarketoHttp) -> None:
    reply = await mkto.raw("GET", "/identity/oauth/token", params=CREDS)
    assert reply.status == 200
    assert set(reply.body) == {"access_token", "token_type", "expires_in", "scope"}
    assert reply.body["token_type"] == "bearer"
    assert reply.body["expires_in"] == 3600
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.headers["Pragma"] == "no-cache"


async def test_token_on_post_with_query_or_form_body(mkto: MarketoHttp) -> None:
    by_query = await mkto.raw("POST", "/identity/oauth/token", params=CREDS)
    by_form = await mkto.raw("POST", "/identity/oauth/token", data=CREDS)
    assert by_query.status == by_form.status == 200
    assert by_query.body["access_token"] == by_form.body["access_token"]


async def test_bad_credentials_are_401_invalid_client(mkto: MarketoHttp) -> None:
    for params in (
        {**CREDS, "client_secret": "wrong"},
        {**CREDS, "client_id": "nobody"},
        {"grant_type": "client_credentials"},
    ):
        reply = await mkto.raw("POST", "/identity/oauth/token", data=params)
        assert reply.status == 401
        assert reply.body == {
            "error": "invalid_client",
            "error_description": "Bad client credentials",
        }


async def test_missing_or_unsupported_grant_type_is_400(mkto: MarketoHttp) -> None:
    missing = await mkto.raw("GET", "/identity/oauth/token", params={"client_id": "x"})
    assert missing.status == 400
    assert missing.body["error"] == "invalid_request"
    other = await mkto.raw("GET", "/identity/oauth/token", params={**CREDS, "grant_type": "pw"})
    assert other.status == 400
    assert other.body["error"] == "unsupported_grant_type"


async def test_same_token_until_expiry_with_falling_expires_in(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock(T0)
    sb = await make_sandbox(clock=clock, token_lifetime_s=60)
    mkto = MarketoHttp(http, sb.url)
    first = await mkto.raw("GET", "/identity/oauth/token", params=CREDS)
    assert first.body["expires_in"] == 60
    clock.advance(4.7)
    second = await mkto.raw("GET", "/identity/oauth/token", params=CREDS)
    assert second.body["access_token"] == first.body["access_token"]
    assert second.body["expires_in"] == 55  # floor of 55.3: never more than remains
    clock.advance(55.2)  # 0.1 s left: the same token, expires_in 0, still valid
    last = await mkto.raw("GET", "/identity/oauth/token", params=CREDS)
    assert last.body["access_token"] == first.body["access_token"]
    assert last.body["expires_in"] == 0
    token = first.body["access_token"]
    ok = await mkto.call("GET", "/rest/v1/leads/describe.json", token=token)
    assert ok.body["success"] is True
    clock.advance(0.1)  # exactly issued_at + lifetime: expired
    expired = await mkto.call("GET", "/rest/v1/leads/describe.json", token=token)
    assert expired.status == 200
    assert expired.body["success"] is False
    assert expired.body["errors"] == [{"code": "602", "message": "Access token expired"}]
    fresh = await mkto.raw("GET", "/identity/oauth/token", params=CREDS)
    assert fresh.body["access_token"] != token
    assert fresh.body["expires_in"] == 60


async def test_tokens_are_per_client_id(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    sb = await make_sandbox(extra_clients={"second": "s2"})
    mkto = MarketoHttp(http, sb.url)
    one = await mkto.auth()
    two = await mkto.auth("second", "s2")
    assert one != two
    assert (await mkto.call("GET", "/rest/v1/leads/describe.json", token=two)).body["success"]


async def test_token_accepted_as_header_query_or_form_field(mkto: MarketoHttp) -> None:
    token = await mkto.auth()
    header = await mkto.call("GET", "/rest/v1/leads/describe.json")
    query = await mkto.call(
        "GET", "/rest/v1/leads/describe.json", token=False, params={"access_token": token}
    )
    form = await mkto.call(
        "POST",
        "/rest/v1/leads.json",
        token=False,
        data={
            "_method": "GET",
            "filterType": "email",
            "filterValues": "x@y.com",
            "access_token": token,
        },
    )
    assert header.body["success"] and query.body["success"] and form.body["success"]


async def test_no_token_is_http_200_with_601(mkto: MarketoHttp) -> None:
    reply = await mkto.call("POST", "/rest/v1/leads.json", token=False, json={"input": [{}]})
    assert reply.status == 200
    assert reply.body["success"] is False
    assert reply.body["errors"] == [{"code": "601", "message": "Access token invalid"}]
    assert "result" not in reply.body


async def test_unknown_token_is_601(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", "/rest/v1/leads/describe.json", token="not-a-token:sb")
    assert reply.status == 200
    assert reply.code == "601"


async def test_identity_calls_do_not_count_against_limits(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    sb = await make_sandbox(rate_limit_calls=2, daily_quota=2)
    mkto = MarketoHttp(http, sb.url)
    for _ in range(5):
        await mkto.auth()
    for _ in range(2):
        assert (await mkto.call("GET", "/rest/v1/leads/describe.json")).body["success"]
    assert (await mkto.call("GET", "/rest/v1/leads/describe.json")).code == "606"


async def test_rejected_auth_calls_do_not_count(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    sb: Sandbox = await make_sandbox(rate_limit_calls=1)
    mkto = MarketoHttp(http, sb.url)
    for _ in range(3):
        assert (await mkto.call("GET", "/rest/v1/leads/describe.json", token=False)).code == "601"
    assert (await mkto.call("GET", "/rest/v1/leads/describe.json")).body["success"] is True


async def test_public_client_retry_without_auth_recovers(
    mkto: MarketoHttp, sandbox: Sandbox
) -> None:
    """POST → 606 → retry sent without Authorization → 601 → re-auth → POST ok (checklist 4)."""
    await mkto.auth()
    sandbox.inject_error("606")
    body = {"input": [{"email": "retry@example.com"}]}
    first = await mkto.call("POST", "/rest/v1/leads.json", json=body)
    assert first.code == "606"
    bare = await mkto.call("POST", "/rest/v1/leads.json", token=False, json=body)
    assert bare.status == 200 and bare.code == "601"
    await mkto.auth()
    again = await mkto.call("POST", "/rest/v1/leads.json", json=body)
    assert again.body["result"][0]["status"] == "created"
