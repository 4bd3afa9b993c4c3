"""Ambiguous deliveries are verified in Marketo's activity log before they are sent again
(stream/pipeline/verify.py through `deliver_batch`), against a real sandbox over HTTP.

A request is ambiguous when `CallHooks.sent_before` names when an earlier, unanswered call for
it started. Here the earlier call is made directly on the sandbox (as if the worker that sent it
had died before the answer), then the batch is delivered as the worker that takes over would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from simulators.marketo.sandbox import Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.settings import MarketoSettings
from stream.messages import DeliveryRequest, OutcomeStatus
from stream.pipeline import verify
from stream.pipeline.deliver import CallHooks, deliver_batch
from stream.pipeline.verify import VERIFIED
from tests.pipeline.pipeline_support import SECRET, lead, request

CAMPAIGN = 1001
FORM = 1234


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[MarketoClient]:
    settings = MarketoSettings(
        connection_id="mkto-prod",
        base_url=sandbox.url,
        client_id="sandbox-client",
        client_secret=SecretStr(SECRET),
        backoff_base_s=0.01,
        backoff_cap_s=0.02,
        max_attempts=1,
    )
    async with MarketoClient(settings) as made:
        yield made


class Hooks:
    """Hooks that record what they hear; `ambiguous` maps change ids to their earlier call."""

    def __init__(self, ambiguous: dict[str, datetime]) -> None:
        self.ambiguous = ambiguous
        self.sending: list[str] = []
        self.acknowledged: list[str] = []

    def hooks(self) -> CallHooks:
        async def sending(requests: Sequence[DeliveryRequest]) -> None:
            self.sending.extend(r.change_id for r in requests)

        async def acknowledged(requests: Sequence[DeliveryRequest]) -> None:
            self.acknowledged.extend(r.change_id for r in requests)

        def sent_before(r: DeliveryRequest) -> datetime | None:
            return self.ambiguous.get(r.change_id)

        return CallHooks(sending, acknowledged, sent_before=sent_before)


def requested(sandbox: Sandbox, lead_id: int, campaign: int = CAMPAIGN) -> int:
    return sum(
        lead_id in run["leadIds"]
        for run in sandbox.state.campaign_runs
        if run["campaignId"] == campaign
    )


def activity_calls(sandbox: Sandbox) -> int:
    return sum(1 for c in sandbox.state.calls if c.endpoint.startswith("activities."))


async def test_leads_marketo_ran_are_recorded_verified_and_the_rest_sent_once(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    batch = [request("trigger_campaign", lead(n)) for n in range(40)]
    ids = [sandbox.add_lead(email=r.payload["email"]) for r in batch]
    started = datetime.now(UTC)
    [lost] = {a.request_id for a in await client.request_campaign(CAMPAIGN, ids[:25])}
    assert lost is not None  # the lost call carried 25 of them; Marketo ran it
    # 30 are ambiguous: 25 the lost call ran, 5 it never reached; 10 are fresh.
    heard = Hooks({r.change_id: started for r in batch[:30]})
    outcomes = await deliver_batch(batch, client, hooks=heard.hooks())
    assert {o.status for o in outcomes} == {OutcomeStatus.DELIVERED}
    verified = [o.change_id for o in outcomes if o.lead_result == VERIFIED]
    assert verified == [r.change_id for r in batch[:25]]
    for o in outcomes[:25]:
        assert o.reason is not None and "verified in Marketo activities" in o.reason
        assert o.marketo_lead_id == ids[outcomes.index(o)]
    assert [requested(sandbox, lead_id) for lead_id in ids] == [1] * 40
    assert sorted(heard.sending) == sorted(r.change_id for r in batch[25:])
    assert sorted(heard.acknowledged) == sorted(r.change_id for r in batch)
    # 30 leads: the types, one date token, one page for each group of 30.
    assert activity_calls(sandbox) == 3


async def test_deliveries_that_are_not_ambiguous_cost_no_activity_call(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    batch = [request("create_update_lead", lead(n)) for n in range(5)]
    batch += [request("form_post", lead(n), campaign_id=None, form_id=FORM) for n in range(5, 7)]
    outcomes = await deliver_batch(batch, client, force_update=True, hooks=Hooks({}).hooks())
    assert {o.status for o in outcomes} == {OutcomeStatus.DELIVERED}
    assert activity_calls(sandbox) == 0


async def test_an_older_request_of_the_same_campaign_is_not_taken_for_the_lost_call(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    r = request("trigger_campaign", lead(1))
    lead_id = sandbox.add_lead(email=r.payload["email"])
    await client.request_campaign(CAMPAIGN, [lead_id])  # a request long before the lost call
    other = request("trigger_campaign", lead(2), campaign_id=1002)
    other_id = sandbox.add_lead(email=other.payload["email"])
    await client.request_campaign(CAMPAIGN, [other_id])  # the lost call's time, wrong campaign
    now = datetime.now(UTC)
    heard = Hooks({r.change_id: now + timedelta(minutes=5), other.change_id: now})
    outcomes = await deliver_batch([r, other], client, hooks=heard.hooks())
    assert [o.lead_result for o in outcomes] == ["campaign_triggered", "campaign_triggered"]
    assert requested(sandbox, lead_id) == 2
    assert requested(sandbox, other_id, 1002) == 1


async def test_when_the_activity_log_fails_the_request_is_sent_again(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    batch = [request("trigger_campaign", lead(n)) for n in range(3)]
    ids = [sandbox.add_lead(email=r.payload["email"]) for r in batch]
    started = datetime.now(UTC)
    await client.request_campaign(CAMPAIGN, ids)
    sandbox.inject_error("611", count=5, endpoint="activities.list")
    heard = Hooks({r.change_id: started for r in batch})
    outcomes = await deliver_batch(batch, client, hooks=heard.hooks())
    assert [o.status for o in outcomes] == [OutcomeStatus.DELIVERED] * 3
    assert [o.lead_result for o in outcomes] == ["campaign_triggered"] * 3
    assert [requested(sandbox, lead_id) for lead_id in ids] == [2, 2, 2]
    assert sorted(heard.sending) == sorted(r.change_id for r in batch)


async def test_an_ambiguous_form_post_marketo_recorded_is_not_submitted_again(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    filled = request("form_post", lead(1), campaign_id=None, form_id=FORM)
    missing = request("form_post", lead(2), campaign_id=None, form_id=FORM)
    started = datetime.now(UTC)
    answer = await client.submit_form(FORM, filled.payload)
    assert answer.failure is None
    heard = Hooks({filled.change_id: started, missing.change_id: started})
    outcomes = await deliver_batch([filled, missing], client, hooks=heard.hooks())
    assert [o.status for o in outcomes] == [OutcomeStatus.DELIVERED] * 2
    assert outcomes[0].lead_result == VERIFIED
    assert outcomes[0].marketo_lead_id == answer.lead_id
    assert outcomes[1].lead_result != VERIFIED
    fills = [f["leadId"] for f in sandbox.state.form_fills]
    assert len(fills) == 2 and fills[0] == answer.lead_id
    assert heard.sending == [missing.change_id]


async def test_a_verification_that_outlasts_its_deadline_gives_way_to_sending(
    sandbox: Sandbox, client: MarketoClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = request("trigger_campaign", lead(1))
    lead_id = sandbox.add_lead(email=r.payload["email"])
    started = datetime.now(UTC)
    await client.request_campaign(CAMPAIGN, [lead_id])
    monkeypatch.setattr(verify, "VERIFY_TIMEOUT_S", 0.2)
    sandbox.set_latency(400)  # each activity call alone outlasts the deadline
    heard = Hooks({r.change_id: started})
    [outcome] = await deliver_batch([r], client, hooks=heard.hooks())
    assert outcome.status is OutcomeStatus.DELIVERED
    assert outcome.lead_result != VERIFIED
    assert requested(sandbox, lead_id) == 2
