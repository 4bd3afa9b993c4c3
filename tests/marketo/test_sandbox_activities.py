"""Activity log endpoints of the sandbox over HTTP: types by name, date tokens, filters, paging,
limits and Marketo's envelope (simulators/marketo/activities.py)."""

from __future__ import annotations

from typing import Any

import aiohttp

from simulators.marketo.config import ManualClock
from simulators.marketo.sandbox import Sandbox
from tests.marketo.conftest import MarketoHttp
from tests.support.fixtures import MakeSandbox

TYPES = "/rest/v1/activities/types.json"
TOKEN = "/rest/v1/activities/pagingtoken.json"
ACTIVITIES = "/rest/v1/activities.json"
CAMPAIGN = 1001
START = 1_900_000_000.0


async def signed_in(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession, **config: Any
) -> tuple[Sandbox, MarketoHttp, ManualClock]:
    clock = ManualClock(START)
    sandbox = await make_sandbox(clock=clock, **config)
    mkto = MarketoHttp(http, sandbox.url)
    await mkto.auth()
    return sandbox, mkto, clock


async def type_ids(mkto: MarketoHttp) -> dict[str, int]:
    reply = await mkto.call("GET", TYPES)
    assert reply.body["success"] is True
    return {t["name"]: t["id"] for t in reply.body["result"]}


async def token_since(mkto: MarketoHttp, when: str) -> str:
    reply = await mkto.call("GET", TOKEN, params={"sinceDatetime": when})
    assert reply.body["success"] is True, reply.body
    token = reply.body["nextPageToken"]
    assert isinstance(token, str) and token
    return token


async def leads(mkto: MarketoHttp, count: int, prefix: str = "act") -> list[int]:
    reply = await mkto.sync([{"email": f"{prefix}{n}@example.com"} for n in range(count)])
    return [r["id"] for r in reply.body["result"]]


async def trigger(mkto: MarketoHttp, lead_ids: list[int], campaign: int = CAMPAIGN) -> None:
    body = {"input": {"leads": [{"id": i} for i in lead_ids]}}
    reply = await mkto.call("POST", f"/rest/v1/campaigns/{campaign}/trigger.json", json=body)
    assert reply.body["success"] is True, reply.body


async def test_types_name_the_activities_the_sandbox_logs(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", TYPES)
    assert list(reply.body) == ["requestId", "result", "success"]
    by_name = {t["name"]: t for t in reply.body["result"]}
    for name in (
        "Request Campaign",
        "Fill Out Form",
        "Change Status in Progression",
        "New Lead",
        "Change Data Value",
    ):
        assert isinstance(by_name[name]["id"], int)
    assert by_name["Request Campaign"]["primaryAttribute"] == {
        "name": "Campaign ID",
        "dataType": "integer",
    }


async def test_request_campaign_activities_since_a_date_filtered_by_lead(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    sandbox, mkto, clock = await signed_in(make_sandbox, http)
    ids = await type_ids(mkto)
    first, second, third = await leads(mkto, 3)
    await trigger(mkto, [first, second])
    clock.advance(60)
    await trigger(mkto, [second, third])
    token = await token_since(mkto, "2030-03-17T17:47:00Z")  # between START and START + 60 s
    reply = await mkto.call(
        "GET",
        ACTIVITIES,
        params={
            "nextPageToken": token,
            "activityTypeIds": str(ids["Request Campaign"]),
            "leadIds": f"{first},{second}",
        },
    )
    body = reply.body
    assert body["success"] is True and body["moreResult"] is False and body["nextPageToken"]
    [activity] = body["result"]
    assert activity["leadId"] == second
    assert activity["activityTypeId"] == ids["Request Campaign"]
    assert activity["primaryAttributeValueId"] == CAMPAIGN
    assert activity["activityDate"] == "2030-03-17T17:47:40Z"
    assert {"name": "Source", "value": "Web Service API"} in activity["attributes"]
    everything = await mkto.call(
        "GET",
        ACTIVITIES,
        params={
            "nextPageToken": await token_since(mkto, "2030-01-01T00:00:00Z"),
            "activityTypeIds": f"{ids['Request Campaign']},{ids['New Lead']}",
        },
    )
    kinds = [(a["activityTypeId"], a["leadId"]) for a in everything.body["result"]]
    assert kinds.count((ids["New Lead"], first)) == 1
    assert [lead for kind, lead in kinds if kind == ids["Request Campaign"]] == [
        first,
        second,
        second,
        third,
    ]
    assert len(sandbox.state.activities) >= 7


async def test_pages_follow_next_page_token_until_more_result_is_false(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    _, mkto, _ = await signed_in(make_sandbox, http)
    ids = await type_ids(mkto)
    lead_ids = await leads(mkto, 25)
    await trigger(mkto, lead_ids)
    params = {
        "nextPageToken": await token_since(mkto, "2030-01-01T00:00:00Z"),
        "activityTypeIds": str(ids["Request Campaign"]),
        "batchSize": "10",
    }
    seen: list[int] = []
    pages = 0
    while True:
        reply = await mkto.call("GET", ACTIVITIES, params=params)
        pages += 1
        seen.extend(a["leadId"] for a in reply.body.get("result", []))
        if not reply.body["moreResult"]:
            break
        params["nextPageToken"] = reply.body["nextPageToken"]
    assert seen == lead_ids
    assert pages == 3
    # The last token reads what happens after it, and nothing before.
    await trigger(mkto, lead_ids[:1])
    later = await mkto.call(
        "GET", ACTIVITIES, params=params | {"nextPageToken": reply.body["nextPageToken"]}
    )
    assert [a["leadId"] for a in later.body["result"]] == lead_ids[:1]


async def test_form_fill_and_program_status_are_logged(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    sandbox, mkto, _ = await signed_in(make_sandbox, http)
    ids = await type_ids(mkto)
    form = next(iter(sandbox.state.forms.values()))
    fields = {"email": "filler@example.com"}
    submitted = await mkto.call(
        "POST",
        "/rest/v1/leads/submitForm.json",
        json={"formId": form.id, "input": [{"leadFormFields": fields}]},
    )
    lead_id = submitted.body["result"][0]["id"]
    program = next(iter(sandbox.state.programs.values()))
    status = next(s for s in sandbox.state.channel_of(program).statuses if s.step > 0)
    moved = await mkto.call(
        "POST",
        f"/rest/v1/leads/programs/{program.id}/status.json",
        json={"status": status.name, "input": [{"id": lead_id}]},
    )
    assert moved.body["result"][0]["status"] == "updated", moved.body
    reply = await mkto.call(
        "GET",
        ACTIVITIES,
        params={
            "nextPageToken": await token_since(mkto, "2030-01-01T00:00:00Z"),
            "activityTypeIds": f"{ids['Fill Out Form']},{ids['Change Status in Progression']}",
            "leadIds": str(lead_id),
        },
    )
    got = [(a["activityTypeId"], a["primaryAttributeValueId"]) for a in reply.body["result"]]
    assert got == [
        (ids["Fill Out Form"], form.id),
        (ids["Change Status in Progression"], program.id),
    ]


async def test_limits_and_bad_parameters_answer_with_marketo_codes(mkto: MarketoHttp) -> None:
    ids = await type_ids(mkto)
    token = await token_since(mkto, "2030-01-01T00:00:00Z")
    request = str(ids["Request Campaign"])

    async def code(**params: str) -> str | None:
        return (await mkto.call("GET", ACTIVITIES, params=params)).code

    assert await code(activityTypeIds=request) == "701"
    assert await code(nextPageToken=token) == "701"
    assert await code(nextPageToken="not-a-token", activityTypeIds=request) == "1003"
    many_leads = ",".join(str(n) for n in range(1, 32))
    assert await code(nextPageToken=token, activityTypeIds=request, leadIds=many_leads) == "1003"
    many_types = ",".join(str(n) for n in range(1, 12))
    assert await code(nextPageToken=token, activityTypeIds=many_types) == "1003"
    assert await code(nextPageToken=token, activityTypeIds="99999") == "1003"
    assert await code(nextPageToken=token, activityTypeIds=request, batchSize="301") == "1003"
    assert await code(nextPageToken=token, activityTypeIds="x") == "1001"
    ok = await mkto.call(
        "GET", ACTIVITIES, params={"nextPageToken": token, "activityTypeIds": request}
    )
    assert ok.body["success"] is True and "result" not in ok.body


async def test_activity_calls_count_against_the_rate_limit_and_take_injected_errors(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    sandbox, mkto, _ = await signed_in(make_sandbox, http, rate_limit_calls=2)
    token = await token_since(mkto, "2030-01-01T00:00:00Z")
    assert (await mkto.call("GET", TYPES)).body["success"] is True
    limited = await mkto.call("GET", ACTIVITIES, params={"nextPageToken": token})
    assert limited.code == "606"
    sandbox.rate.reset()
    sandbox.inject_error("611", endpoint="activities.list")
    failed = await mkto.call(
        "GET", ACTIVITIES, params={"nextPageToken": token, "activityTypeIds": "47"}
    )
    assert failed.code == "611" and failed.body["success"] is False
