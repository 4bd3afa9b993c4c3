"""`/_sandbox/` admin routes and the matching `Sandbox` methods: inspection and fault injection."""

from __future__ import annotations

import time

import aiohttp
import pytest

from simulators.marketo.sandbox import ManualClock, Sandbox, SandboxConfig
from tests.marketo.conftest import MarketoHttp, signed_in
from tests.support.fixtures import MakeSandbox

DESCRIBE = "/rest/v1/leads/describe.json"


async def test_inspect_leads_runs_fills_and_calls(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    synced = await mkto.sync([{"email": "adm@example.com"}, {"email": "bad"}])
    lead_id = synced.body["result"][0]["id"]
    await mkto.call(
        "POST", "/rest/v1/campaigns/1001/trigger.json", json={"input": {"leads": [{"id": lead_id}]}}
    )
    await mkto.call(
        "POST",
        "/rest/v1/leads/submitForm.json",
        json={"formId": 1234, "input": [{"leadFormFields": {"email": "f@example.com"}}]},
    )
    await mkto.call("GET", DESCRIBE, token=False)
    leads = (await mkto.raw("GET", "/_sandbox/leads")).body["leads"]
    assert [lead["email"] for lead in leads] == ["adm@example.com", "f@example.com"]
    runs = (await mkto.raw("GET", "/_sandbox/campaign-runs")).body["campaignRuns"]
    assert runs[0]["campaignId"] == 1001 and runs[0]["leadIds"] == [lead_id]
    assert runs[0]["time"].endswith("Z")
    fills = (await mkto.raw("GET", "/_sandbox/form-fills")).body["formFills"]
    assert fills[0]["formId"] == 1234 and fills[0]["status"] == "created"
    calls = (await mkto.raw("GET", "/_sandbox/calls")).body["calls"]
    assert [c["endpoint"] for c in calls] == [
        "identity",
        "leads.sync",
        "campaigns.trigger",
        "leads.submitForm",
        "leads.describe",
    ]
    sync_call = calls[1]
    assert sync_call["batchSize"] == 2 and sync_call["httpStatus"] == 200
    assert sync_call["success"] is True and sync_call["requestId"] == synced.body["requestId"]
    assert sync_call["clientId"] == "sandbox-client"
    assert calls[-1]["code"] == "601" and calls[-1]["success"] is False
    only = (await mkto.raw("GET", "/_sandbox/calls", params={"endpoint": "leads.sync"})).body
    assert len(only["calls"]) == 1


async def test_code_fault_for_next_n_calls_on_one_endpoint(mkto: MarketoHttp) -> None:
    added = await mkto.raw(
        "POST", "/_sandbox/faults", json={"code": "611", "count": 2, "endpoint": "leads.sync"}
    )
    assert added.status == 201
    assert (await mkto.call("GET", DESCRIBE)).body["success"] is True
    for _ in range(2):
        failed = await mkto.sync([{"email": "x@example.com"}])
        assert failed.status == 200
        assert failed.body["errors"] == [{"code": "611", "message": "System error"}]
    assert (await mkto.sync([{"email": "x@example.com"}])).body["success"] is True


async def test_code_fault_with_message_on_any_rest_call(mkto: MarketoHttp) -> None:
    await mkto.auth()
    await mkto.raw("POST", "/_sandbox/faults", json={"code": 606, "message": "slow down"})
    assert (await mkto.call("GET", DESCRIBE)).body["errors"] == [
        {"code": "606", "message": "slow down"}
    ]
    assert (await mkto.call("GET", DESCRIBE)).body["success"] is True


async def test_http_status_fault_and_identity_fault(mkto: MarketoHttp) -> None:
    await mkto.auth()
    await mkto.raw("POST", "/_sandbox/faults", json={"status": 502})
    assert (await mkto.call("GET", DESCRIBE)).status == 502
    await mkto.raw("POST", "/_sandbox/faults", json={"status": 503, "endpoint": "identity"})
    reply = await mkto.raw(
        "GET",
        "/identity/oauth/token",
        params={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        },
    )
    assert reply.status == 503
    await mkto.auth()


async def test_bad_admin_requests_are_400(mkto: MarketoHttp) -> None:
    assert (await mkto.raw("POST", "/_sandbox/faults", json={"count": 1})).status == 400
    assert (await mkto.raw("POST", "/_sandbox/faults", data=b"nope")).status == 400
    assert (await mkto.raw("POST", "/_sandbox/latency", json={"ms": "x"})).status == 400
    assert (
        await mkto.raw("POST", "/_sandbox/outage", json={"seconds": 1, "mode": "x"})
    ).status == 400


async def test_latency_is_added_to_every_call(mkto: MarketoHttp) -> None:
    await mkto.auth()
    await mkto.raw("POST", "/_sandbox/latency", json={"ms": 150})
    started = time.monotonic()
    await mkto.call("GET", DESCRIBE)
    assert time.monotonic() - started >= 0.15
    await mkto.raw("DELETE", "/_sandbox/faults")
    status = (await mkto.raw("GET", "/_sandbox/status")).body
    assert status["faults"]["latencyMs"] == 0


async def test_outage_503_for_a_window_of_sandbox_time(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock(1_790_000_000.0)
    _sb, mkto = await signed_in(make_sandbox, http, clock=clock)
    await mkto.raw("POST", "/_sandbox/outage", json={"seconds": 30})
    assert (await mkto.call("GET", DESCRIBE)).status == 503
    assert (await mkto.raw("GET", "/identity/oauth/token")).status == 503
    clock.advance(30)
    assert (await mkto.call("GET", DESCRIBE)).body["success"] is True


async def test_outage_drop_closes_connection_without_reply(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock(1_790_000_000.0)
    sb, mkto = await signed_in(make_sandbox, http, clock=clock)
    sb.start_outage(10, mode="drop")
    with pytest.raises(aiohttp.ClientError):
        await mkto.call("GET", DESCRIBE)
    sb.end_outage()
    assert (await mkto.call("GET", DESCRIBE)).body["success"] is True


async def test_revoke_expire_and_exhaust(mkto: MarketoHttp) -> None:
    await mkto.auth()
    assert (await mkto.raw("POST", "/_sandbox/tokens/expire")).body["expired"] == 1
    assert (await mkto.call("GET", DESCRIBE)).code == "602"
    await mkto.auth()
    assert (await mkto.raw("POST", "/_sandbox/tokens/revoke")).status == 200
    assert (await mkto.call("GET", DESCRIBE)).code == "601"
    await mkto.auth()
    await mkto.raw("POST", "/_sandbox/quota/exhaust")
    assert (await mkto.call("GET", DESCRIBE)).code == "607"
    await mkto.raw("POST", "/_sandbox/reset")
    assert (await mkto.call("GET", DESCRIBE)).body["success"] is True


async def test_reset_restores_seeded_instance(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    sb = await make_sandbox(seed={"leads": [{"email": "seed@example.com", "firstName": "S"}]})
    mkto = MarketoHttp(http, sb.url)
    await mkto.sync([{"email": "new@example.com"}])
    sb.inject_error("611", count=5)
    assert len(sb.state.leads) == 2
    sb.reset()
    assert [lead["email"] for lead in sb.state.leads.values()] == ["seed@example.com"]
    assert sb.state.calls == [] and sb.faults.queue == []
    assert (await mkto.call("GET", DESCRIBE)).body["success"] is True


async def test_reset_keeps_state_object_and_seed_is_validated(sandbox: Sandbox) -> None:
    state = sandbox.state
    sandbox.add_lead(email="gone@example.com")
    sandbox.reset()
    assert sandbox.state is state and state.leads == {}
    with pytest.raises(ValueError, match="favouriteColour"):
        Sandbox(SandboxConfig(seed={"leads": [{"email": "a@b.co", "favouriteColour": "x"}]}))
    with pytest.raises(ValueError, match="numberOfEmployees"):
        Sandbox(SandboxConfig(seed={"leads": [{"numberOfEmployees": "lots"}]}))
