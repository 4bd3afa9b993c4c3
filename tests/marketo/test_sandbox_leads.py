"""Lead database endpoints (reference §2, §3, §5, §6; checklist items 6–8, 11–13)."""

from __future__ import annotations

import re

from simulators.marketo.sandbox import Sandbox
from tests.marketo.conftest import MarketoHttp

LEADS = "/rest/v1/leads.json"


async def test_envelope_shape_and_request_id(mkto: MarketoHttp) -> None:
    reply = await mkto.sync([{"email": "a@example.com"}])
    assert list(reply.body) == ["requestId", "result", "success"]
    assert re.fullmatch(r"[0-9a-f]+#[0-9a-f]+", reply.body["requestId"])
    assert reply.headers["Content-Type"].startswith("application/json")


async def test_create_then_update_on_email_case_insensitively(
    mkto: MarketoHttp, sandbox: Sandbox
) -> None:
    created = await mkto.sync([{"email": "Ana@Example.com", "firstName": "Ana"}])
    [item] = created.body["result"]
    assert item["status"] == "created" and isinstance(item["id"], int)
    updated = await mkto.sync([{"email": "ana@example.com", "title": "CTO"}])
    assert updated.body["result"] == [{"id": item["id"], "status": "updated"}]
    lead = sandbox.state.leads[item["id"]]
    assert (lead["firstName"], lead["title"]) == ("Ana", "CTO")


async def test_record_results_in_input_order_skipped_without_id(mkto: MarketoHttp) -> None:
    await mkto.sync([{"email": "exists@example.com"}])
    reply = await mkto.sync(
        [
            {"email": "new1@example.com"},
            {"email": "not-an-email"},
            {"email": "exists@example.com"},
            {"email": "x@example.com", "favouriteColour": "blue"},
            {"email": "y@example.com", "numberOfEmployees": "many"},
            {"email": "z@example.com", "unsubscribed": {"no": 1}},
            {"email": "new2@example.com", "numberOfEmployees": "42", "unsubscribed": "true"},
        ],
        action="createOnly",
    )
    assert reply.body["success"] is True
    result = reply.body["result"]
    assert [r["status"] for r in result] == [
        "created",
        "skipped",
        "skipped",
        "skipped",
        "skipped",
        "skipped",
        "created",
    ]
    for r in result:
        assert ("id" in r) == (r["status"] != "skipped")
        if r["status"] == "skipped":
            assert isinstance(r["reasons"][0]["code"], str)
    assert result[1]["reasons"] == [{"code": "1003", "message": "Invalid value for field 'email'"}]
    assert result[2]["reasons"] == [{"code": "1005", "message": "Lead already exists"}]
    assert result[3]["reasons"] == [
        {"code": "1006", "message": "Field 'favouriteColour' not found"}
    ]
    assert result[4]["reasons"][0]["code"] == "1003"
    assert result[5]["reasons"][0]["code"] == "1003"


async def test_update_only_not_found_is_1004(mkto: MarketoHttp) -> None:
    reply = await mkto.sync([{"email": "ghost@example.com"}], action="updateOnly")
    assert reply.body["result"] == [
        {"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]}
    ]


async def test_update_only_by_id(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    lead_id = sandbox.add_lead(email="byid@example.com")
    reply = await mkto.sync(
        [{"id": lead_id, "city": "Seattle"}], action="updateOnly", lookupField="id"
    )
    assert reply.body["result"] == [{"id": lead_id, "status": "updated"}]
    assert sandbox.state.leads[lead_id]["city"] == "Seattle"


async def test_id_outside_update_only_is_1003(mkto: MarketoHttp) -> None:
    reply = await mkto.sync([{"id": 5, "email": "i@example.com"}], action="createOnly")
    assert reply.body["result"][0]["reasons"][0]["code"] == "1003"


async def test_duplicates_make_create_or_update_1007(mkto: MarketoHttp) -> None:
    dup = [{"email": "twin@example.com"}]
    one = await mkto.sync(dup, action="createDuplicate")
    two = await mkto.sync(dup, action="createDuplicate")
    assert one.body["result"][0]["id"] != two.body["result"][0]["id"]
    reply = await mkto.sync(dup)
    assert reply.body["result"][0]["reasons"] == [
        {"code": "1007", "message": "Multiple leads match the lookup criteria"}
    ]


async def test_missing_lookup_value_and_read_only_field_are_skipped(mkto: MarketoHttp) -> None:
    reply = await mkto.sync([{"firstName": "NoMail"}, {"email": "r@example.com", "createdAt": "x"}])
    assert [r["status"] for r in reply.body["result"]] == ["skipped", "skipped"]
    assert reply.body["result"][0]["reasons"][0]["code"] == "1002"


async def test_unknown_top_level_keys_are_ignored(mkto: MarketoHttp) -> None:
    reply = await mkto.sync(
        [{"email": "k@example.com"}], **{"asyncProcessing ": "false", "whatever": 1}
    )
    assert reply.body["result"][0]["status"] == "created"


async def test_request_level_failures(mkto: MarketoHttp) -> None:
    too_many = await mkto.sync([{"email": f"u{i}@example.com"} for i in range(301)])
    assert too_many.body["success"] is False and too_many.code == "1003"
    assert (await mkto.sync([])).code == "701"
    bad_lookup = await mkto.sync([{"email": "a@b.co"}], lookupField="firstName")
    assert bad_lookup.code == "1011"
    bad_action = await mkto.sync([{"email": "a@b.co"}], action="upsert")
    assert bad_action.code == "1003"
    not_json = await mkto.call(
        "POST", LEADS, data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.code == "609"
    plain = await mkto.call("POST", LEADS, data=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.code == "612"
    for reply in (too_many, bad_lookup, not_json):
        assert reply.status == 200 and "result" not in reply.body


async def test_exactly_300_records_are_accepted(mkto: MarketoHttp) -> None:
    reply = await mkto.sync([{"email": f"b{i}@example.com"} for i in range(300)])
    assert len(reply.body["result"]) == 300


async def test_filter_by_email_comma_separated_or_repeated(
    mkto: MarketoHttp, sandbox: Sandbox
) -> None:
    a = sandbox.add_lead(email="a@example.com", firstName="A")
    b = sandbox.add_lead(email="b@example.com", firstName="B")
    comma = await mkto.call(
        "GET", LEADS, params={"filterType": "email", "filterValues": "a@example.com,b@example.com"}
    )
    repeated = await mkto.call(
        "GET",
        LEADS,
        params=[
            ("filterType", "email"),
            ("filterValues", "a@example.com"),
            ("filterValues", "b@example.com"),
        ],
    )
    assert [r["id"] for r in comma.body["result"]] == [a, b]
    assert repeated.body["result"] == comma.body["result"]
    assert "nextPageToken" not in comma.body and "moreResult" not in comma.body
    first = comma.body["result"][0]
    assert set(first) == {"id", "email", "updatedAt", "createdAt", "firstName", "lastName"}
    assert first["lastName"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["createdAt"])


async def test_filter_fields_repeated_or_comma_and_boolean_defaults(
    mkto: MarketoHttp, sandbox: Sandbox
) -> None:
    sandbox.add_lead(email="f@example.com", city="Austin")
    for fields in (
        "email,city,unsubscribed",
        [("fields", "email"), ("fields", "city,unsubscribed")],
    ):
        params = [("filterType", "email"), ("filterValues", "f@example.com")]
        params += [("fields", fields)] if isinstance(fields, str) else fields
        reply = await mkto.call("GET", LEADS, params=params)
        [row] = reply.body["result"]
        assert row == {
            "id": row["id"],
            "email": "f@example.com",
            "city": "Austin",
            "unsubscribed": False,
        }


async def test_filter_no_match_is_empty_result(mkto: MarketoHttp) -> None:
    reply = await mkto.call(
        "GET", LEADS, params={"filterType": "email", "filterValues": "none@example.com"}
    )
    assert reply.body["success"] is True and reply.body["result"] == []


async def test_filter_errors(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    unsupported = await mkto.call(
        "GET", LEADS, params={"filterType": "firstName", "filterValues": "Ana"}
    )
    assert unsupported.body["errors"] == [
        {"code": "1011", "message": "Field 'firstName' not supported"}
    ]
    too_many_values = await mkto.call(
        "GET",
        LEADS,
        params={"filterType": "id", "filterValues": ",".join(str(i) for i in range(1, 302))},
    )
    assert too_many_values.code == "1003"
    unknown_field = await mkto.call(
        "GET", LEADS, params={"filterType": "id", "filterValues": "1", "fields": "nope"}
    )
    assert unknown_field.code == "1006"
    for _ in range(1001):
        sandbox.add_lead(email="crowd@example.com")
    crowd = await mkto.call(
        "GET", LEADS, params={"filterType": "email", "filterValues": "crowd@example.com"}
    )
    assert crowd.body["success"] is False and crowd.code == "1003"


async def test_filter_on_custom_searchable_field(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    lead_id = sandbox.add_lead(email="c@example.com", certainRegistrationCode="R7QX2M9K1")
    reply = await mkto.call(
        "GET",
        LEADS,
        params={"filterType": "certainRegistrationCode", "filterValues": "R7QX2M9K1"},
    )
    assert [r["id"] for r in reply.body["result"]] == [lead_id]


async def test_filter_paging_terminates_and_omits_token_on_last_page(
    mkto: MarketoHttp, sandbox: Sandbox
) -> None:
    ids = [sandbox.add_lead(email=f"p{i}@example.com") for i in range(7)]
    params = {"filterType": "id", "filterValues": ",".join(map(str, ids)), "batchSize": "3"}
    seen: list[int] = []
    token: str | None = None
    pages = 0
    while True:
        query = dict(params, **({"nextPageToken": token} if token else {}))
        reply = await mkto.call("GET", LEADS, params=query)
        pages += 1
        assert pages <= 3
        seen += [r["id"] for r in reply.body["result"]]
        token = reply.body.get("nextPageToken")
        if not reply.body["result"] or not token:
            break
        assert reply.body["moreResult"] is True
    assert seen == ids and pages == 3
    bad = await mkto.call("GET", LEADS, params=dict(params, nextPageToken="garbage!"))
    assert bad.code == "1003"


async def test_post_with_method_get_is_filter_search_not_sync(
    mkto: MarketoHttp, sandbox: Sandbox
) -> None:
    lead_id = sandbox.add_lead(email="long@example.com")
    before = len(sandbox.state.leads)
    in_body = await mkto.call(
        "POST",
        LEADS,
        data={"_method": "GET", "filterType": "email", "filterValues": "long@example.com"},
    )
    in_query = await mkto.call(
        "POST",
        LEADS,
        params={"_method": "GET"},
        data=[("filterType", "id"), ("filterValues", str(lead_id)), ("fields", "email")],
    )
    assert [r["id"] for r in in_body.body["result"]] == [lead_id]
    assert in_query.body["result"] == [{"id": lead_id, "email": "long@example.com"}]
    assert len(sandbox.state.leads) == before
    assert [c.endpoint for c in sandbox.calls()][-2:] == ["leads.filter", "leads.filter"]


async def test_get_lead_by_id(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    lead_id = sandbox.add_lead(email="one@example.com", firstName="One")
    reply = await mkto.call("GET", f"/rest/v1/lead/{lead_id}.json")
    assert reply.body["result"][0]["firstName"] == "One"
    some = await mkto.call("GET", f"/rest/v1/lead/{lead_id}.json", params={"fields": "email,phone"})
    assert some.body["result"] == [{"id": lead_id, "email": "one@example.com", "phone": None}]
    missing = await mkto.call("GET", "/rest/v1/lead/999999.json")
    assert missing.body == {"requestId": missing.body["requestId"], "result": [], "success": True}


async def test_describe_lists_standard_and_custom_fields(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", "/rest/v1/leads/describe.json")
    fields = {f["rest"]["name"]: f for f in reply.body["result"]}
    writable = [
        "email",
        "firstName",
        "lastName",
        "title",
        "company",
        "phone",
        "mobilePhone",
        "address",
        "city",
        "state",
        "country",
        "postalCode",
        "numberOfEmployees",
        "unsubscribed",
        "certainRegistrationCode",
        "dietaryNeeds",
    ]
    for name in writable:
        assert fields[name]["rest"]["readOnly"] is False, name
    for name in ("id", "createdAt", "updatedAt", "mktoName", "originalSourceType"):
        assert fields[name]["rest"]["readOnly"] is True, name
    assert fields["email"]["dataType"] == "email" and fields["email"]["length"] == 255
    assert fields["numberOfEmployees"]["dataType"] == "integer"
    assert fields["unsubscribed"]["dataType"] == "boolean"
    assert fields["address"]["dataType"] == "text"
    assert fields["email"]["soap"] == {"name": "Email", "readOnly": False}
    assert "soap" not in fields["createdAt"]
    assert len(fields) >= 60


async def test_describe2(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", "/rest/v1/leads/describe2.json")
    [item] = reply.body["result"]
    assert item["name"] == "API Lead"
    assert ["email"] in item["searchableFields"] and ["id"] in item["searchableFields"]
    email = next(f for f in item["fields"] if f["name"] == "email")
    assert email == {
        "name": "email",
        "displayName": "Email Address",
        "dataType": "email",
        "length": 255,
        "updateable": True,
        "crmManaged": False,
    }


async def test_delete_three_ways(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    a, b, c = (sandbox.add_lead(email=f"d{i}@example.com") for i in range(3))
    post = await mkto.call(
        "POST", "/rest/v1/leads/delete.json", json={"input": [{"id": a}, {"id": 424242}]}
    )
    assert post.body["result"] == [
        {"id": a, "status": "deleted"},
        {"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]},
    ]
    delete = await mkto.call("DELETE", LEADS, json={"input": [{"id": b}]})
    assert delete.body["result"] == [{"id": b, "status": "deleted"}]
    override = await mkto.call(
        "POST", LEADS, params={"_method": "DELETE"}, json={"input": [{"id": c}]}
    )
    assert override.body["result"] == [{"id": c, "status": "deleted"}]
    assert not {a, b, c} & set(sandbox.state.leads)


async def test_push_lead_upserts_and_needs_program(mkto: MarketoHttp) -> None:
    ok = await mkto.call(
        "POST",
        "/rest/v1/leads/push.json",
        json={"programName": "Signal Demo Program", "input": [{"email": "push@example.com"}]},
    )
    assert ok.body["result"][0]["status"] == "created"
    missing = await mkto.call(
        "POST", "/rest/v1/leads/push.json", json={"input": [{"email": "a@b.co"}]}
    )
    assert missing.code == "701"


async def test_unknown_resource_and_wrong_method(mkto: MarketoHttp) -> None:
    assert (await mkto.call("GET", "/rest/v1/nothing.json")).code == "610"
    assert (await mkto.call("GET", "/rest/v1/leads/delete.json")).code == "605"


async def test_partitions(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", "/rest/v1/leads/partitions.json")
    assert reply.body["result"][0]["name"] == "Default"
    bad = await mkto.sync([{"email": "p@example.com"}], partitionName="Nowhere")
    assert bad.body["result"][0]["reasons"][0]["code"] == "1008"


async def test_activities_paging_token(mkto: MarketoHttp) -> None:
    path = "/rest/v1/activities/pagingtoken.json"
    ok = await mkto.call("GET", path, params={"sinceDatetime": "2026-11-01T00:00:00Z"})
    assert ok.body["success"] is True and ok.body["nextPageToken"]
    bad = await mkto.call("GET", path, params={"sinceDatetime": "yesterday"})
    assert bad.code == "1001"


async def test_filter_on_integer_field_matches_string_values(
    mkto: MarketoHttp, sandbox: Sandbox
) -> None:
    lead_id = sandbox.add_lead(email="part@example.com")
    reply = await mkto.call(
        "GET", LEADS, params={"filterType": "leadPartitionId", "filterValues": "1"}
    )
    assert [r["id"] for r in reply.body["result"]] == [lead_id]
