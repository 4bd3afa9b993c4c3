"""Forms (asset API) and Submit Form (reference §2, §5, §6; checklist items 9, 15)."""

from __future__ import annotations

from typing import Any

from simulators.marketo.sandbox import Sandbox
from tests.marketo.conftest import MarketoHttp
from tests.support.fixtures import MakeSandbox

FORMS = "/rest/asset/v1/forms.json"
SUBMIT = "/rest/v1/leads/submitForm.json"
NO_ASSETS = "No assets found for the given search criteria."


async def test_forms_list_uses_asset_envelope(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", FORMS)
    body = reply.body
    assert body["success"] is True and body["errors"] == [] and body["warnings"] == []
    form = next(f for f in body["result"] if f["id"] == 1234)
    assert form["folder"] == {"type": "Folder", "value": 12, "folderName": "Forms"}
    assert form["createdAt"].endswith("Z+0000")
    assert form["status"] == "approved"


async def test_offset_paging_terminates(make_sandbox: MakeSandbox, mkto: MarketoHttp) -> None:
    sb = await make_sandbox(seed={"forms": [{"id": 5000 + i, "name": f"F{i}"} for i in range(5)]})
    mkto.base = sb.url
    seen: list[int] = []
    offset = 0
    for _ in range(20):
        reply = await mkto.call("GET", FORMS, params={"maxReturn": "2", "offset": str(offset)})
        rows = reply.body.get("result")
        if not rows:
            assert reply.body["warnings"] == [NO_ASSETS]
            break
        seen += [f["id"] for f in rows]
        if len(rows) < 2:
            break
        offset += 2
    assert seen == sorted(sb.state.forms)
    assert len(seen) == 7


async def test_empty_page_is_warning_without_result(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", FORMS, params={"offset": "500"})
    assert reply.body["success"] is True
    assert "result" not in reply.body
    assert reply.body["warnings"] == [NO_ASSETS] and reply.body["errors"] == []


async def test_status_and_folder_filters(mkto: MarketoHttp) -> None:
    drafts = await mkto.call("GET", FORMS, params={"status": "draft"})
    assert [f["id"] for f in drafts.body["result"]] == [1235]
    folder = await mkto.call("GET", FORMS, params={"folder": '{"id":12,"type":"Folder"}'})
    assert [f["id"] for f in folder.body["result"]] == [1234]
    malformed = await mkto.call("GET", FORMS, params={"folder": "{'id': 13, 'type': Folder}"})
    assert [f["id"] for f in malformed.body["result"]] == [1235]
    garbage = await mkto.call("GET", FORMS, params={"folder": "{{{"})
    assert garbage.body["success"] is True and len(garbage.body["result"]) == 2


async def test_max_return_out_of_range(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", FORMS, params={"maxReturn": "201"})
    assert reply.body["success"] is False and reply.code == "1003"
    assert reply.body["warnings"] == []


async def test_form_fields_use_soap_style_ids(mkto: MarketoHttp) -> None:
    reply = await mkto.call("GET", "/rest/asset/v1/form/1234/fields.json")
    fields = {f["id"]: f for f in reply.body["result"]}
    assert {"FirstName", "LastName", "Email", "Company"} <= set(fields)
    assert fields["Email"]["required"] is True and fields["Email"]["dataType"] == "email"
    assert fields["FirstName"]["visibilityRules"] == {"ruleType": "alwaysShow"}
    missing = await mkto.call("GET", "/rest/asset/v1/form/99/fields.json")
    assert missing.body["warnings"] == [NO_ASSETS] and "result" not in missing.body
    by_id = await mkto.call("GET", "/rest/asset/v1/form/1234.json")
    assert by_id.body["result"][0]["name"] == "Event Registration"


async def test_submit_form_creates_then_updates(mkto: MarketoHttp, sandbox: Sandbox) -> None:
    body: dict[str, Any] = {
        "formId": 1234,
        "input": [
            {
                "leadFormFields": {"firstName": "Marge", "email": "marge@example.com"},
                "visitorData": {"pageURL": "https://lp.example.com/p.html"},
                "cookie": "id:063-GJP-217&token:_mch-x",
            }
        ],
    }
    created = await mkto.call("POST", SUBMIT, json=body)
    [item] = created.body["result"]
    assert item["status"] == "created"
    body["input"][0]["leadFormFields"] = {"email": "MARGE@example.com", "company": "Fox"}
    updated = await mkto.call("POST", SUBMIT, json=body)
    assert updated.body["result"] == [{"id": item["id"], "status": "updated"}]
    assert sandbox.state.leads[item["id"]]["company"] == "Fox"
    fills = sandbox.state.form_fills
    assert [f["status"] for f in fills] == ["created", "updated"]
    assert fills[0]["formId"] == 1234 and fills[0]["leadId"] == item["id"]


async def test_submit_form_record_failures(mkto: MarketoHttp) -> None:
    def body(fields: dict[str, object]) -> dict[str, object]:
        return {"formId": 1234, "input": [{"leadFormFields": fields}]}

    no_email = await mkto.call("POST", SUBMIT, json=body({"firstName": "x"}))
    soap_name = await mkto.call("POST", SUBMIT, json=body({"Email": "a@example.com"}))
    off_form = await mkto.call("POST", SUBMIT, json=body({"email": "a@example.com", "city": "X"}))
    bad_email = await mkto.call("POST", SUBMIT, json=body({"email": "nope"}))
    codes = [
        r.body["result"][0]["reasons"][0]["code"]
        for r in (no_email, soap_name, off_form, bad_email)
    ]
    assert codes == ["1002", "1006", "1003", "1003"]
    for reply in (no_email, soap_name, off_form, bad_email):
        assert reply.body["success"] is True and "id" not in reply.body["result"][0]


async def test_submit_form_request_failures(mkto: MarketoHttp) -> None:
    one = [{"leadFormFields": {"email": "a@example.com"}}]
    two = await mkto.call("POST", SUBMIT, json={"formId": 1234, "input": one * 2})
    none = await mkto.call("POST", SUBMIT, json={"formId": 1234, "input": []})
    no_form = await mkto.call("POST", SUBMIT, json={"input": one})
    unknown = await mkto.call("POST", SUBMIT, json={"formId": 4321, "input": one})
    assert [r.code for r in (two, none, no_form, unknown)] == ["1003", "701", "701", "1013"]
