"""Every operation against the sandbox over real HTTP: shapes, chunking, paging, caching, hook."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from simulators.marketo.sandbox import Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.errors import FailureClass, MarketoError
from stream.marketo.results import CallRecord
from stream.marketo.settings import MarketoSettings
from tests.support.fixtures import MakeSandbox
from tests.support.marketo import lead, settings_for

# ---- settings ---------------------------------------------------------------------------------


def test_settings_normalise_the_base_url_and_derive_the_identity_url() -> None:
    s = MarketoSettings(
        base_url="https://123-ABC-456.mktorest.com/rest/",
        client_id="id",
        client_secret=SecretStr("s"),
    )
    assert s.base_url == "https://123-ABC-456.mktorest.com"
    assert s.token_url == "https://123-ABC-456.mktorest.com/identity/oauth/token"
    o = s.model_copy(update={"identity_url": "https://idp.example.com/token"})
    assert o.token_url == "https://idp.example.com/token"


def test_settings_rate_share() -> None:
    base = {"base_url": "https://x.example.com", "client_id": "i", "client_secret": "s"}
    assert MarketoSettings(**base).calls_per_window == 100
    assert MarketoSettings(**base, rate_share=0.5).calls_per_window == 50
    assert MarketoSettings(**base, rate_share=0.001).calls_per_window == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"base_url": "ftp://x"},
        {"base_url": "https://"},
        {"rate_share": 0},
        {"rate_share": 1.5},
        {"max_in_flight": 11},
        {"lead_batch_size": 301},
        {"campaign_batch_size": 101},
        {"unknown_option": 1},
    ],
)
def test_settings_refuse_what_marketo_would(bad: dict[str, Any]) -> None:
    values = {"base_url": "https://x.example.com", "client_id": "i", "client_secret": "s"}
    with pytest.raises(ValidationError):
        MarketoSettings(**{**values, **bad})


# ---- leads ------------------------------------------------------------------------------------


async def test_upsert_creates_then_updates_in_batches_of_300(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        first = await client.upsert_leads([lead(i) for i in range(650)])
        second = await client.upsert_leads([lead(i, title="CTO") for i in range(650)])
    assert [r.status for r in first] == ["created"] * 650
    assert [r.status for r in second] == ["updated"] * 650
    assert [r.lead_id for r in first] == [r.lead_id for r in second]
    assert [r.index for r in first] == list(range(650))
    assert sorted(c.batchSize or 0 for c in sandbox.calls("leads.sync")) == [
        50,
        50,
        300,
        300,
        300,
        300,
    ]
    stored = sandbox.state.leads[first[10].lead_id or 0]
    assert (stored["email"], stored["title"]) == ("person10@example.com", "CTO")


async def test_upsert_with_another_lookup_field_and_partition(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        [created] = await client.upsert_leads([lead(1)], partition_name="Default")
        assert created.lead_id is not None
        [updated] = await client.upsert_leads(
            [{"id": created.lead_id, "title": "CEO"}], action="updateOnly", lookup_field="id"
        )
    assert updated.status == "updated"
    assert sandbox.state.leads[created.lead_id]["title"] == "CEO"


async def test_empty_upsert_makes_no_call(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        assert await client.upsert_leads([]) == []
    assert sandbox.calls() == []


async def test_get_leads_by_filter_type_in_groups_of_300(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        await client.upsert_leads([lead(i) for i in range(350)])
        emails = [f"person{i}@example.com" for i in range(350)] + ["nobody@example.com"]
        found = await client.get_leads("email", emails, fields=["email", "firstName"])
    assert sorted(f["email"] for f in found) == sorted(emails[:-1])
    assert {"id", "email", "firstName"} <= set(found[0])
    assert sorted(c.batchSize or 0 for c in sandbox.calls("leads.filter")) == [51, 300]


async def test_get_leads_follows_page_tokens(sandbox: Sandbox) -> None:
    for _ in range(5):
        sandbox.add_lead(email="shared@example.com")
    async with MarketoClient(settings_for(sandbox, lead_batch_size=2)) as client:
        found = await client.get_leads("email", ["shared@example.com"])
    assert len(found) == 5
    assert len({f["id"] for f in found}) == 5
    assert len(sandbox.calls("leads.filter")) == 3


async def test_get_leads_with_a_long_query_goes_as_post(sandbox: Sandbox) -> None:
    emails = [f"a-rather-long-address-number-{i}@example.com" for i in range(300)]
    async with MarketoClient(settings_for(sandbox)) as client:
        assert await client.get_leads("email", emails) == []
    [call] = sandbox.calls("leads.filter")
    assert (call.method, call.httpStatus, call.success) == ("POST", 200, True)


async def test_get_leads_by_unsupported_filter_is_systemic(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        with pytest.raises(MarketoError) as raised:
            await client.get_leads("noSuchField", ["x"])
    assert raised.value.kind is FailureClass.SYSTEMIC
    assert raised.value.failure.code == "1011"


async def test_describe_is_cached_until_refreshed(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        fields = await client.describe()
        again = await client.describe()
        refreshed = await client.refresh_fields()
    assert fields == again == refreshed
    assert len(sandbox.calls("leads.describe")) == 2
    by_name = {f.name: f for f in fields}
    assert by_name["email"].data_type == "email"
    assert not by_name["email"].read_only
    assert by_name["createdAt"].read_only


async def test_concurrent_describes_make_one_call(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        await asyncio.gather(*(client.describe() for _ in range(10)))
    assert len(sandbox.calls("leads.describe")) == 1


# ---- campaigns --------------------------------------------------------------------------------


async def test_list_campaigns_returns_only_triggerable_ones_across_pages(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox, lead_batch_size=1)) as client:
        triggerable = await client.list_campaigns()
        everything = await client.list_campaigns(triggerable_only=False)
    assert {c.id for c in triggerable} == {1001, 1002}
    assert all(c.active and c.type == "trigger" for c in triggerable)
    assert {1001, 1002, 2001, 3001, 3002} <= {c.id for c in everything}
    assert len(sandbox.calls("campaigns.list")) == len(triggerable) + len(everything)


async def test_request_campaign_in_chunks_of_100_with_tokens(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        leads = await client.upsert_leads([lead(i) for i in range(250)])
        ids = [r.lead_id for r in leads if r.lead_id is not None]
        results = await client.request_campaign(
            1001, ids, tokens={"eventName": "Summit", "{{my.room}}": "B2"}
        )
    assert [r.status for r in results] == ["requested"] * 250
    assert [r.lead_id for r in results] == ids
    assert sorted(c.batchSize or 0 for c in sandbox.calls("campaigns.trigger")) == [50, 100, 100]
    runs = sandbox.state.campaign_runs
    assert sorted(i for run in runs for i in run["leadIds"]) == sorted(ids)
    assert {t["name"] for t in runs[0]["tokens"]} == {"{{my.eventName}}", "{{my.room}}"}


# ---- forms ------------------------------------------------------------------------------------


async def test_list_forms_pages_by_offset(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        forms = await client.list_forms(page_size=1)
        approved = await client.list_forms(status="approved")
    assert {f.id for f in forms} == {1234, 1235}
    assert {f.id for f in approved} == {1234}
    assert len(sandbox.calls("forms.list")) == 3 + 1


async def test_form_fields_and_their_rest_names(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        fields = await client.form_fields(1234)
    by_id = {f.id: f for f in fields}
    assert by_id["Email"].required
    assert by_id["Email"].rest_name == "email"
    assert by_id["FirstName"].rest_name == "firstName"


async def test_submit_form_one_lead_per_call(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        results = await asyncio.gather(
            *(
                client.submit_form(
                    1234,
                    {"email": f"f{i}@example.com", "firstName": "F"},
                    program_id=1044,
                    visitor_data={"pageURL": "https://lp.example.com/reg"},
                )
                for i in range(3)
            )
        )
        again = await client.submit_form(1234, {"email": "f0@example.com", "lastName": "L"})
    assert [r.status for r in results] == ["created"] * 3
    assert again.status == "updated"
    assert again.lead_id == results[0].lead_id
    assert [c.batchSize for c in sandbox.calls("leads.submitForm")] == [1, 1, 1, 1]
    assert sandbox.state.form_fills[0]["visitorData"] == {"pageURL": "https://lp.example.com/reg"}


async def test_submit_form_refusals_are_values(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        no_email = await client.submit_form(1234, {"firstName": "F"})
        off_form = await client.submit_form(1234, {"email": "x@example.com", "city": "Oslo"})
        unknown = await client.submit_form(99, {"email": "x@example.com"})
    assert no_email.failure is not None and no_email.failure.code == "missing-email"
    assert off_form.failure is not None
    assert (off_form.failure.kind, off_form.failure.code) == (FailureClass.DATA, "1003")
    assert unknown.failure is not None and unknown.failure.code == "1013"
    assert unknown.failure.kind is FailureClass.SYSTEMIC
    assert len(sandbox.calls("leads.submitForm")) == 2


# ---- the call hook ----------------------------------------------------------------------------


async def test_hook_reports_every_call_with_the_sandbox_request_id(sandbox: Sandbox) -> None:
    records: list[CallRecord] = []

    async def hook(record: CallRecord) -> None:
        await asyncio.sleep(0)
        records.append(record)

    async with MarketoClient(settings_for(sandbox), on_call=hook) as client:
        await client.upsert_leads([lead(i) for i in range(301)])
        await client.describe()
    assert len(records) == len(sandbox.calls()) == 4
    identity, *rest = records
    assert identity.endpoint == "/identity/oauth/token"
    assert identity.batch_size == 0 and identity.http_status == 200
    sync = sorted(
        (r for r in rest if r.endpoint == "/rest/v1/leads.json"), key=lambda r: r.batch_size
    )
    assert [r.batch_size for r in sync] == [1, 300]
    assert {r.request_id for r in rest} == {c.requestId for c in sandbox.calls() if c.requestId}
    for r in records:
        assert r.connection_id == "conn-test"
        assert r.duration_ms >= 0
        assert r.started_at.tzinfo is not None
        assert r.marketo_error is None


async def test_a_failing_hook_never_breaks_a_call(sandbox: Sandbox) -> None:
    def hook(record: CallRecord) -> None:
        raise RuntimeError("recorder down")

    async with MarketoClient(settings_for(sandbox), on_call=hook) as client:
        [result] = await client.upsert_leads([lead(1)])
    assert result.ok


async def test_writes_to_one_lead_never_overlap(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox(latency_ms=100)
    async with MarketoClient(settings_for(sb)) as client:
        same = await asyncio.gather(
            client.upsert_leads([{"email": "Same@Example.com", "title": "A"}]),
            client.upsert_leads([{"email": "same@example.com", "title": "B"}]),
            client.submit_form(1234, {"email": "same@example.com", "firstName": "C"}),
        )
        other = await asyncio.gather(
            client.upsert_leads([{"email": "x@example.com"}]),
            client.upsert_leads([{"email": "y@example.com"}]),
        )
    statuses = [same[0][0].status, same[1][0].status, same[2].status]
    assert sorted(str(s) for s in statuses) == ["created", "updated", "updated"]
    assert len(sb.state.leads) == 3
    writes = sorted(c.at for c in sb.calls() if c.endpoint in ("leads.sync", "leads.submitForm"))
    assert writes[1] - writes[0] >= 0.1
    assert writes[2] - writes[1] >= 0.1
    assert all(r.ok for batch in other for r in batch)
    assert abs(writes[4] - writes[3]) < 0.1  # different leads go out together
