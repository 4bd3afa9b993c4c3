"""`deliver_batch` against a real Marketo sandbox: every action, data and technical failures,
quota, batching, Force Update."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from simulators.marketo.sandbox import Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.errors import FailureClass, MarketoFailure
from stream.marketo.settings import MarketoSettings
from stream.messages import FailureCategory, OutcomeStatus
from stream.pipeline.deliver import deliver_batch, failure_result
from tests.pipeline.pipeline_support import SECRET, lead, request


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[MarketoClient]:
    settings = MarketoSettings(
        connection_id="mkto-prod",
        base_url=sandbox.url,
        client_id="sandbox-client",
        client_secret=SecretStr(SECRET),
        backoff_base_s=0.01,
        backoff_cap_s=0.02,
    )
    async with MarketoClient(settings) as made:
        yield made


def calls(sandbox: Sandbox, endpoint: str) -> int:
    return len(sandbox.calls(endpoint))


async def test_create_update_lead_upserts_then_requests_the_campaign(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    first = [request("create_update_lead", lead(n)) for n in range(3)]
    outcomes = await deliver_batch(first, client)
    assert [o.status for o in outcomes] == [OutcomeStatus.DELIVERED] * 3
    assert [o.lead_result for o in outcomes] == ["created"] * 3
    assert all(o.marketo_lead_id in sandbox.state.leads for o in outcomes)
    assert [o.change_id for o in outcomes] == [r.change_id for r in first]
    (run,) = sandbox.state.campaign_runs
    assert run["campaignId"] == 1001
    assert sorted(run["leadIds"]) == sorted(o.marketo_lead_id or 0 for o in outcomes)

    again = await deliver_batch([request("create_update_lead", lead(0, title="CTO"))], client)
    assert again[0].lead_result == "updated"
    assert again[0].marketo_lead_id == outcomes[0].marketo_lead_id
    assert sandbox.state.leads[outcomes[0].marketo_lead_id or 0]["title"] == "CTO"
    assert again[0].latency_ms is not None and again[0].request_id


async def test_campaign_batching_250_leads(sandbox: Sandbox, client: MarketoClient) -> None:
    batch = [request("create_update_lead", lead(n)) for n in range(250)]
    outcomes = await deliver_batch(batch, client)
    assert {o.status for o in outcomes} == {OutcomeStatus.DELIVERED}
    assert calls(sandbox, "leads.sync") == 1
    assert calls(sandbox, "campaigns.trigger") == 3
    assert sum(len(r["leadIds"]) for r in sandbox.state.campaign_runs) == 250


async def test_invalid_email_is_a_record_level_data_failure(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    batch = [
        request("create_update_lead", lead(1)),
        request("create_update_lead", lead(2, email="not-an-email")),
        request("create_update_lead", lead(3)),
    ]
    good, bad, other = await deliver_batch(batch, client)
    assert good.status is other.status is OutcomeStatus.DELIVERED
    assert bad.status is OutcomeStatus.FAILED and bad.category is FailureCategory.DATA
    assert bad.marketo_code == "1003" and not bad.retryable
    assert bad.marketo_lead_id is None
    assert len(sandbox.state.leads) == 2


async def test_same_lead_twice_in_a_batch_goes_in_separate_calls(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    batch = [
        request("create_update_lead", lead(1, title="First")),
        request("create_update_lead", lead(1, email="USER1@example.com", title="Second")),
    ]
    outcomes = await deliver_batch(batch, client)
    assert [o.status for o in outcomes] == [OutcomeStatus.DELIVERED] * 2
    assert calls(sandbox, "leads.sync") == 2
    assert len(sandbox.state.leads) == 1
    assert next(iter(sandbox.state.leads.values()))["title"] == "Second"


async def test_trigger_without_force_update_keeps_existing_fields(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    known = sandbox.add_lead(email="user1@example.com", firstName="Original", lastName="Name")
    batch = [
        request("trigger_campaign", lead(1), campaign_id=1002, tokens={"{{my.session}}": "K"}),
        request("trigger_campaign", lead(2), campaign_id=1002, tokens={"{{my.session}}": "K"}),
    ]
    existing, new = await deliver_batch(batch, client, force_update=False)
    assert existing.status is new.status is OutcomeStatus.DELIVERED
    assert existing.marketo_lead_id == known and existing.lead_result == "campaign_triggered"
    assert new.lead_result == "created"
    assert sandbox.state.leads[known]["firstName"] == "Original"
    assert calls(sandbox, "leads.filter") == 1
    (run,) = sandbox.state.campaign_runs
    assert sorted(run["leadIds"]) == sorted([known, new.marketo_lead_id or 0])
    assert run["tokens"] == [{"name": "{{my.session}}", "value": "K"}]


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        ("mallory@example.com" + ",x" * 300, "holds a comma"),
        ("é" * 300 + "@example.com", "is 312 characters; Marketo takes at most 255"),
    ],
    ids=["commas", "too-long"],
)
async def test_one_unlookable_email_fails_its_own_request_not_the_group(
    sandbox: Sandbox, client: MarketoClient, email: str, reason: str
) -> None:
    """Lookup values go comma-joined in one query: one registrant's email with commas (more
    values than Marketo takes) or of great length (a request too long) failed every request of
    the group, not retried. It is that request's data failure; the others are delivered."""
    known = sandbox.add_lead(email="user1@example.com", firstName="Original", lastName="Name")
    hostile = lead(3)
    hostile["email"] = email
    batch = [
        request("trigger_campaign", lead(1), campaign_id=1002),
        request("trigger_campaign", hostile, campaign_id=1002),
        request("trigger_campaign", lead(2), campaign_id=1002),
    ]
    first, refused, second = await deliver_batch(batch, client, force_update=False)
    assert first.status is second.status is OutcomeStatus.DELIVERED
    assert first.marketo_lead_id == known
    assert refused.status is OutcomeStatus.FAILED
    assert refused.category is FailureCategory.DATA
    assert refused.reason is not None and f"lookup field 'email' {reason}" in refused.reason
    assert calls(sandbox, "leads.filter") == 1


async def test_trigger_with_force_update_updates_fields(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    known = sandbox.add_lead(email="user1@example.com", firstName="Original", lastName="Name")
    (outcome,) = await deliver_batch(
        [request("trigger_campaign", lead(1), campaign_id=1002)], client, force_update=True
    )
    assert outcome.status is OutcomeStatus.DELIVERED and outcome.lead_result == "updated"
    assert sandbox.state.leads[known]["firstName"] == "Ana"
    assert calls(sandbox, "leads.filter") == 0


async def test_requests_with_different_tokens_are_separate_campaign_calls(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    batch = [
        request("trigger_campaign", lead(n), campaign_id=1001, tokens={"{{my.s}}": f"S{n % 2}"})
        for n in range(4)
    ]
    outcomes = await deliver_batch(batch, client, force_update=True)
    assert {o.status for o in outcomes} == {OutcomeStatus.DELIVERED}
    assert calls(sandbox, "campaigns.trigger") == 2


async def test_form_post_submits_one_lead_per_call(sandbox: Sandbox, client: MarketoClient) -> None:
    batch = [request("form_post", lead(n), campaign_id=None, form_id=1234) for n in range(2)]
    outcomes = await deliver_batch(batch, client)
    assert [o.status for o in outcomes] == [OutcomeStatus.DELIVERED] * 2
    assert all(o.marketo_lead_id is not None for o in outcomes)
    assert [o.lead_result for o in outcomes] == ["created", "created"]
    assert calls(sandbox, "leads.submitForm") == 2
    assert len(sandbox.state.form_fills) == 2


async def test_http_503_is_a_retryable_technical_failure(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    sandbox.inject_http_status(503, count=10)
    (outcome,) = await deliver_batch([request("create_update_lead", lead(1))], client)
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.category is FailureCategory.TECHNICAL and outcome.retryable
    assert "503" in (outcome.reason or "")
    assert sandbox.state.leads == {}


async def test_611_is_technical_and_recovers_within_the_client_retries(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    sandbox.inject_error("611", count=10)
    (failed,) = await deliver_batch([request("create_update_lead", lead(1))], client)
    assert failed.status is OutcomeStatus.FAILED and failed.category is FailureCategory.TECHNICAL
    assert failed.marketo_code == "611" and failed.retryable
    sandbox.clear_faults()
    sandbox.inject_error("611", count=1)
    (ok,) = await deliver_batch([request("create_update_lead", lead(1))], client)
    assert ok.status is OutcomeStatus.DELIVERED


async def test_quota_parks_until_the_reset(sandbox: Sandbox, client: MarketoClient) -> None:
    sandbox.exhaust_quota()
    outcomes = await deliver_batch(
        [request("create_update_lead", lead(1)), request("form_post", lead(2), form_id=1234)],
        client,
    )
    assert [o.status for o in outcomes] == [OutcomeStatus.PARKED] * 2
    assert all(o.resume_at is not None and o.category is None for o in outcomes)
    assert all(o.marketo_code == "607" for o in outcomes)


async def test_unknown_campaign_is_technical_and_says_configuration(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    (outcome,) = await deliver_batch(
        [request("create_update_lead", lead(1), campaign_id=987654)], client
    )
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.category is FailureCategory.TECHNICAL
    assert (outcome.reason or "").startswith("configuration")
    assert outcome.marketo_lead_id is not None  # the lead itself was synced


async def test_batch_campaign_cannot_be_requested(sandbox: Sandbox, client: MarketoClient) -> None:
    (outcome,) = await deliver_batch(
        [request("trigger_campaign", lead(1), campaign_id=2001)], client, force_update=True
    )
    assert outcome.category is FailureCategory.TECHNICAL
    assert (outcome.reason or "").startswith("configuration") and outcome.marketo_code == "1003"


async def test_missing_campaign_or_form_is_a_data_failure(client: MarketoClient) -> None:
    no_campaign, no_form = await deliver_batch(
        [
            request("create_update_lead", lead(1), campaign_id=None),
            request("form_post", lead(2), campaign_id=None, form_id=None),
        ],
        client,
    )
    assert no_campaign.category is FailureCategory.DATA
    assert no_form.category is FailureCategory.DATA


async def test_unknown_action_is_a_configuration_failure(client: MarketoClient) -> None:
    (outcome,) = await deliver_batch([request("send_fax", lead(1))], client)
    assert outcome.category is FailureCategory.TECHNICAL
    assert "unknown action" in (outcome.reason or "")


async def test_unreachable_marketo_is_technical() -> None:
    settings = MarketoSettings(
        connection_id="mkto-prod",
        base_url="http://127.0.0.1:9",
        client_id="sandbox-client",
        client_secret=SecretStr(SECRET),
        backoff_base_s=0.01,
        backoff_cap_s=0.02,
        connect_timeout_s=0.5,
    )
    async with MarketoClient(settings) as down:
        (outcome,) = await deliver_batch([request("create_update_lead", lead(1))], down)
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.category is FailureCategory.TECHNICAL


def test_failure_classes_map_to_outcomes() -> None:
    def result(kind: FailureClass, code: str) -> tuple[object, object, bool]:
        r = failure_result(MarketoFailure(kind=kind, code=code, message="m"), "upsert")
        return r.status, r.category, r.retryable

    assert result(FailureClass.DATA, "1004") == (OutcomeStatus.FAILED, FailureCategory.DATA, False)
    assert result(FailureClass.TECHNICAL, "604") == (
        OutcomeStatus.FAILED,
        FailureCategory.TECHNICAL,
        True,
    )
    assert result(FailureClass.SYSTEMIC, "603") == (
        OutcomeStatus.FAILED,
        FailureCategory.TECHNICAL,
        False,
    )
    assert result(FailureClass.QUOTA, "607")[0] is OutcomeStatus.PARKED
    assert result(FailureClass.THROTTLE, "606")[0] is OutcomeStatus.PARKED
