"""Campaigns list / get / Request Campaign (reference §5, checklist items 6, 7, 10, 14, 15)."""

from __future__ import annotations

from simulators.marketo.sandbox import Sandbox
from tests.marketo.conftest import MarketoHttp
from tests.support.fixtures import MakeSandbox

CAMPAIGNS = "/rest/v1/campaigns.json"


def trigger(campaign_id: int) -> str:
    return f"/rest/v1/campaigns/{campaign_id}/trigger.json"


async def test_list_items_have_marketo_shape(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", CAMPAIGNS)
    ids = [c["id"] for c in reply.body["result"]]
    assert {1001, 1002, 2001, 3001} <= set(ids)
    item = reply.body["result"][0]
    assert set(item) >= {
        "id",
        "name",
        "type",
        "programName",
        "programId",
        "workspaceName",
        "createdAt",
        "updatedAt",
        "active",
    }
    types = {c["id"]: c["type"] for c in reply.body["result"]}
    assert types[1001] == "trigger" and types[2001] == "batch"


async def test_is_triggerable_keeps_active_requestable_trigger_campaigns(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", CAMPAIGNS, params={"isTriggerable": "true"})
    assert [c["id"] for c in reply.body["result"]] == [1001, 1002]


async def test_id_and_name_filters_repeated_or_comma(mkto: MarketoHttp) -> None:
    comma = await mkto.call("GET", CAMPAIGNS, params={"id": "1001,2001"})
    repeated = await mkto.call("GET", CAMPAIGNS, params=[("id", "1001"), ("id", "2001")])
    assert [c["id"] for c in comma.body["result"]] == [1001, 2001]
    assert repeated.body["result"] == comma.body["result"]
    by_name = await mkto.call("GET", CAMPAIGNS, params={"name": "Attended Event"})
    assert [c["id"] for c in by_name.body["result"]] == [1002]


async def test_post_with_method_get_reads_ids_from_body(mkto: MarketoHttp) -> None:
    reply = await mkto.call(
        "POST", CAMPAIGNS, params={"_method": "GET"}, data=[("id", "1001"), ("id", "1002")]
    )
    assert [c["id"] for c in reply.body["result"]] == [1001, 1002]


async def test_paging_terminates_and_omits_token_on_last_page(mkto: MarketoHttp) -> None:
    seen: list[int] = []
    token = None
    for _ in range(10):
        params = {"batchSize": "2", **({"nextPageToken": token} if token else {})}
        reply = await mkto.call("GET", CAMPAIGNS, params=params)
        seen += [c["id"] for c in reply.body["result"]]
        token = reply.body.get("nextPageToken")
        if not reply.body["result"] or not token:
            break
    assert token is None
    assert seen == sorted(seen) and len(seen) == len(set(seen)) >= 4
    too_big = await mkto.call("GET", CAMPAIGNS, params={"batchSize": "301"})
    assert too_big.code == "1003"


async def test_get_by_id_and_unknown_is_1013(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", "/rest/v1/campaigns/1001.json")
    assert reply.body["result"][0]["name"] == "Registration Confirmed"
    missing = await mkto.call("GET", "/rest/v1/campaigns/999.json")
    assert missing.body["success"] is False and missing.code == "1013"


async def test_trigger_accepts_and_records_run(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    lead_id = sandbox.add_lead(email="t@example.com")
    reply = await mkto.call(
        "POST",
        trigger(1001),
        json={
            "input": {
                "leads": [{"id": lead_id}],
                "tokens": [{"name": "{{my.message}}", "value": "Hi"}],
            }
        },
    )
    assert reply.status == 200
    assert reply.body["success"] is True and reply.body["result"] == [{"id": 1001}]
    [run] = sandbox.state.campaign_runs
    assert run["campaignId"] == 1001 and run["leadIds"] == [lead_id]
    assert run["tokens"] == [{"name": "{{my.message}}", "value": "Hi"}]
    assert run["requestId"] == reply.body["requestId"]


async def test_trigger_refusals(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    lead = {"input": {"leads": [{"id": sandbox.add_lead(email="r@example.com")}]}}
    batch = await mkto.call("POST", trigger(2001), json=lead)
    unknown = await mkto.call("POST", trigger(9999), json=lead)
    inactive = await mkto.call("POST", trigger(3001), json=lead)
    no_ws_trigger = await mkto.call("POST", trigger(3002), json=lead)
    for reply, code in (
        (batch, "1003"),
        (unknown, "1013"),
        (inactive, "1003"),
        (no_ws_trigger, "1003"),
    ):
        assert reply.status == 200 and reply.body["success"] is False
        assert reply.code == code
    assert sandbox.state.campaign_runs == []


async def test_trigger_input_validation(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    lead_id = sandbox.add_lead(email="v@example.com")
    bad_token = await mkto.call(
        "POST",
        trigger(1001),
        json={"input": {"leads": [{"id": lead_id}], "tokens": [{"name": "message", "value": "x"}]}},
    )
    assert bad_token.code == "1003"
    many_leads = await mkto.call(
        "POST", trigger(1001), json={"input": {"leads": [{"id": i} for i in range(101)]}}
    )
    assert many_leads.code == "1003"
    many_tokens = await mkto.call(
        "POST",
        trigger(1001),
        json={
            "input": {
                "leads": [{"id": lead_id}],
                "tokens": [{"name": f"{{{{my.t{i}}}}}", "value": "v"} for i in range(101)],
            }
        },
    )
    assert many_tokens.code == "1003"
    no_leads = await mkto.call("POST", trigger(1001), json={"input": {"leads": []}})
    assert no_leads.code == "701"
    exactly_100 = await mkto.call(
        "POST",
        trigger(1001),
        json={
            "input": {
                "leads": [{"id": lead_id}] * 100,
                "tokens": [{"name": f"{{{{my.t{i}}}}}", "value": "v"} for i in range(100)],
            }
        },
    )
    assert exactly_100.body["success"] is True


async def test_unknown_leads_are_accepted_and_listed(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    known = sandbox.add_lead(email="k@example.com")
    reply = await mkto.call(
        "POST", trigger(1001), json={"input": {"leads": [{"id": known}, {"id": 987654}]}}
    )
    assert reply.body["success"] is True
    run = sandbox.state.campaign_runs[-1]
    assert run["leadIds"] == [known] and run["unknownLeadIds"] == [987654]


async def test_once_qualification_silently_suppresses_rerun(
    mkto: MarketoHttp, sandbox: Sandbox
) -> None:
    lead_id = sandbox.add_lead(email="once@example.com")
    body = {"input": {"leads": [{"id": lead_id}]}}
    first = await mkto.call("POST", trigger(1002), json=body)
    again = await mkto.call("POST", trigger(1002), json=body)
    assert first.body["success"] and again.body["success"]
    runs = sandbox.state.campaign_runs
    assert runs[0]["leadIds"] == [lead_id]
    assert runs[1]["leadIds"] == [] and runs[1]["suppressedLeadIds"] == [lead_id]


async def test_seeded_campaigns_merge_over_defaults(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox(
        seed={"campaigns": [{"id": 4001, "name": "Seeded"}, {"id": 1001, "name": "Renamed"}]}
    )
    assert sb.state.campaigns[4001].name == "Seeded"
    assert sb.state.campaigns[1001].name == "Renamed"
    assert 2001 in sb.state.campaigns


async def test_asset_smart_campaigns_offset_paging(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    seen: list[int] = []
    offset = 0
    for _ in range(10):
        reply = await mkto.call(
            "GET", "/rest/asset/v1/smartCampaigns.json", params={"maxReturn": 2, "offset": offset}
        )
        rows = reply.body.get("result") or []
        seen += [c["id"] for c in rows]
        if len(rows) < 2:
            break
        offset += 2
    assert seen == sorted(sandbox.state.campaigns)
    one = await mkto.call("GET", "/rest/asset/v1/smartCampaign/1002.json")
    [item] = one.body["result"]
    assert item["isRequestable"] is True and item["qualificationRuleType"] == "once"
    batch = await mkto.call("GET", "/rest/asset/v1/smartCampaign/2001.json")
    assert batch.body["result"][0]["isRequestable"] is False
    none = await mkto.call("GET", "/rest/asset/v1/smartCampaign/9.json")
    assert none.body["warnings"] == ["No assets found for the given search criteria."]
