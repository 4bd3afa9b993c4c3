"""Programs in the sandbox over real HTTP: channels and programs listed as the asset API does,
member statuses moved forward only by both status endpoints, every limit and error code."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from simulators.marketo.sandbox import Sandbox, SandboxConfig
from tests.marketo.conftest import MarketoHttp, signed_in
from tests.support.fixtures import MakeSandbox

PROGRAM = 1044
LEAD_STATUS = f"/rest/v1/leads/programs/{PROGRAM}/status.json"
MEMBER_STATUS = f"/rest/v1/programs/{PROGRAM}/members/status.json"


async def leads(mkto: MarketoHttp, n: int, prefix: str = "p") -> list[int]:
    reply = await mkto.sync([{"email": f"{prefix}{i}@example.com"} for i in range(n)])
    return [r["id"] for r in reply.body["result"]]


async def member_status(mkto: MarketoHttp, status: str, ids: list[Any], **body: Any) -> Any:
    payload = {"statusName": status, "input": [{"leadId": i} for i in ids], **body}
    return (await mkto.call("POST", MEMBER_STATUS, json=payload)).body


async def test_channels_list_progression_statuses(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", "/rest/asset/v1/channels.json")
    webinar = next(c for c in reply.body["result"] if c["name"] == "Webinar")
    steps = {s["name"]: (s["step"], s["success"]) for s in webinar["progressionStatuses"]}
    assert steps["Registered"] == (20, False) and steps["Attended"] == (40, True)
    assert webinar["applicableProgramType"] == "event"
    by_name = await mkto.call(
        "GET", "/rest/asset/v1/channel/byName.json", params={"name": "Webinar"}
    )
    assert by_name.body["result"] == [webinar]
    missing = await mkto.call("GET", "/rest/asset/v1/channel/byName.json", params={"name": "No"})
    assert missing.body["success"] is True and "result" not in missing.body
    assert missing.body["warnings"] == ["No assets found for the given search criteria."]


async def test_programs_browse_pages_by_offset_and_filters(mkto: MarketoHttp) -> None:
    seen: list[int] = []
    offset = 0
    for _ in range(10):
        reply = await mkto.call(
            "GET", "/rest/asset/v1/programs.json", params={"maxReturn": 2, "offset": offset}
        )
        page = reply.body.get("result", [])
        seen += [p["id"] for p in page]
        if len(page) < 2:
            break
        offset += 2
    assert seen == [1044, 1045, 1046]
    one = await mkto.call("GET", f"/rest/asset/v1/program/{PROGRAM}.json")
    item = one.body["result"][0]
    assert item["channel"] == "Webinar" and item["type"] == "Event"
    assert item["folder"] == {"type": "Folder", "value": 15, "folderName": "Events"}
    named = await mkto.call(
        "GET", "/rest/asset/v1/program/byName.json", params={"name": "Customer Roadshow"}
    )
    assert [p["id"] for p in named.body["result"]] == [1045]
    filtered = await mkto.call(
        "GET",
        "/rest/asset/v1/programs.json",
        params={"filterType": "id", "filterValues": "1045,1046"},
    )
    assert [p["id"] for p in filtered.body["result"]] == [1045, 1046]
    bad = await mkto.call("GET", "/rest/asset/v1/programs.json", params={"filterType": "colour"})
    assert bad.code == "1003"
    too_many = await mkto.call("GET", "/rest/asset/v1/programs.json", params={"maxReturn": 201})
    assert too_many.code == "1003"


async def test_member_status_adds_members_then_moves_forward_only(
    mkto: MarketoHttp, sandbox: Sandbox
) -> None:
    ids = await leads(mkto, 3)
    body = await member_status(mkto, "Registered", ids)
    assert body["success"] is True
    assert body["result"] == [
        {"seq": n, "leadId": i, "status": "created"} for n, i in enumerate(ids)
    ]
    moved = await member_status(mkto, "attended", ids[:2])  # names match in any case
    assert [r["status"] for r in moved["result"]] == ["updated", "updated"]
    back = await member_status(mkto, "Registered", ids)
    assert [r["status"] for r in back["result"]] == ["skipped"] * 3
    reasons = [r["reasons"][0] for r in back["result"]]
    assert [r["code"] for r in reasons] == ["1037"] * 3
    assert "current status 'Attended'" in reasons[0]["message"]
    assert "current status 'Registered'" in reasons[2]["message"]
    members = sandbox.state.members[PROGRAM]
    assert [members[i]["statusName"] for i in ids] == ["Attended", "Attended", "Registered"]
    assert members[ids[0]]["reachedSuccess"] is True and members[ids[2]]["reachedSuccess"] is False
    shown = (await mkto.raw("GET", "/_sandbox/programs", params={"programId": PROGRAM})).body
    program = shown["programs"][0]
    assert program["channel"] == "Webinar"
    assert [(m["leadId"], m["statusName"]) for m in program["members"]] == [
        (ids[0], "Attended"),
        (ids[1], "Attended"),
        (ids[2], "Registered"),
    ]
    changes = (await mkto.raw("GET", "/_sandbox/program-status-changes")).body["statusChanges"]
    assert [(c["leadId"], c["from"], c["to"]) for c in changes] == [
        (ids[0], None, "Registered"),
        (ids[1], None, "Registered"),
        (ids[2], None, "Registered"),
        (ids[0], "Registered", "Attended"),
        (ids[1], "Registered", "Attended"),
    ]
    status = (await mkto.raw("GET", "/_sandbox/")).body
    assert status["programMembers"] == {str(PROGRAM): 3}


async def test_lead_program_status_endpoint_as_public_clients_call_it(
    mkto: MarketoHttp, sandbox: Sandbox
) -> None:
    """Change Lead Program Status: `status` and `input[].id`, results keyed by `id`."""
    ids = await leads(mkto, 2)
    reply = await mkto.call(
        "POST", LEAD_STATUS, json={"status": "No Show", "input": [{"id": i} for i in ids]}
    )
    assert reply.body["result"] == [{"id": i, "status": "updated"} for i in ids]
    again = await mkto.call(
        "POST", LEAD_STATUS, json={"status": "Attended", "input": [{"id": ids[0]}]}
    )
    assert again.body["result"] == [{"id": ids[0], "status": "updated"}]
    back = await mkto.call(
        "POST", LEAD_STATUS, json={"status": "No Show", "input": [{"id": ids[0]}]}
    )
    assert back.body["result"][0]["status"] == "skipped"
    assert back.body["result"][0]["reasons"][0]["code"] == "1037"
    assert sandbox.state.members[PROGRAM][ids[1]]["statusName"] == "No Show"


async def test_same_step_alternative_is_a_move(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    ids = await leads(mkto, 1)
    path = "/rest/v1/programs/1045/members/status.json"
    for name in ("Waitlisted", "Registered"):
        reply = await mkto.call(
            "POST", path, json={"statusName": name, "input": [{"leadId": ids[0]}]}
        )
        assert reply.body["result"][0]["status"] in ("created", "updated")
    assert sandbox.state.members[1045][ids[0]]["statusName"] == "Registered"


async def test_record_level_failures_keep_input_order(mkto: MarketoHttp) -> None:
    ids = await leads(mkto, 1)
    body = await member_status(mkto, "Registered", [ids[0], 999_999, ids[0], "x"])
    result = body["result"]
    assert [r["status"] for r in result] == ["created", "skipped", "skipped", "skipped"]
    assert [r.get("reasons", [{}])[0].get("code") for r in result] == [None, "1004", "1036", "1003"]
    assert [r["seq"] for r in result] == [0, 1, 2, 3]
    assert "leadId" not in result[3]


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (
            "/rest/v1/programs/4242/members/status.json",
            {"statusName": "Registered", "input": [{"leadId": 1}]},
            "1013",
        ),
        (
            "/rest/v1/programs/abc/members/status.json",
            {"statusName": "Registered", "input": [{"leadId": 1}]},
            "1001",
        ),
        (MEMBER_STATUS, {"statusName": "Checked In", "input": [{"leadId": 1}]}, "1025"),
        (MEMBER_STATUS, {"input": [{"leadId": 1}]}, "701"),
        (MEMBER_STATUS, {"statusName": "Registered", "input": []}, "701"),
        (MEMBER_STATUS, {"statusName": "Registered", "input": {"leadId": 1}}, "1003"),
        (LEAD_STATUS, {"status": "Registered"}, "701"),
        (LEAD_STATUS, {"status": "Engaged", "input": [{"id": 1}]}, "1025"),
    ],
)
async def test_request_level_errors(
    mkto: MarketoHttp, path: str, body: dict[str, Any], code: str
) -> None:
    reply = await mkto.call("POST", path, json=body)
    assert reply.status == 200 and reply.body["success"] is False
    assert reply.code == code, reply.body


async def test_unknown_status_names_the_channel_statuses(mkto: MarketoHttp) -> None:
    reply = await mkto.call(
        "POST", MEMBER_STATUS, json={"statusName": "Checked In", "input": [{"leadId": 1}]}
    )
    message = reply.body["errors"][0]["message"]
    assert "'Checked In'" in message and "Webinar" in message and "Attended" in message


async def test_batch_over_300_is_refused_and_300_is_taken(
    mkto: MarketoHttp, sandbox: Sandbox
) -> None:
    ids = [sandbox.add_lead(email=f"b{i}@example.com") for i in range(301)]
    over = await member_status(mkto, "Registered", ids)
    assert over["success"] is False and over["errors"][0]["code"] == "1003"
    assert PROGRAM not in sandbox.state.members
    full = await member_status(mkto, "Registered", ids[:300])
    assert len(full["result"]) == 300
    calls = sandbox.calls("programs.memberStatus")
    assert [c.batchSize for c in calls] == [301, 300]


async def test_status_changes_count_against_the_rate_window(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    sb, mkto = await signed_in(make_sandbox, http, rate_limit_calls=3)
    lead = sb.add_lead(email="r@example.com")
    for _ in range(3):
        body = await member_status(mkto, "Registered", [lead])
        assert body["success"] is True
    refused = await member_status(mkto, "Attended", [lead])
    assert refused["errors"][0]["code"] == "606"
    assert sb.state.members[PROGRAM][lead]["statusName"] == "Registered"


async def test_seeded_programs_and_channels_merge_and_are_checked(
    make_sandbox: MakeSandbox,
) -> None:
    sb = await make_sandbox(
        seed={
            "channels": [{"id": 9, "name": "Summit", "statuses": [{"name": "Booked", "step": 10}]}],
            "programs": [{"id": 7000, "name": "Summit 2026", "channel": "Summit"}],
        }
    )
    assert {1044, 7000} <= set(sb.state.programs)
    with pytest.raises(ValueError, match="channel 'Nope' not found"):
        Sandbox(SandboxConfig(seed={"programs": [{"id": 1, "name": "X", "channel": "Nope"}]}))


async def test_reset_forgets_members(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    ids = await leads(mkto, 1)
    await member_status(mkto, "Registered", ids)
    await mkto.raw("POST", "/_sandbox/reset")
    assert sandbox.state.members == {} and sandbox.state.status_changes == []
